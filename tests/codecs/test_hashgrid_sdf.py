"""SDF snapshots sphere-traced with instant-ngp's rules, on an analytic sphere SDF (level 0 holds
|p - c| - R): silhouette from the camera model, hits on the sphere, central-difference normals,
instant-ngp's default shading (hand-computed head-on value, black where the sun does not reach),
background where rays miss, the stored view honoured."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from holoscope.codecs.hashgrid.cameras import DEFAULT_VIEW, camera_rays, scene_transform  # noqa: E402
from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer  # noqa: E402
from holoscope.codecs.hashgrid.neural.sdf import shade  # noqa: E402
from tests.hashgrid_data import analytic_sdf, camera_at, impact_parameters  # noqa: E402

BG = (0.2, 0.4, 0.6)


@pytest.fixture(scope="module")
def sphere():
    return analytic_sdf(radius=0.3, centre=(0.5, 0.5, 0.5))


def test_the_sphere_sdf_is_hit_inside_its_silhouette_and_shows_the_background_outside(sphere):
    snap = sphere.snapshot
    cam = camera_at(snap, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 40, 40, 40.0)
    image = SceneRenderer(snap, device="cpu").render(cam, background=BG)
    b = impact_parameters(cam, snap, sphere.centre)
    background = np.all(np.abs(image - np.float32(BG)) < 2e-5, axis=-1)
    assert not background[b < sphere.radius - 0.005].any()
    assert background[b > sphere.radius + 0.005].all()
    assert (b < sphere.radius - 0.005).sum() > 200


def test_hits_lie_on_the_near_side_of_the_sphere_with_its_normals(sphere):
    snap = sphere.snapshot
    r = SceneRenderer(snap, device="cpu")
    cam = camera_at(snap, (1.6, 1.1, 1.9), (0.5, 0.5, 0.5), 24, 24, 40.0)
    origin, dirs = camera_rays(cam, scene_transform(snap))
    d = torch.from_numpy(dirs.reshape(-1, 3))
    with torch.inference_mode():
        hit, pos, steps = r.tracer.trace(torch.from_numpy(origin).expand_as(d), d)
        normals = r.tracer.normals(pos[hit]).numpy()
    p = pos[hit].numpy() - sphere.centre
    assert hit.sum() > 50
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), sphere.radius, atol=2e-3)
    assert ((p * -d[hit].numpy()).sum(1) > 0).all()  # the first intersection, facing the camera
    cos = (normals * p / np.linalg.norm(p, axis=1, keepdims=True)).sum(1)
    assert cos.min() > 0.99
    assert int(steps[hit].max()) < 200


def test_shading_is_instant_ngps_default_brdf_head_on():
    n = torch.tensor([[0.0, 0.0, 1.0]])
    # normal, view and sun aligned: Fd = 1, D = 1/(pi a^2), G = 1/4, F = 0.08 with a = 0.25 (roughness 0.5)
    brdf = 0.64 / np.pi + 0.25 * 0.08 / (np.pi * 0.0625)
    got = shade(n, torch.tensor([[0.0, 0.0, -1.0]]), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)).numpy()[0]
    np.testing.assert_allclose(got, brdf * 4 * np.array([1.0, 225 / 255, 195 / 255]), rtol=1e-5)
    dark = shade(n, torch.tensor([[0.0, 0.0, -1.0]]), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)).numpy()[0]
    np.testing.assert_array_equal(dark, 0.0)  # instant-ngp's default ambient colour is black
    sky = shade(n, torch.tensor([[0.0, 0.0, -1.0]]), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0), ambient=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(sky.numpy()[0], 0.5 * 4 * np.array([195, 215, 255]) / 255 * 0.2 * 0.64, rtol=1e-5)


def test_the_side_away_from_the_sun_is_black_and_the_lit_side_is_not(sphere):
    snap = sphere.snapshot
    sun = np.array(snap.document["snapshot"]["sun_dir"], float)
    cam = camera_at(snap, (0.5, 0.5, 2.2), (0.5, 0.5, 0.5), 32, 32, 40.0)
    image = SceneRenderer(snap, device="cpu").render(cam, background=BG)
    origin, dirs = camera_rays(cam, scene_transform(snap))
    to = sphere.centre - origin
    along = dirs @ to
    disc = along**2 - (to @ to - sphere.radius**2)
    inner = disc > 0.004  # comfortably inside the silhouette
    t = along - np.sqrt(np.maximum(disc, 0))
    normal = (origin + dirs * t[..., None] - sphere.centre) / sphere.radius
    n_dot_l = normal @ (sun / np.linalg.norm(sun))
    assert (image[inner & (n_dot_l < -0.1)] == 0).all()
    assert (image[inner & (n_dot_l > 0.2)].min(axis=-1) > 0.2).all()


def test_the_stored_view_is_honoured(sphere):
    snap = analytic_sdf(radius=0.3, camera_matrix=DEFAULT_VIEW, relative_focal_length=(1.2, 1.2)).snapshot
    r = SceneRenderer(snap, device="cpu")
    stored = r.default_camera(20, 16)
    assert stored.position == pytest.approx([0.5, 0.5, 2.0])
    assert stored.focal == pytest.approx(1.2 * 16)  # relative focal length * height (fov_axis 1)
    same = camera_at(snap, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 20, 16, stored.fov_y)
    np.testing.assert_array_equal(r.render(stored), r.render(same))
