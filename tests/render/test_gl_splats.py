"""The OpenGL splat renderer against the CPU reference rasterizer (the INRIA rules).

Runs on a real standalone EGL context (Mesa llvmpipe in CI); any GL error fails the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from holoscope.codecs.formats.ply_inria import read_ply
from holoscope.core.camera import Camera, auto_near, look_at
from holoscope.core.frames import SplatCloud
from holoscope.render.export import SplatFrameRenderer, default_orbit
from holoscope.render.gl.splat_renderer import RenderSettings
from holoscope.render.reference import render_reference

pytestmark = pytest.mark.gl
MIN_PSNR = 35.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.fixture
def render_gl(gl_ctx):
    renderers: list[SplatFrameRenderer] = []

    def render(cloud: SplatCloud, camera: Camera, settings: RenderSettings = RenderSettings()) -> np.ndarray:
        r = SplatFrameRenderer(cloud, gl_ctx)
        renderers.append(r)
        return r.render(camera, settings)

    yield render
    for r in renderers:
        r.release()


def orbit_cameras(cloud: SplatCloud, up: str, n: int, size=(160, 120)) -> list[Camera]:
    orbit = default_orbit(cloud, fov_y=50, aspect=size[0] / size[1], up=up)
    cams = []
    for i in range(n):
        orbit.azimuth = 2 * math.pi * i / n
        orbit.elevation = 0.35 * math.cos(i)
        cams.append(Camera(size[0], size[1], 50, orbit.camera_to_world(), near=auto_near(orbit.distance)))
    return cams


@pytest.mark.parametrize("name", ["lod4.ply", "lod5.ply"])
def test_real_samples_match_reference(samples_dir, render_gl, name):
    cloud = read_ply(samples_dir / "splats" / name)
    for camera in orbit_cameras(cloud, "-y", 4):
        gl = render_gl(cloud, camera)
        ref = render_reference(cloud, camera)
        assert ref.max() > 0.05, "the view must actually show the scene"
        assert psnr(gl, ref) >= MIN_PSNR


def synthetic_cloud(n: int, sh_degree: int, seed: int = 0, anisotropy: float = 8.0) -> SplatCloud:
    rng = np.random.default_rng(seed)
    k = (sh_degree + 1) ** 2
    means = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    base = rng.uniform(0.02, 0.08, (n, 1))
    stretch = np.exp(rng.uniform(-np.log(anisotropy), np.log(anisotropy), (n, 3)) / 2)
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    sh = rng.normal(0, 0.6, (n, k, 3))
    sh[:, 0] = rng.uniform(-1.5, 1.5, (n, 3))
    return SplatCloud(
        means=means,
        scales=(base * stretch).astype(np.float32),
        quats=quats.astype(np.float32),
        opacities=rng.uniform(0.05, 1.0, n).astype(np.float32),
        sh=sh.astype(np.float32),
    )


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_synthetic_sh_and_anisotropic_splats(render_gl, sh_degree):
    cloud = synthetic_cloud(1500, sh_degree, seed=sh_degree)
    for eye in ([0.3, 0.5, 3.2], [-2.8, 1.0, -1.5], [0.1, -3.0, 0.4]):
        camera = Camera(160, 120, 55, look_at(np.array(eye), np.zeros(3), np.array([0, 1.0, 0])))
        gl = render_gl(cloud, camera)
        ref = render_reference(cloud, camera)
        assert ref.std() > 0.05
        assert psnr(gl, ref) >= MIN_PSNR


def test_near_plane_and_huge_splats(render_gl):
    """The camera sits inside the cloud: splats straddle the near plane, some fill the view."""
    cloud = synthetic_cloud(800, 3, seed=11, anisotropy=30.0)
    camera = Camera(160, 120, 70, look_at(np.array([0.0, 0.0, 0.3]), np.array([0.0, 0.0, -1.0]), np.array([0, 1.0, 0])))
    depths = -(cloud.means @ camera.view_matrix[2, :3] + camera.view_matrix[2, 3])
    assert np.any((depths > 0) & (depths < camera.near)) and np.any(depths < 0)
    gl = render_gl(cloud, camera)
    ref = render_reference(cloud, camera)
    assert psnr(gl, ref) >= MIN_PSNR


def test_wide_image_background_and_settings(render_gl):
    cloud = synthetic_cloud(600, 3, seed=5)
    camera = Camera(200, 90, 40, look_at(np.array([2.5, 1.5, 2.5]), np.zeros(3), np.array([0, 1.0, 0])))
    settings = RenderSettings(background=(0.2, 0.4, 0.9), sh_degree_limit=1, scale_modifier=0.6)
    reduced = SplatCloud(cloud.means, cloud.scales * np.float32(0.6), cloud.quats, cloud.opacities, cloud.sh[:, :4].copy())
    gl = render_gl(cloud, camera, settings)
    ref = render_reference(reduced, camera, background=settings.background)
    assert psnr(gl, ref) >= MIN_PSNR
    # The settings really matter: ignoring them gives a clearly different picture.
    assert psnr(render_reference(cloud, camera, background=settings.background), ref) < MIN_PSNR


def test_everything_behind_the_camera_shows_background(render_gl):
    cloud = synthetic_cloud(50, 0)
    camera = Camera(64, 48, 50, look_at(np.array([0, 0, 5.0]), np.array([0, 0, 10.0]), np.array([0, 1.0, 0])))
    img = render_gl(cloud, camera, RenderSettings(background=(0.25, 0.5, 0.75)))
    assert np.allclose(img, [0.25, 0.5, 0.75], atol=1e-6)


def test_orientation_matches_image_rows(render_gl):
    """A single red splat in the upper-left of the view lands in the upper-left pixels."""
    camera = Camera(80, 60, 60, look_at(np.array([0, 0, 4.0]), np.zeros(3), np.array([0, 1.0, 0])))
    sh = np.zeros((1, 1, 3), np.float32)
    sh[0, 0] = (np.array([1.0, 0.0, 0.0]) - 0.5) / 0.28209479177387814
    cloud = SplatCloud(
        means=np.array([[-1.2, 0.8, 0.0]], np.float32),
        scales=np.full((1, 3), 0.1, np.float32),
        quats=np.array([[1, 0, 0, 0]], np.float32),
        opacities=np.array([0.9], np.float32),
        sh=sh,
    )
    img = render_gl(cloud, camera)
    row, col = np.unravel_index(np.argmax(img[..., 0]), img.shape[:2])
    assert row < 30 and col < 40
    assert img[row, col, 0] > 0.8 and img[row, col, 1] < 0.01


def test_zero_splats_draw_only_the_background(render_gl):
    empty = SplatCloud(
        np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32), np.zeros((0, 1, 3), np.float32),
    )  # fmt: skip
    img = render_gl(empty, Camera(32, 24, 50), RenderSettings(background=(0.1, 0.2, 0.3)))
    assert np.allclose(img, [0.1, 0.2, 0.3], atol=1e-3)
