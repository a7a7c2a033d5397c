"""The built-in demo hash-grid scene: the shipped demo.hgz is the splat demo's torus knot,
photographed by holoscope's splat renderer and fitted in Instant-NGP's image mode by holoscope's
trainer, and it opens through every command under the name ``demo-hashgrid``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from holoscope.assets.demo_hashgrid import DEMO_HGZ, PICTURE_SIZE, VIEW_SIZE, demo_hashgrid_path, demo_picture, ring_cameras
from holoscope.cli import main

torch = pytest.importorskip("torch")

from holoscope.codecs.hashgrid.reader import open_hgz  # noqa: E402

MIN_DEMO_PSNR = 33.0  # the shipped scene against the picture it was fitted to


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse)


def test_the_shipped_scene_is_the_demo_picture():
    assert demo_hashgrid_path() == DEMO_HGZ and DEMO_HGZ.stat().st_size < 1_000_000
    truth = np.rint(demo_picture() * 255)
    media = open_hgz(DEMO_HGZ)
    try:
        scene = media.frame(0)
        assert scene.mode == "image" and scene.image_size == PICTURE_SIZE
        image = np.rint(scene.renderer(device="cpu").render_image(*PICTURE_SIZE) * 255)
    finally:
        media.release()
    assert psnr(image, truth) > MIN_DEMO_PSNR
    assert truth.std() > 20  # the knot and its disc, not an empty frame


def test_the_nerf_views_are_an_instant_ngp_dataset(tmp_path):
    from holoscope.assets.demo_hashgrid import write_dataset
    from holoscope.codecs.hashgrid.dataset import load_dataset

    transforms = write_dataset(tmp_path / "views")
    doc = json.loads(transforms.read_text())
    assert len(doc["frames"]) == len(ring_cameras()) and (doc["w"], doc["h"]) == VIEW_SIZE
    data = load_dataset(transforms)
    assert len(data) == len(doc["frames"]) and (data.width, data.height) == VIEW_SIZE
    assert data.images[..., :3].std() > 0.05


def test_render_and_info_take_the_demo_name(tmp_path, capsys):
    assert main(["info", "demo-hashgrid", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "hgz" and info["mode"] == "image" and info["image_size"] == list(PICTURE_SIZE)
    out = tmp_path / "demo.png"
    assert main(["render", "demo-hashgrid", "-o", str(out), "--size", "128x96", "-q"]) == 0
    assert out.stat().st_size > 0
