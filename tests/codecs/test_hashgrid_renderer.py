"""SceneRenderer, the one entry point for the CLI and the app: the stored NeRF view honoured
(checked with instant-ngp's own ray formula on the stored matrix), the snapshot's background and
exposure, image mode's view rectangles evaluating only the output pixels (a crop of the full
render, pan and zoom), cancellation and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from holoscope.codecs.hashgrid.cameras import SceneTransform  # noqa: E402
from holoscope.codecs.hashgrid.neural.network import render_image as network_render_image  # noqa: E402
from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer, default_device  # noqa: E402
from holoscope.codecs.hashgrid.writer import NerfExtras  # noqa: E402
from holoscope.core.camera import Camera, look_at  # noqa: E402
from holoscope.core.errors import Cancelled, CorruptStream, InvalidArgument  # noqa: E402
from tests.hashgrid_data import analytic_nerf, analytic_sdf, camera_at, image_snapshot, l2s, s2l  # noqa: E402


def test_the_renderer_picks_cuda_when_torch_sees_one_and_reports_its_mode():
    snap = analytic_sdf().snapshot
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    r = SceneRenderer(snap, device="cpu")
    assert r.mode == "sdf" and r.device.type == "cpu"


def test_the_stored_nerf_view_is_honoured_in_the_dataset_world():
    centre = np.array([0.62, 0.45, 0.5])
    eye, target = np.array([0.9, 0.8, 1.7]), np.array([0.45, 0.5, 0.45])  # the sphere off-centre in the view
    gl = look_at(eye, target, np.array([0.0, 1.0, 0.0]))
    stored = gl[:3].copy()
    stored[:, 1:3] *= -1  # NGP camera matrices have OpenCV axes
    extras = NerfExtras(dataset_scale=0.25, dataset_offset=(0.4, 0.6, 0.5))
    scene = analytic_nerf("L8F4", params_type="float", centre=centre, radius=0.15, nerf=extras, camera_matrix=stored,
                          relative_focal_length=(1.1, 1.1), background=(0.1, 0.2, 0.3, 1.0))  # fmt: skip
    r = SceneRenderer(scene.snapshot, device="cpu")
    W, H = 36, 28
    cam = r.default_camera(W, H)
    np.testing.assert_allclose(cam.camera_to_world, SceneTransform(0.25, (0.4, 0.6, 0.5)).matrix_from_ngp(stored),
                               atol=1e-12)  # fmt: skip
    image = r.render(cam)
    # instant-ngp's rays from the stored matrix: d = R @ ((x+0.5)/W - 0.5) W / f, ((y+0.5)/H - 0.5) H / f, 1)
    f = 1.1 * H
    ys, xs = np.mgrid[0:H, 0:W]
    d = np.stack([(xs + 0.5 - W / 2) / f, (ys + 0.5 - H / 2) / f, np.ones_like(xs, float)], -1) @ stored[:, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    to = centre - eye
    b = np.sqrt(np.maximum(to @ to - (d @ to) ** 2, 0))
    assert (b < 0.13).sum() > 30 and (b > 0.16).sum() > 500
    np.testing.assert_allclose(image[b < 0.13], np.broadcast_to(scene.colour, image[b < 0.13].shape), atol=2e-4)
    np.testing.assert_allclose(image[b > 0.16], np.broadcast_to([0.1, 0.2, 0.3], image[b > 0.16].shape), atol=2e-5)


def test_the_snapshots_background_and_exposure_apply_unless_a_background_is_given():
    snap = analytic_sdf(background=(0.3, 0.5, 0.7, 1.0)).snapshot
    cam = Camera(8, 8, 20.0, look_at(np.array([0.5, 0.5, 3.0]), np.array([0.5, 3.0, 0.5]), np.array([0.0, 0, 1.0])))
    r = SceneRenderer(snap, device="cpu")
    np.testing.assert_allclose(r.render(cam), np.broadcast_to([0.3, 0.5, 0.7], (8, 8, 3)), atol=2e-5)  # misses
    np.testing.assert_allclose(r.render(cam, background=(1.0, 0.0, 0.5)), np.broadcast_to([1.0, 0.0, 0.5], (8, 8, 3)),
                               atol=2e-5)  # fmt: skip
    snap.document["snapshot"]["exposure"] = 1.0
    brighter = SceneRenderer(snap, device="cpu").render(cam)
    np.testing.assert_allclose(brighter[0, 0], l2s(2 * s2l([0.3, 0.5, 0.7])).clip(0, 1), atol=2e-5)
    with pytest.raises(InvalidArgument, match="background"):
        r.render(cam, background=(1.0, 0.0))
    snap.document["snapshot"]["background_color"] = [0, 0, "x", 1]
    with pytest.raises(CorruptStream, match="background_color"):
        SceneRenderer(snap, device="cpu")


def test_image_mode_shows_a_view_rectangle_evaluating_only_its_pixels():
    snap = image_snapshot(40, 24)
    r = SceneRenderer(snap, device="cpu")
    assert r.mode == "image"
    full = r.render_image(40, 24)
    np.testing.assert_allclose(full, network_render_image(snap, 40, 24), atol=1e-6)
    # the fixture's image is R = u, G = v at pixel centres (short of the last level-0 cell, u, v < 0.96)
    np.testing.assert_allclose(full[:23, :38, 0], np.broadcast_to((np.arange(38) + 0.5) / 40, (23, 38)), atol=1e-5)
    np.testing.assert_allclose(full[:23, :38, 1], np.broadcast_to(((np.arange(23) + 0.5) / 24)[:, None], (23, 38)),
                               atol=1e-5)  # fmt: skip
    crop = r.render_image(10, 6, (0.25, 0.5, 0.5, 0.75))  # pixels 10..19, rows 12..17
    np.testing.assert_allclose(crop, full[12:18, 10:20], atol=1e-6)
    uv = np.array([[12.5 / 40, 3.5 / 24], [0.3, 0.7]])  # any image positions (the app's screen pixels)
    np.testing.assert_allclose(r.evaluate_uv(uv)[0], full[3, 12], atol=1e-6)
    np.testing.assert_allclose(r.evaluate_uv(uv)[1, :2], [0.3, 0.7], atol=1e-5)
    zoom = r.render_image(40, 24, (0.45, 0.0, 0.95, 0.5))  # a quarter at twice the size
    np.testing.assert_allclose(zoom[..., 0], np.broadcast_to(0.45 + (np.arange(40) + 0.5) / 80, (24, 40)), atol=1e-5)
    np.testing.assert_allclose(zoom[..., 1], np.broadcast_to(((np.arange(24) + 0.5) / 48)[:, None], (24, 40)), atol=1e-5)


def test_wrong_calls_and_cancellation_are_clear():
    image = SceneRenderer(image_snapshot(40, 24), device="cpu")
    with pytest.raises(InvalidArgument, match="render_image"):
        image.render(Camera(4, 4, 40.0))
    with pytest.raises(InvalidArgument, match="no camera"):
        image.default_camera(4, 4)
    with pytest.raises(InvalidArgument, match="empty"):
        image.render_image(4, 4, (0.5, 0.0, 0.5, 1.0))
    with pytest.raises(InvalidArgument, match="view rectangle"):
        image.render_image(4, 4, (0.0, 0.0, 1.0))
    with pytest.raises(InvalidArgument, match="width"):
        image.render_image(0, 4)
    with pytest.raises(Cancelled):
        image.render_image(8, 8, cancelled=lambda: True)
    sdf = SceneRenderer(analytic_sdf().snapshot, device="cpu")
    with pytest.raises(InvalidArgument, match="image-mode"):
        sdf.render_image(4, 4)
    with pytest.raises(Cancelled):
        sdf.render(camera_at(sdf.snapshot, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 8, 8), cancelled=lambda: True)
