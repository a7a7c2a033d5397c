"""nerfstudio camera paths in and out, and generated orbits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from holoscope.core.camera import Camera, OrbitController, look_at
from holoscope.core.camera_path import CameraPath, orbit_path, read_camera_path, write_camera_path
from holoscope.core.errors import InvalidArgument, SourceNotFound

# Row-major 4x4 with a rotation of 90 degrees about Y and the position (1, 2, 3).
ROW_MAJOR = [
    0.0, 0.0, 1.0, 1.0,
    0.0, 1.0, 0.0, 2.0,
    -1.0, 0.0, 0.0, 3.0,
    0.0, 0.0, 0.0, 1.0,
]  # fmt: skip


def nerfstudio_doc(**overrides) -> dict:
    doc = {
        "camera_type": "perspective",
        "render_width": 640,
        "render_height": 360,
        "fps": 24,
        "seconds": 2 / 24,
        "camera_path": [
            {"camera_to_world": ROW_MAJOR, "fov": 40.0, "aspect": 640 / 360},
            {"camera_to_world": list(np.eye(4).reshape(-1)), "fov": 55, "aspect": 640 / 360},
        ],
    }
    doc.update(overrides)
    return doc


def write_doc(tmp_path: Path, doc: object, name: str = "camera_path.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_read_nerfstudio_camera_path(tmp_path: Path) -> None:
    path = read_camera_path(write_doc(tmp_path, nerfstudio_doc()))
    assert isinstance(path, CameraPath)
    assert len(path) == 2
    assert path.fps == 24.0
    first, second = path.cameras
    assert (first.width, first.height) == (640, 360)
    assert (second.width, second.height) == (640, 360)
    assert first.fov_y == 40.0
    assert second.fov_y == 55.0


def test_matrix_is_row_major(tmp_path: Path) -> None:
    cam = read_camera_path(write_doc(tmp_path, nerfstudio_doc())).cameras[0]
    np.testing.assert_array_equal(cam.position, [1.0, 2.0, 3.0])  # translation in the last column
    np.testing.assert_array_equal(cam.camera_to_world[3], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(cam.camera_to_world[:3, 2], [1.0, 0.0, 0.0])  # backward axis
    np.testing.assert_array_equal(cam.camera_to_world, np.array(ROW_MAJOR).reshape(4, 4))


def test_defaults_and_near(tmp_path: Path) -> None:
    doc = {"camera_path": [{"camera_to_world": ROW_MAJOR}]}
    path = read_camera_path(write_doc(tmp_path, doc), near=0.01)
    cam = path.cameras[0]
    assert (cam.width, cam.height, cam.fov_y, path.fps) == (1920, 1080, 50.0, 30.0)
    assert cam.near == 0.01


def test_write_read_round_trip_is_exact(tmp_path: Path) -> None:
    orbit = OrbitController(target=np.array([0.1, -0.3, 0.7]), distance=2.345, azimuth=0.123, elevation=0.456)
    original = orbit_path(orbit, 7, width=320, height=200, fov_y=47.5, fps=29.97)
    out = tmp_path / "path.json"
    write_camera_path(original, out)
    back = read_camera_path(out)
    assert back.fps == original.fps
    assert len(back) == len(original)
    for a, b in zip(original.cameras, back.cameras):
        assert (a.width, a.height, a.fov_y, a.near) == (b.width, b.height, b.fov_y, b.near)
        np.testing.assert_array_equal(a.camera_to_world, b.camera_to_world)
    doc = json.loads(out.read_text())
    assert doc["render_width"] == 320 and doc["render_height"] == 200
    assert len(doc["camera_path"][0]["camera_to_world"]) == 16


def test_write_empty_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        write_camera_path(CameraPath((), 30.0), tmp_path / "x.json")


def test_resized() -> None:
    path = orbit_path(OrbitController(np.zeros(3), 1.0), 3, width=10, height=10, fov_y=50.0)
    resized = path.resized(64, 32)
    assert all((c.width, c.height) == (64, 32) for c in resized.cameras)
    assert resized.fps == path.fps


@pytest.mark.parametrize("frames", [2, 5, 36])
def test_orbit_path(frames: int) -> None:
    target = np.array([1.0, 0.5, -2.0])
    orbit = OrbitController(target=target, distance=3.0, azimuth=0.2, elevation=0.3, up="-y")
    path = orbit_path(orbit, frames, width=64, height=48, fov_y=60.0, fps=12.0)
    assert len(path) == frames
    assert path.fps == 12.0
    for cam in path.cameras:
        assert isinstance(cam, Camera)
        assert np.linalg.norm(cam.position - target) == pytest.approx(3.0)
        towards = (target - cam.position) / 3.0
        np.testing.assert_allclose(-cam.camera_to_world[:3, 2], towards, atol=1e-12)
    assert not np.allclose(path.cameras[0].position, path.cameras[-1].position)
    # The first camera is the orbit's own view, and the turn is evenly spaced.
    np.testing.assert_allclose(path.cameras[0].camera_to_world, orbit.camera_to_world())
    steps = [np.linalg.norm(a.position - b.position) for a, b in zip(path.cameras, path.cameras[1:])]
    np.testing.assert_allclose(steps, steps[0])


def test_orbit_path_needs_a_frame() -> None:
    with pytest.raises(InvalidArgument):
        orbit_path(OrbitController(np.zeros(3), 1.0), 0, width=8, height=8, fov_y=50.0)


# Malformed files ------------------------------------------------------------------------

BAD_DOCS = {
    "missing_list": ({"render_width": 64}, "camera_path"),
    "not_an_object": ([1, 2, 3], "camera_path"),
    "empty_list": (nerfstudio_doc(camera_path=[]), "empty"),
    "fifteen_numbers": (
        nerfstudio_doc(camera_path=[{"camera_to_world": ROW_MAJOR}, {"camera_to_world": ROW_MAJOR[:15]}]),
        "camera_path[1].camera_to_world",
    ),
    "string_in_matrix": (
        nerfstudio_doc(camera_path=[{"camera_to_world": ["1"] + ROW_MAJOR[1:]}]),
        "camera_path[0].camera_to_world",
    ),
    "string_fov": (
        nerfstudio_doc(camera_path=[{"camera_to_world": ROW_MAJOR}, {"camera_to_world": ROW_MAJOR, "fov": "50"}]),
        "camera_path[1].fov",
    ),
    "fov_out_of_range": (
        nerfstudio_doc(camera_path=[{"camera_to_world": ROW_MAJOR, "fov": 0.0}]),
        "camera_path[0]",
    ),
    "entry_not_object": (nerfstudio_doc(camera_path=[ROW_MAJOR]), "camera_path[0]"),
    "negative_fps": (nerfstudio_doc(fps=-24), "fps"),
    "zero_fps": (nerfstudio_doc(fps=0), "fps"),
    "bad_width": (nerfstudio_doc(render_width="wide"), "render_width"),
    "zero_height": (nerfstudio_doc(render_height=0), "render_height"),
}


@pytest.mark.parametrize("name", list(BAD_DOCS))
def test_malformed_documents(tmp_path: Path, name: str) -> None:
    doc, expected = BAD_DOCS[name]
    path = write_doc(tmp_path, doc)
    with pytest.raises(InvalidArgument) as info:
        read_camera_path(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_nan_in_matrix(tmp_path: Path) -> None:
    matrix = list(ROW_MAJOR)
    matrix[5] = float("nan")
    path = write_doc(tmp_path, nerfstudio_doc(camera_path=[{"camera_to_world": ROW_MAJOR}, {"camera_to_world": matrix}]))
    assert "NaN" in path.read_text()  # json writes the non-standard NaN token, which loads back
    with pytest.raises(InvalidArgument, match=r"camera_path\[1\]\.camera_to_world must be a finite number"):
        read_camera_path(path)


def test_infinite_fov(tmp_path: Path) -> None:
    path = write_doc(tmp_path, nerfstudio_doc(camera_path=[{"camera_to_world": ROW_MAJOR, "fov": math.inf}]))
    with pytest.raises(InvalidArgument, match=r"camera_path\[0\]\.fov"):
        read_camera_path(path)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "camera_path.json"
    path.write_text("{ this is not json", encoding="utf-8")
    with pytest.raises(InvalidArgument, match="not a JSON camera path"):
        read_camera_path(path)


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "camera_path.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidArgument):
        read_camera_path(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound) as info:
        read_camera_path(tmp_path / "nope.json")
    assert "nope.json" in str(info.value)


def test_look_at_cameras_survive_round_trip(tmp_path: Path) -> None:
    c2w = look_at(np.array([0.3, 1.7, -2.2]), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    original = CameraPath((Camera(99, 77, 33.3, c2w),), 60.0)
    write_camera_path(original, tmp_path / "p.json")
    np.testing.assert_array_equal(read_camera_path(tmp_path / "p.json").cameras[0].camera_to_world, c2w)


def test_interpolated_keyframes_pass_through_each_keyframe_smoothly(tmp_path):
    import numpy as np

    from holoscope.core.camera import Camera, look_at
    from holoscope.core.camera_path import interpolate_keyframes, read_camera_path, write_camera_path

    up = np.array([0.0, 1.0, 0.0])
    keys = [
        Camera(64, 48, 40.0, look_at(np.array([3.0, 1.0, 0.0]), np.zeros(3), up)),
        Camera(64, 48, 60.0, look_at(np.array([0.0, 1.0, 3.0]), np.zeros(3), up)),
        Camera(64, 48, 50.0, look_at(np.array([-3.0, 2.0, 0.0]), np.zeros(3), up)),
    ]
    path = interpolate_keyframes(keys, seconds_per_keyframe=1.0, fps=10)
    assert len(path) == 21
    for k, i in zip(keys, (0, 10, 20)):
        np.testing.assert_allclose(path.cameras[i].camera_to_world, k.camera_to_world, atol=1e-9)
        assert path.cameras[i].fov_y == k.fov_y
    for cam in path.cameras:  # every in-between pose is a proper rotation
        r = cam.camera_to_world[:3, :3]
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
    steps = [np.linalg.norm(b.position - a.position) for a, b in zip(path.cameras, path.cameras[1:])]
    assert max(steps) < 0.5, "no jumps between consecutive frames"
    assert path.cameras[5].fov_y == pytest.approx(50.0)
    out = tmp_path / "recorded.json"
    write_camera_path(path, out)
    assert len(read_camera_path(out)) == 21
