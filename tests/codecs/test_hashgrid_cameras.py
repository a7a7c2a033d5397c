"""Cameras of Instant-NGP scenes: instant-ngp's nerf_matrix_to_ngp / ngp_matrix_to_nerf with the
snapshot's dataset scale and offset, rays of a holoscope Camera in NGP space, and the stored view
(matrix, fov_axis, relative_focal_length, zoom) as a Camera in the scene's world."""

from __future__ import annotations

import math

import numpy as np
import pytest

from holoscope.codecs.hashgrid.cameras import (DEFAULT_FOV_Y, SceneTransform, camera_rays, nerf_matrix_to_ngp,
                                               ngp_matrix_to_nerf, scene_transform, stored_camera)  # fmt: skip
from holoscope.codecs.hashgrid.writer import NerfExtras
from holoscope.core.camera import Camera, look_at
from holoscope.core.errors import CorruptStream
from tests.hashgrid_data import random_snapshot


def _rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _c2w(seed):
    m = np.eye(4)
    m[:3, :3] = _rotation(seed)
    m[:3, 3] = np.random.default_rng(seed + 100).normal(size=3)
    return m


def test_nerf_to_ngp_negates_columns_1_2_scales_offsets_and_cycles_axes():
    c2w = look_at(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 0.0]), np.array([0.0, 1.0, 0.0]))  # looks down -z
    m = nerf_matrix_to_ngp(c2w, 0.5, (0.1, 0.2, 0.3))
    np.testing.assert_allclose(m[:, 3], [2.0 * 0.5 + 0.2, 3.0 * 0.5 + 0.3, 1.0 * 0.5 + 0.1])  # offset before the cycle
    np.testing.assert_allclose(m[:, 2], [0.0, -1.0, 0.0], atol=1e-12)  # forward: world -z -> NGP -y
    np.testing.assert_allclose(m[:, 1], [-1.0, 0.0, 0.0], atol=1e-12)  # image down: world -y -> NGP -x
    np.testing.assert_allclose(m[:, 0], [0.0, 0.0, 1.0], atol=1e-12)  # right: world +x -> NGP +z
    t = SceneTransform(0.5, (0.1, 0.2, 0.3))
    np.testing.assert_allclose(t.point_to_ngp([1.0, 2.0, 3.0]), m[:, 3])
    np.testing.assert_allclose(t.point_from_ngp(m[:, 3]), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("transform", [SceneTransform(), SceneTransform(0.25, (0.3, -0.2, 0.7)),
                                       SceneTransform(2.0, (0.5, 0.5, 0.5), cycle=False, mitsuba=True),
                                       SceneTransform.identity()])  # fmt: skip
def test_cameras_round_trip_nerf_ngp_nerf(transform):
    for seed in range(5):
        c2w = _c2w(seed)
        np.testing.assert_allclose(transform.matrix_from_ngp(transform.matrix_to_ngp(c2w)), c2w, atol=1e-12)
    np.testing.assert_allclose(ngp_matrix_to_nerf(nerf_matrix_to_ngp(_c2w(9))), _c2w(9), atol=1e-12)


def test_from_mitsuba_datasets_net_negate_columns_0_and_1_without_cycling():
    c2w = _c2w(4)
    m = SceneTransform(1.0, (0.0, 0.0, 0.0), cycle=False, mitsuba=True).matrix_to_ngp(c2w)
    np.testing.assert_allclose(m[:, :3], c2w[:3, :3] * [-1, -1, 1])


@pytest.mark.parametrize("transform", [SceneTransform(0.4, (0.5, 0.4, 0.6)), SceneTransform.identity()])
def test_a_world_point_lies_on_the_ngp_ray_of_the_pixel_it_projects_to(transform):
    cam = Camera(40, 30, 55.0, _c2w(7))
    origin, dirs = camera_rays(cam, transform)
    assert dirs.shape == (30, 40, 3)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(origin, transform.point_to_ngp(cam.position), atol=1e-6)
    for x, y in [(0, 0), (39, 0), (17, 22), (39, 29)]:
        # the pixel centre in OpenGL camera axes (row 0 at the top), 2.5 units out
        d_cam = np.array([(x + 0.5 - 20) / cam.focal, -(y + 0.5 - 15) / cam.focal, -1.0])
        point = cam.camera_to_world[:3, :3] @ d_cam * 2.5 + cam.position
        to = transform.point_to_ngp(point) - origin
        np.testing.assert_allclose(dirs[y, x], to / np.linalg.norm(to), atol=2e-6)
    _, top = camera_rays(cam, transform, rows=slice(0, 3))
    np.testing.assert_array_equal(top, dirs[:3])


def test_the_vertical_field_of_view_spans_the_image_height():
    cam = Camera(64, 48, 60.0)  # identity pose: looking down world -z
    _, dirs = camera_rays(cam, SceneTransform.identity())
    top = np.degrees(np.arctan2(dirs[0, 32, 1], -dirs[0, 32, 2]))  # pixel centre half a pixel inside
    assert top == pytest.approx(math.degrees(math.atan(math.tan(math.radians(30)) * 47 / 48)), abs=1e-4)
    assert dirs[0, 32, 1] > 0 > dirs[47, 32, 1]  # row 0 at the top (world +y)


@pytest.mark.parametrize("fov_axis", [0, 1])
def test_the_stored_view_becomes_a_camera_in_the_dataset_world(fov_axis):
    c2w = _c2w(11)
    extras = NerfExtras(dataset_scale=0.2, dataset_offset=(0.5, 0.6, 0.4))
    t = SceneTransform(0.2, (0.5, 0.6, 0.4))
    snap = random_snapshot(nerf=extras, camera_matrix=t.matrix_to_ngp(c2w), fov_axis=fov_axis,
                           relative_focal_length=(0.9, 0.9))  # fmt: skip
    assert scene_transform(snap) == t
    cam = stored_camera(snap, 80, 60)
    np.testing.assert_allclose(cam.camera_to_world, c2w, atol=1e-9)
    fy = 0.9 * (80, 60)[fov_axis]  # relative_focal_length * resolution[fov_axis] * zoom
    assert cam.focal == pytest.approx(fy)
    # instant-ngp's own rays from the stored matrix: ((x+0.5)/W - 0.5) * W / fx, ..., 1
    m = np.asarray(snap.document["snapshot"]["camera"]["matrix"])
    origin, dirs = camera_rays(cam, scene_transform(snap))
    for x, y in [(0, 0), (79, 59), (10, 40)]:
        d = m[:, :3] @ [((x + 0.5) / 80 - 0.5) * 80 / fy, ((y + 0.5) / 60 - 0.5) * 60 / fy, 1.0]
        np.testing.assert_allclose(dirs[y, x], d / np.linalg.norm(d), atol=2e-6)
    np.testing.assert_allclose(origin, m[:, 3], atol=1e-6)


def test_sdf_scenes_live_in_ngp_space_and_instant_ngps_default_view_is_upright():
    default = np.array([[1.0, 0, 0, 0.5], [0, -1.0, 0, 0.5], [0, 0, -1.0, 2.0]])
    snap = random_snapshot("sdf", "L16F2", camera_matrix=default, relative_focal_length=(1.0571612, 1.0571612))
    assert scene_transform(snap) == SceneTransform.identity()
    cam = stored_camera(snap, 64, 64)
    np.testing.assert_allclose(cam.camera_to_world, [[1, 0, 0, 0.5], [0, 1, 0, 0.5], [0, 0, 1, 2.0], [0, 0, 0, 1]])
    assert cam.fov_y == pytest.approx(DEFAULT_FOV_Y, abs=0.01)
    del snap.document["snapshot"]["camera"]  # no stored view: instant-ngp's default
    cam = stored_camera(snap, 64, 64)
    assert cam.fov_y == pytest.approx(DEFAULT_FOV_Y) and cam.position == pytest.approx([0.5, 0.5, 2.0])


@pytest.mark.parametrize("key, value, match", [("matrix", [[1, 0, 0, 0]] * 2, "3 rows"),
                                               ("matrix", [[1, 0, 0, float("nan")]] * 3, "finite"),
                                               ("relative_focal_length", [0.0, 0.0], "not positive"),
                                               ("relative_focal_length", [1e-6, 1e-6], "field of view"),
                                               ("fov_axis", 2, "fov_axis")])  # fmt: skip
def test_a_damaged_stored_view_is_refused_clearly(key, value, match):
    snap = random_snapshot()
    snap.document["snapshot"]["camera"][key] = value
    with pytest.raises(CorruptStream, match=match):
        stored_camera(snap, 32, 32)


def test_a_damaged_dataset_transform_is_refused_clearly():
    snap = random_snapshot()
    snap.document["snapshot"]["nerf"]["dataset"]["scale"] = -1.0
    with pytest.raises(CorruptStream, match="scale"):
        scene_transform(snap)
    snap.document["snapshot"]["nerf"]["dataset"]["scale"] = 0.3
    snap.document["snapshot"]["nerf"]["dataset"]["offset"] = [0.5, "x", 0.5]
    with pytest.raises(CorruptStream, match="offset"):
        scene_transform(snap)
