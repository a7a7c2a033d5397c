import numpy as np
import pytest

from holoscope.core.camera_rig import Bounds, CameraRig


def rig(up: str = "+y") -> CameraRig:
    return CameraRig(Bounds(np.array([-1.0, -0.5, -1.0]), np.array([1.0, 0.5, 1.0])), up=up)


def forward(c2w: np.ndarray) -> np.ndarray:
    return -c2w[:3, 2]


def test_reset_frames_the_bounds_centre():
    r = rig()
    target_dir = -r.eye() / np.linalg.norm(r.eye())
    np.testing.assert_allclose(forward(r.camera_to_world()), target_dir, atol=1e-9)


def test_orbit_drag_keeps_distance_and_changes_view():
    r = rig()
    before = r.eye()
    r.orbit_drag(100, 0)
    after = r.eye()
    assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before))
    assert not np.allclose(after, before)


def test_zoom_in_moves_closer_and_pan_moves_target():
    r = rig()
    d0 = r.orbit.distance
    r.zoom_steps(2)
    assert r.orbit.distance < d0
    t0 = r.orbit.target.copy()
    r.pan_drag(50, 0, 600)
    assert not np.allclose(r.orbit.target, t0)


@pytest.mark.parametrize("up", ["+y", "-y", "+z"])
def test_entering_fly_mode_keeps_the_pose(up):
    r = rig(up)
    r.orbit_drag(37, -21)
    c2w = r.camera_to_world()
    r.fly_look(0, 0)  # enter fly mode without turning
    np.testing.assert_allclose(r.camera_to_world(), c2w, atol=1e-9)
    r.fly_move(1, 0, 0, seconds=0.5)
    moved = r.eye() - c2w[:3, 3]
    np.testing.assert_allclose(moved / np.linalg.norm(moved), forward(c2w), atol=1e-9)
    # Back to orbiting: the view direction is kept, no jump.
    c2w_fly = r.camera_to_world()
    r.orbit_drag(0, 0)
    np.testing.assert_allclose(r.camera_to_world(), c2w_fly, atol=1e-9)


def test_fast_fly_is_four_times_faster():
    slow, fast = rig(), rig()
    e = slow.eye()
    slow.fly_move(1, 0, 0, 0.1)
    fast.fly_move(1, 0, 0, 0.1, fast=True)
    assert np.linalg.norm(fast.eye() - e) == pytest.approx(4 * np.linalg.norm(slow.eye() - e))


def test_focus_keeps_the_eye_and_looks_at_the_point():
    r = rig()
    eye = r.eye()
    point = np.array([0.5, 0.2, -0.3])
    r.focus(point)
    np.testing.assert_allclose(r.eye(), eye, atol=1e-9)
    direction = (point - eye) / np.linalg.norm(point - eye)
    np.testing.assert_allclose(forward(r.camera_to_world()), direction, atol=1e-9)


def test_camera_has_requested_size_and_fov():
    r = rig()
    r.set_fov(70)
    cam = r.camera(320, 200)
    assert (cam.width, cam.height, cam.fov_y) == (320, 200, 70)
