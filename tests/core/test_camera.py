"""Pinhole cameras, look_at, orbit/fly controllers and automatic framing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from holoscope.core.camera import (
    UP_AXES,
    Camera,
    FlyController,
    OrbitController,
    frame_bounds,
    look_at,
    parse_up,
)
from holoscope.core.errors import InvalidArgument


def assert_rigid(c2w: np.ndarray) -> None:
    r = c2w[:3, :3]
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(c2w[3], [0, 0, 0, 1])


def project(camera: Camera, point: np.ndarray) -> tuple[np.ndarray, float]:
    """World point -> (pixel coordinates, view depth) through view and projection matrices."""
    clip = camera.projection_matrix() @ camera.view_matrix @ np.append(point, 1.0)
    ndc = clip[:3] / clip[3]
    px = (ndc[0] + 1) * camera.width / 2
    py = (1 - ndc[1]) * camera.height / 2
    return np.array([px, py]), float(clip[3])


# look_at -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "eye, target, up",
    [
        ([0, 0, 5], [0, 0, 0], [0, 1, 0]),
        ([3, -2, 1], [0.5, 0.2, -1], [0, 1, 0]),
        ([1, 2, 3], [-4, 0, 2], [0, 0, 1]),
        ([0, 4, 0], [0, 0, 0], [0, 1, 0]),  # looking straight down the up axis
    ],
)
def test_look_at_orthonormal_and_faces_target(eye, target, up) -> None:
    eye, target = np.array(eye, float), np.array(target, float)
    c2w = look_at(eye, target, np.array(up, float))
    assert_rigid(c2w)
    np.testing.assert_allclose(c2w[:3, 3], eye)
    towards = (target - eye) / np.linalg.norm(target - eye)
    np.testing.assert_allclose(-c2w[:3, 2], towards, atol=1e-12)


def test_look_at_keeps_up_upwards() -> None:
    c2w = look_at(np.array([2.0, 1.0, 4.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    assert c2w[:3, 1] @ np.array([0.0, 1.0, 0.0]) > 0.5
    assert abs(c2w[:3, 0][1]) < 1e-12  # right stays horizontal


def test_look_at_rejects_eye_on_target() -> None:
    with pytest.raises(InvalidArgument):
        look_at(np.ones(3), np.ones(3), np.array([0.0, 1.0, 0.0]))


def test_view_matrix_inverts_camera_to_world() -> None:
    c2w = look_at(np.array([3.0, -2.0, 1.5]), np.array([0.1, 0.3, -0.7]), np.array([0.0, 1.0, 0.0]))
    cam = Camera(64, 48, 50.0, c2w)
    np.testing.assert_allclose(cam.view_matrix @ cam.camera_to_world, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(cam.view_matrix, np.linalg.inv(c2w), atol=1e-12)
    np.testing.assert_allclose(cam.position, [3.0, -2.0, 1.5])


# Camera validation and intrinsics ------------------------------------------------------


@pytest.mark.parametrize("width, height", [(0, 10), (10, 0), (-5, 10), (10, -1)])
def test_camera_rejects_bad_size(width: int, height: int) -> None:
    with pytest.raises(InvalidArgument, match="size"):
        Camera(width, height, 50.0)


@pytest.mark.parametrize("fov", [0.0, 0.05, 179.5, 180.0, -10.0, float("nan")])
def test_camera_rejects_bad_fov(fov: float) -> None:
    with pytest.raises(InvalidArgument, match="field of view"):
        Camera(64, 48, fov)


@pytest.mark.parametrize("bad", [np.full((4, 4), np.nan), np.eye(3), np.array([[np.inf] * 4] * 4)])
def test_camera_rejects_bad_matrix(bad: np.ndarray) -> None:
    with pytest.raises(InvalidArgument, match="camera_to_world"):
        Camera(64, 48, 50.0, bad)


def test_camera_accepts_fov_limits() -> None:
    Camera(8, 8, 0.1)
    Camera(8, 8, 179.0)


@pytest.mark.parametrize("fov, height", [(60.0, 480), (90.0, 100), (30.0, 1081)])
def test_focal_length(fov: float, height: int) -> None:
    cam = Camera(640, height, fov)
    assert cam.focal == pytest.approx(height / (2 * math.tan(math.radians(fov) / 2)))
    assert cam.tan_half_fov_x == pytest.approx(math.tan(math.radians(fov) / 2) * 640 / height)


@pytest.mark.parametrize("depth", [0.5, 3.0, 250.0])
def test_projection_maps_optical_axis_to_centre(depth: float) -> None:
    c2w = look_at(np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 0.0]), np.array([0.0, 1.0, 0.0]))
    cam = Camera(160, 90, 45.0, c2w)
    point = cam.position - depth * cam.camera_to_world[:3, 2]
    clip = cam.projection_matrix() @ cam.view_matrix @ np.append(point, 1.0)
    assert clip[3] == pytest.approx(depth)
    np.testing.assert_allclose(clip[:2] / clip[3], [0.0, 0.0], atol=1e-9)
    assert -1.0 < clip[2] / clip[3] < 1.0


def test_projection_maps_fov_edges_to_ndc_edges() -> None:
    cam = Camera(200, 100, 60.0)  # at the origin, looking down -Z
    depth = 4.0
    top = np.array([0.0, depth * cam.tan_half_fov_y, -depth, 1.0])
    right = np.array([depth * cam.tan_half_fov_x, 0.0, -depth, 1.0])
    p = cam.projection_matrix()
    clip_top, clip_right = p @ top, p @ right
    assert clip_top[1] / clip_top[3] == pytest.approx(1.0)
    assert clip_right[0] / clip_right[3] == pytest.approx(1.0)
    near = p @ np.array([0.0, 0.0, -cam.near, 1.0])
    assert near[2] / near[3] == pytest.approx(-1.0)


# OrbitController ------------------------------------------------------------------------


def test_orbit_eye_at_distance() -> None:
    orbit = OrbitController(target=np.array([1.0, 2.0, 3.0]), distance=4.0, azimuth=0.7, elevation=0.4)
    assert np.linalg.norm(orbit.eye() - orbit.target) == pytest.approx(4.0)
    c2w = orbit.camera_to_world()
    assert_rigid(c2w)
    towards = (orbit.target - orbit.eye()) / 4.0
    np.testing.assert_allclose(-c2w[:3, 2], towards, atol=1e-12)


def test_orbit_rotate_changes_eye_and_clamps_elevation() -> None:
    orbit = OrbitController(target=np.zeros(3), distance=2.0)
    before = orbit.eye()
    orbit.rotate(0.5, 0.0)
    assert not np.allclose(orbit.eye(), before)
    assert np.linalg.norm(orbit.eye()) == pytest.approx(2.0)

    orbit.rotate(0.0, 10.0)
    assert orbit.elevation < math.pi / 2
    assert orbit.elevation == pytest.approx(math.radians(89.0))
    assert np.all(np.isfinite(orbit.camera_to_world()))
    assert orbit.eye()[1] > 1.99  # almost straight above the target

    orbit.rotate(0.0, -20.0)
    assert orbit.elevation == pytest.approx(-math.radians(89.0))


def test_orbit_zoom() -> None:
    orbit = OrbitController(target=np.zeros(3), distance=2.0)
    orbit.zoom(0.5)
    assert orbit.distance == pytest.approx(1.0)
    assert np.linalg.norm(orbit.eye()) == pytest.approx(1.0)
    orbit.zoom(3.0)
    assert orbit.distance == pytest.approx(3.0)
    orbit.zoom(0.0)
    assert orbit.distance > 0


def test_orbit_pan_moves_target_in_view_plane() -> None:
    orbit = OrbitController(target=np.zeros(3), distance=2.0, azimuth=0.3, elevation=0.2)
    c2w = orbit.camera_to_world()
    orbit.pan(0.1, 0.0)
    moved = orbit.target
    assert np.linalg.norm(moved) == pytest.approx(0.2)
    assert abs(moved @ c2w[:3, 2]) < 1e-12  # no motion along the viewing direction
    assert moved @ c2w[:3, 0] < 0  # drag convention: positive dx moves the target against camera right
    orbit.pan(0.0, 0.1)
    assert (orbit.target - moved) @ c2w[:3, 1] == pytest.approx(0.2)
    assert orbit.distance == 2.0


@pytest.mark.parametrize("up", ["+y", "-y", "+z"])
@pytest.mark.parametrize("azimuth, elevation", [(0.0, 0.3), (1.2, -0.5), (-2.5, 1.0)])
def test_orbit_up_axes(up: str, azimuth: float, elevation: float) -> None:
    orbit = OrbitController(target=np.array([0.5, -0.2, 0.1]), distance=3.0, azimuth=azimuth, elevation=elevation, up=up)
    c2w = orbit.camera_to_world()
    assert_rigid(c2w)
    world_up = UP_AXES[up]
    assert c2w[:3, 1] @ world_up > 0
    # Positive elevation puts the eye on the "up" side of the target.
    assert np.sign((orbit.eye() - orbit.target) @ world_up) == np.sign(elevation)


def test_orbit_rejects_unknown_up() -> None:
    with pytest.raises(InvalidArgument):
        OrbitController(target=np.zeros(3), distance=1.0, up="x")


# FlyController -------------------------------------------------------------------------


@pytest.mark.parametrize("up", ["+y", "-y", "+z"])
def test_fly_move_forward_one_unit(up: str) -> None:
    fly = FlyController(position=np.array([1.0, 2.0, 3.0]), yaw=0.4, pitch=-0.3, up=up)
    start = fly.position.copy()
    forward = fly.forward()
    assert np.linalg.norm(forward) == pytest.approx(1.0)
    c2w = fly.camera_to_world()
    np.testing.assert_allclose(-c2w[:3, 2], forward, atol=1e-12)
    assert c2w[:3, 1] @ UP_AXES[up] > 0
    fly.move(1.0, 0.0, 0.0)
    np.testing.assert_allclose(fly.position - start, forward, atol=1e-12)
    assert np.linalg.norm(fly.position - start) == pytest.approx(1.0)


def test_fly_strafe_and_rise() -> None:
    fly = FlyController(position=np.zeros(3))
    right = fly.camera_to_world()[:3, 0]
    fly.move(0.0, 2.0, 0.0)
    np.testing.assert_allclose(fly.position, 2.0 * right, atol=1e-12)
    fly.move(0.0, 0.0, 1.5)
    np.testing.assert_allclose(fly.position, 2.0 * right + [0.0, 1.5, 0.0], atol=1e-12)


def test_fly_turn_clamps_pitch() -> None:
    fly = FlyController(position=np.zeros(3))
    fly.turn(0.0, 5.0)
    assert fly.pitch == pytest.approx(math.radians(89.0))
    assert np.all(np.isfinite(fly.camera_to_world()))


# frame_bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize("width, height", [(640, 480), (1920, 1080), (300, 900), (1000, 1000), (2000, 200)])
@pytest.mark.parametrize("up", ["+y", "-y", "+z"])
def test_frame_bounds_fits_every_corner(width: int, height: int, up: str) -> None:
    lo, hi = np.array([-1.0, 2.0, -0.5]), np.array([3.0, 2.5, 4.0])
    fov = 50.0
    orbit = frame_bounds(lo, hi, fov_y=fov, aspect=width / height, up=up)
    np.testing.assert_allclose(orbit.target, (lo + hi) / 2)
    cam = Camera(width, height, fov, orbit.camera_to_world())
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    for corner in corners:
        pixel, depth = project(cam, corner)
        assert depth > cam.near
        assert 0 <= pixel[0] <= width, (corner, pixel)
        assert 0 <= pixel[1] <= height, (corner, pixel)


def test_frame_bounds_degenerate_box() -> None:
    orbit = frame_bounds(np.ones(3), np.ones(3), fov_y=60.0, aspect=1.5)
    assert orbit.distance > 0
    assert np.all(np.isfinite(orbit.camera_to_world()))


# parse_up ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("+y", "+y"), ("y", "+y"), ("Y", "+y"), ("-y", "-y"), ("-Y", "-y"), ("+z", "+z"), ("Z", "+z"), (" z ", "+z")],
)
def test_parse_up_accepts(text: str, expected: str) -> None:
    assert parse_up(text) == expected


@pytest.mark.parametrize("text", ["x", "+x", "-z", "", "up", "yy"])
def test_parse_up_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="up axis"):
        parse_up(text)


@pytest.mark.parametrize("up", ["+y", "-y", "+z"])
def test_frame_bounds_keeps_the_box_in_view_for_a_whole_orbit_and_fits_tightly(up: str) -> None:
    lo, hi = np.array([-2.0, -0.3, -1.0]), np.array([2.0, 0.4, 1.5])
    width, height, fov = 640, 360, 50.0
    orbit = frame_bounds(lo, hi, fov_y=fov, aspect=width / height, up=up)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    widest = 0.0
    for azimuth in np.linspace(0, 2 * np.pi, 37):
        orbit.azimuth = float(azimuth)
        cam = Camera(width, height, fov, orbit.camera_to_world())
        for corner in corners:
            pixel, _ = project(cam, corner)
            assert -1e-6 <= pixel[0] <= width + 1e-6 and -1e-6 <= pixel[1] <= height + 1e-6
            widest = max(widest, abs(pixel[0] / width - 0.5) * 2, abs(pixel[1] / height - 0.5) * 2)
    assert widest > 0.85, "the fit should be tight, not a loose bounding sphere"
