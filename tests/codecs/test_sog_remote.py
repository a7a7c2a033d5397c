"""An unbundled SOG over a non-local Source (tests/remote_source.py): its folder and its
meta.json open as the local folder does, the images reached through ``relative``; a missing
image and a name that leaves the folder are refused with one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from holoscope.codecs.formats.sog import read_sog, write_sog
from holoscope.core.errors import CorruptStream
from tests.remote_source import Link

from .helpers import random_cloud


def same(a, b) -> None:
    for key in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "scene"
    folder.mkdir()
    write_sog(random_cloud(400, 1, seed=2), folder / "meta.json")
    return tmp_path


def test_remote_unbundled_sog_matches_the_local_one(served):
    local = read_sog(served / "scene")
    link = Link(served)
    for target in ("scene/", "scene/meta.json"):
        link.reads.clear()
        same(read_sog(link.source(target)), local)
        names = set(link.names_read())
        assert "scene/meta.json" in names and "scene/means_l.webp" in names and "scene/sh0.webp" in names


def test_remote_missing_image_and_escaping_names(served):
    link = Link(served)
    (served / "scene" / "quats.webp").unlink()
    with pytest.raises(CorruptStream, match="missing file 'quats.webp'"):
        read_sog(link.source("scene/"))
    meta_path = served / "scene" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["quats"]["files"] = ["../quats.webp"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CorruptStream, match="points outside the SOG"):
        read_sog(link.source("scene/meta.json"))
