"""Camera paths: nerfstudio ``camera_path.json`` in and out, and generated orbits.

nerfstudio layout: ``render_width``, ``render_height``, ``fps`` and ``camera_path``, a list of
``{"camera_to_world": [16 numbers, row-major 4x4, OpenGL axes], "fov": vertical degrees}``.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holoscope.core.budget import require
from holoscope.core.camera import Camera, OrbitController, check_fov, check_side
from holoscope.core.errors import InvalidArgument, OutputError
from holoscope.core.files import read_limited


@dataclass(frozen=True)
class CameraPath:
    cameras: tuple[Camera, ...]
    fps: float

    def __len__(self) -> int:
        return len(self.cameras)

    def resized(self, width: int, height: int) -> "CameraPath":
        return CameraPath(tuple(c.resized(width, height) for c in self.cameras), self.fps)


# Frame rates every output accepts and stores exactly (checked by writing and decoding back with
# PyAV, tests/codecs/test_video_output.py). 1e-4 fps is one frame per 2.8 hours; at 1e-5 FFmpeg's
# MP4/MOV muxer refuses to write and Matroska files read back the wrong rate. Above 1000 fps,
# Matroska/WebM's millisecond timestamps would give two frames the same time.
MIN_FPS, MAX_FPS = 1e-4, 1000.0
MAX_CAMERA_PATH_BYTES = 64 << 20
# 55 minutes at 30 fps; keeps a hostile file from building millions of cameras.
MAX_CAMERAS = 100_000
# Python objects built by json.loads per byte of input, worst case measured (small dicts and
# short strings: 31) plus the decoded text; the budget is checked with it before parsing.
_JSON_BYTES_PER_BYTE = 40
# How far a camera_to_world rotation may stray from orthonormal (float32 round trips are ~1e-7).
_ROTATION_TOLERANCE = 1e-3
# Positions go to float32 shaders: this far out a scene of any size is below float32 precision
# (and past 3e38 the numbers overflow), so such a file is garbage or a unit mistake.
_MAX_COORDINATE = 1e15


def check_fps(fps: object, what: str = "fps") -> float:
    """A frame rate that every output stores exactly: a finite number within MIN_FPS..MAX_FPS."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps):
        raise InvalidArgument(f"{what} must be a finite number, got {fps!r}")
    if not MIN_FPS <= fps <= MAX_FPS:
        raise InvalidArgument(f"{what} must be within {MIN_FPS:g}..{MAX_FPS:g} frames per second, "
                              f"got {float(fps):g}")
    return float(fps)


def _number(value: object, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{what} must be a finite number, got {_short(value)}", path=path)
    return float(value)


def _short(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_pose(c2w: np.ndarray) -> str | None:
    """Why a camera_to_world matrix cannot be rendered, or None."""
    if np.abs(c2w[:3, 3]).max() > _MAX_COORDINATE:
        return f"the camera position is beyond +-{_MAX_COORDINATE:g}"
    r = c2w[:3, :3]
    if np.abs(r.T @ r - np.eye(3)).max() > _ROTATION_TOLERANCE:
        return "the upper-left 3x3 is not a rotation (its columns must be unit-length, perpendicular axes)"
    if np.linalg.det(r) < 0:
        return "the upper-left 3x3 is a reflection, not a rotation (one axis is flipped)"
    return None


def _load_json(path: Path) -> object:
    data = read_limited(path, MAX_CAMERA_PATH_BYTES, what="camera path")
    require(len(data) * _JSON_BYTES_PER_BYTE, what=f"a {len(data):,}-byte JSON camera path", path=path)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except RecursionError:
        raise InvalidArgument("not a camera path: JSON nested too deeply", path=path) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise InvalidArgument(f"not a JSON camera path ({_short(str(exc), 80)})", path=path) from None


def read_camera_path(path: str | Path, *, near: float | None = None) -> CameraPath:
    """Parse a nerfstudio camera path; every malformed field is reported with its index."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("camera_path"), list):
        raise InvalidArgument("missing the 'camera_path' list", path=path)
    try:
        width = check_side(doc.get("render_width", 1920), "render_width")
        height = check_side(doc.get("render_height", 1080), "render_height")
        fps = check_fps(doc.get("fps", 30))
    except InvalidArgument as exc:
        raise InvalidArgument(str(exc), path=path) from None
    entries = doc["camera_path"]
    if not entries:
        raise InvalidArgument("'camera_path' is empty", path=path)
    if len(entries) > MAX_CAMERAS:
        raise InvalidArgument(f"'camera_path' holds {len(entries):,} cameras, more than the "
                              f"{MAX_CAMERAS:,} allowed", path=path)
    kwargs = {"near": near} if near is not None else {}
    cameras = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"camera_path[{i}] is not an object", path=path)
        matrix = entry.get("camera_to_world")
        if not isinstance(matrix, list) or len(matrix) != 16:
            raise InvalidArgument(f"camera_path[{i}].camera_to_world must hold 16 numbers", path=path)
        c2w = np.array([_number(v, f"camera_path[{i}].camera_to_world", path) for v in matrix]).reshape(4, 4)
        problem = _check_pose(c2w)
        if problem:
            raise InvalidArgument(f"camera_path[{i}].camera_to_world: {problem}", path=path)
        try:
            fov = check_fov(entry.get("fov", 50.0), f"camera_path[{i}].fov")
            cameras.append(Camera(width, height, fov, c2w, **kwargs))
        except InvalidArgument as exc:
            raise InvalidArgument(str(exc), path=path) from None
    return CameraPath(tuple(cameras), fps)


def write_camera_path(camera_path: CameraPath, path: str | Path) -> None:
    """Write a nerfstudio-compatible camera path (readable by ``read_camera_path``)."""
    if not camera_path.cameras:
        raise InvalidArgument("cannot write an empty camera path")
    first = camera_path.cameras[0]
    doc = {
        "camera_type": "perspective",
        "render_width": first.width,
        "render_height": first.height,
        "fps": camera_path.fps,
        "seconds": len(camera_path.cameras) / camera_path.fps,
        "camera_path": [
            {
                "camera_to_world": [float(v) for v in cam.camera_to_world.reshape(-1)],
                "fov": cam.fov_y,
                "aspect": cam.width / cam.height,
            }
            for cam in camera_path.cameras
        ],
    }
    try:
        Path(path).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write the camera path: {exc.strerror or exc}", path=path) from exc


def orbit_path(
    orbit: OrbitController,
    frames: int,
    *,
    width: int,
    height: int,
    fov_y: float,
    fps: float = 30.0,
    near: float | None = None,
) -> CameraPath:
    """``frames`` cameras evenly spaced on one full turn around the orbit's target."""
    if frames < 1:
        raise InvalidArgument(f"an orbit needs at least 1 frame, got {frames}")
    start = orbit.azimuth
    cameras = []
    for i in range(frames):
        step = OrbitController(orbit.target, orbit.distance, start + 2 * math.pi * i / frames, orbit.elevation, orbit.up)
        kwargs = {"near": near} if near is not None else {}
        cameras.append(Camera(width, height, fov_y, step.camera_to_world(), **kwargs))
    return CameraPath(tuple(cameras), fps)


def _rotation_to_quat(r: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (w, x, y, z) (Shepperd's method, numerically stable)."""
    m = r
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = math.sqrt(trace + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q / np.linalg.norm(q)


def _quat_to_rotation(q: np.ndarray) -> np.ndarray:
    from holoscope.core.splat_math import quats_to_rotmats

    return quats_to_rotmats(q[None])[0]


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    dot = float(q0 @ q1)
    if dot < 0:  # take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def interpolate_keyframes(keyframes: list[Camera] | tuple[Camera, ...], *, seconds_per_keyframe: float = 2.0,
                          fps: float = 30.0) -> CameraPath:  # fmt: skip
    """A smooth path through recorded keyframes: positions and fov linear, rotations slerped.

    One keyframe gives a one-frame path; n keyframes give (n-1) segments of
    ``seconds_per_keyframe`` each plus the final keyframe.
    """
    if not keyframes:
        raise InvalidArgument("no keyframes recorded")
    if len(keyframes) == 1:
        return CameraPath((keyframes[0],), fps)
    per_segment = max(1, round(seconds_per_keyframe * fps))
    cameras: list[Camera] = []
    for a, b in zip(keyframes[:-1], keyframes[1:]):
        qa = _rotation_to_quat(a.camera_to_world[:3, :3])
        qb = _rotation_to_quat(b.camera_to_world[:3, :3])
        for i in range(per_segment):
            t = i / per_segment
            c2w = np.eye(4)
            c2w[:3, :3] = _quat_to_rotation(_slerp(qa, qb, t))
            c2w[:3, 3] = (1 - t) * a.camera_to_world[:3, 3] + t * b.camera_to_world[:3, 3]
            cameras.append(Camera(a.width, a.height, (1 - t) * a.fov_y + t * b.fov_y, c2w, near=a.near))
    cameras.append(keyframes[-1])
    return CameraPath(tuple(cameras), fps)
