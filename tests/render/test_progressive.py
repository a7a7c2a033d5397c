"""Progressive neural rendering: coarse first, refined to full size while the view is still,
the newest camera winning, and image-mode scenes as a plane whose visible pixels alone are
evaluated."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from holoscope.core.camera import Camera, look_at
from holoscope.core.errors import Cancelled
from holoscope.render.progressive import ProgressiveRenderer, image_plane_uv, render_image_plane


def camera(width=64, height=48, eye=(0.0, 0.0, 2.0), fov=50.0) -> Camera:
    return Camera(width, height, fov, look_at(np.array(eye), np.zeros(3), np.array([0.0, 1.0, 0.0])))


def test_steps_go_from_coarse_to_full_resolution():
    sizes = []

    def render(cam, cancelled):
        sizes.append((cam.width, cam.height))
        return np.full((cam.height, cam.width, 3), 0.5, np.float32)

    job = ProgressiveRenderer(render)
    try:
        rid = job.submit(camera(128, 96))
        result = job.wait(rid, timeout=10)
        assert result.final and result.value.scale == 1.0
        assert result.value.image.shape == (96, 128, 3) and result.value.image.dtype == np.uint8
        assert int(result.value.image[0, 0, 0]) == 128  # 0.5 rounded to 8 bits
        assert sizes[0] == (32, 24) and sizes[-1] == (128, 96)  # 1/4 first, then doubling
        assert [w for w, _ in sizes] == sorted(w for w, _ in sizes)
        # The coarse scale adapts to the measured speed: a fast renderer gets a finer first step.
        assert job.scales(camera(128, 96))[0] > 0.25
    finally:
        job.close()


def test_the_newest_camera_wins_and_a_stale_render_is_abandoned():
    started, release = threading.Event(), threading.Event()
    seen = []

    def render(cam, cancelled):
        seen.append(cam.fov_y)
        if cam.fov_y == 40.0:
            started.set()
            release.wait(5)
            if cancelled():
                raise Cancelled("superseded")
        return np.zeros((cam.height, cam.width, 3), np.float32)

    job = ProgressiveRenderer(render)
    try:
        job.submit(camera(fov=40.0))
        assert started.wait(5)
        newest = job.submit(camera(fov=60.0))
        release.set()
        result = job.wait(newest, timeout=10)
        assert result.value.camera.fov_y == 60.0 and result.final
        assert seen.count(40.0) == 1  # the stale view stopped at its first step
        assert job.alive
    finally:
        job.close()


def test_a_render_error_reaches_the_consumer_and_the_worker_survives():
    calls = []

    def render(cam, cancelled):
        calls.append(cam.fov_y)
        if cam.fov_y == 30.0:
            raise ValueError("broken scene")
        return np.zeros((cam.height, cam.width, 3), np.float32)

    job = ProgressiveRenderer(render)
    try:
        rid = job.submit(camera(fov=30.0))
        with pytest.raises(ValueError, match="broken scene"):
            job.wait(rid, timeout=10)
        rid = job.submit(camera(fov=45.0))
        assert job.wait(rid, timeout=10).final and job.alive
    finally:
        job.close()


def test_the_image_plane_maps_pixels_to_image_coordinates():
    # Looking straight at the plane from z = h with a 90-degree FOV: the view spans 2h x 2h.
    cam = Camera(100, 100, 90.0, look_at(np.array([0.0, 0.0, 0.5]), np.zeros(3), np.array([0.0, 1.0, 0.0])))
    uv, inside = image_plane_uv(cam, aspect=1.0)
    # The view is exactly the unit image: every pixel shows it, centres at (x + 0.5) / 100.
    assert inside.all()
    np.testing.assert_allclose(uv[0, 0], [0.005, 0.005], atol=1e-6)  # top-left pixel = image top-left
    np.testing.assert_allclose(uv[99, 99], [0.995, 0.995], atol=1e-6)
    np.testing.assert_allclose(uv[10, 70], [0.705, 0.105], atol=1e-6)
    # From twice as far only the middle half shows the image; looking away shows none of it.
    uv, inside = image_plane_uv(cam.__class__(100, 100, 90.0, look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3),
                                                                      np.array([0.0, 1.0, 0.0]))), 1.0)  # fmt: skip
    assert inside.sum() == 50 * 50 and inside[25:75, 25:75].all()
    away = Camera(32, 32, 60.0, look_at(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 2.0]), np.array([0.0, 1.0, 0.0])))
    assert not image_plane_uv(away, 1.0)[1].any()


def test_only_visible_image_pixels_are_evaluated():
    evaluated = []

    def evaluate(uv):
        evaluated.append(len(uv))
        return np.stack([uv[:, 0], uv[:, 1], np.ones(len(uv))], 1).astype(np.float32)

    cam = Camera(80, 80, 90.0, look_at(np.array([0.0, 0.0, 1.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])))
    out = render_image_plane(evaluate, cam, 1.0, (0.1, 0.2, 0.3))
    assert evaluated == [40 * 40]
    np.testing.assert_allclose(out[0, 0], [0.1, 0.2, 0.3])  # background around the image
    np.testing.assert_allclose(out[20, 20], [0.0125, 0.0125, 1.0], atol=1e-5)  # first image pixel: u = v = 0.5 / 40
