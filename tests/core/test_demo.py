"""The procedural demo scene and its cached PLY."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import holoscope.codecs.formats.ply_inria as ply_inria
from holoscope.assets import demo
from holoscope.core.registry import open_media

FIELDS = ("means", "scales", "quats", "opacities", "sh")


@pytest.fixture(scope="module")
def cloud():
    return demo.make_demo_cloud()


def test_deterministic(cloud) -> None:
    again = demo.make_demo_cloud()
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(cloud, name), getattr(again, name), err_msg=name)
    other = demo.make_demo_cloud(seed=8)
    assert not np.array_equal(cloud.means, other.means)


def test_shape_and_values(cloud) -> None:
    assert cloud.count == demo.KNOT_SPLATS + demo.GROUND_SPLATS
    assert cloud.sh_degree == 1
    for name in FIELDS:
        arr = getattr(cloud, name)
        assert arr.dtype == np.float32
        assert np.all(np.isfinite(arr)), name
    assert np.all(np.abs(np.linalg.norm(cloud.quats, axis=1) - 1) < 1e-5)
    assert np.all((cloud.opacities > 0) & (cloud.opacities < 1))
    assert np.all(cloud.scales > 0)
    colors = cloud.base_colors()
    assert np.all((colors >= 0) & (colors <= 1.0 + 1e-6))


def test_demo_path_writes_once_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cloud) -> None:
    monkeypatch.setenv("HOLOSCOPE_CACHE", str(tmp_path))
    path = demo.demo_path()
    assert path.is_file()
    assert path.parent == tmp_path / "holoscope"
    assert path.name == f"demo-v{demo.DEMO_VERSION}.ply"

    # A second call reuses the cached file and writes nothing.
    def no_write(*args, **kwargs):
        raise AssertionError("demo_path rewrote the cached demo")

    monkeypatch.setattr(ply_inria, "write_ply", no_write)
    stamp = path.stat().st_mtime_ns
    assert demo.demo_path() == path
    assert path.stat().st_mtime_ns == stamp
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    media = open_media(path)
    assert media.format == "ply"
    back = media.frame(0)
    assert back.count == cloud.count
    assert back.sh_degree == 1
    np.testing.assert_array_equal(back.means, cloud.means)


def test_session_cache_is_not_the_home_folder() -> None:
    cache = Path(os.environ["HOLOSCOPE_CACHE"]).resolve()
    assert not str(demo.cache_dir().resolve()).startswith(str((Path.home() / ".cache").resolve()))
    assert demo.cache_dir().resolve() == cache / "holoscope"
