"""The built-in demo hash-grid scene: the shipped demo.hgz is the splat demo's torus knot as a
NeRF trained by holoscope from views holoscope rendered, and it opens through every command
under the name ``demo-hashgrid``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from holoscope.assets.demo_hashgrid import DEMO_HGZ, VIEW_SIZE, demo_hashgrid_path, ring_cameras
from holoscope.cli import main

torch = pytest.importorskip("torch")

from holoscope.codecs.hashgrid.reader import open_hgz  # noqa: E402

MIN_HELD_OUT_PSNR = 20.0  # the shipped scene against a view it was not trained on


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse)


def test_the_shipped_scene_is_the_knot_seen_from_a_held_out_view():
    from holoscope.assets.demo import make_demo_cloud
    from holoscope.core.splat_math import flip_axes
    from holoscope.render.export import SplatFrameRenderer

    assert demo_hashgrid_path() == DEMO_HGZ and DEMO_HGZ.stat().st_size < 1_500_000
    camera = ring_cameras()[8]  # every eighth view is held out of training
    splats = SplatFrameRenderer(flip_axes(make_demo_cloud(), (1, -1, -1)))
    try:
        truth = np.clip(np.rint(splats.render(camera) * 255), 0, 255)
    finally:
        splats.release()
    media = open_hgz(DEMO_HGZ)
    try:
        scene = media.frame(0)
        assert scene.mode == "nerf" and media.info["default_up"] == "+y"
        image = np.clip(np.rint(scene.renderer(device="cpu").render(camera) * 255), 0, 255)
    finally:
        media.release()
    assert image.shape == (VIEW_SIZE[1], VIEW_SIZE[0], 3)
    assert psnr(image, truth) > MIN_HELD_OUT_PSNR
    assert psnr(image, np.zeros_like(truth)) < psnr(image, truth) - 5  # not just a dark picture


def test_the_training_views_are_an_instant_ngp_dataset(tmp_path):
    from holoscope.assets.demo_hashgrid import write_dataset
    from holoscope.codecs.hashgrid.dataset import load_dataset

    transforms = write_dataset(tmp_path / "views")
    doc = json.loads(transforms.read_text())
    assert len(doc["frames"]) == len(ring_cameras()) and (doc["w"], doc["h"]) == VIEW_SIZE
    data = load_dataset(transforms)
    assert len(data) == len(doc["frames"]) and (data.width, data.height) == VIEW_SIZE
    assert data.images[..., :3].std() > 0.05  # the knot and its disc, not an empty frame


def test_render_and_info_take_the_demo_name(tmp_path, capsys):
    assert main(["info", "demo-hashgrid", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "hgz" and info["mode"] == "nerf"
    out = tmp_path / "demo.png"
    assert main(["render", "demo-hashgrid", "-o", str(out), "--size", "64x48", "-q"]) == 0
    assert out.stat().st_size > 0
