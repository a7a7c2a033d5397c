"""Camera paths: nerfstudio ``camera_path.json`` in and out, and generated orbits.

nerfstudio layout: ``render_width``, ``render_height``, ``fps`` and ``camera_path``, a list of
``{"camera_to_world": [16 numbers, row-major 4x4, OpenGL axes], "fov": vertical degrees}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holoscope.core.camera import Camera, OrbitController
from holoscope.core.errors import InvalidArgument, SourceNotFound


@dataclass(frozen=True)
class CameraPath:
    cameras: tuple[Camera, ...]
    fps: float

    def __len__(self) -> int:
        return len(self.cameras)

    def resized(self, width: int, height: int) -> "CameraPath":
        return CameraPath(tuple(c.resized(width, height) for c in self.cameras), self.fps)


def _number(value: object, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{what} must be a finite number, got {value!r}", path=path)
    return float(value)


def read_camera_path(path: str | Path, *, near: float | None = None) -> CameraPath:
    """Parse a nerfstudio camera path; every malformed field is reported with its index."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFound("camera path file not found", path=path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"not a JSON camera path ({exc})", path=path) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("camera_path"), list):
        raise InvalidArgument("missing the 'camera_path' list", path=path)
    width = int(_number(doc.get("render_width", 1920), "render_width", path))
    height = int(_number(doc.get("render_height", 1080), "render_height", path))
    fps = _number(doc.get("fps", 30), "fps", path)
    if fps <= 0:
        raise InvalidArgument(f"fps must be positive, got {fps}", path=path)
    if not doc["camera_path"]:
        raise InvalidArgument("'camera_path' is empty", path=path)
    cameras = []
    for i, entry in enumerate(doc["camera_path"]):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"camera_path[{i}] is not an object", path=path)
        matrix = entry.get("camera_to_world")
        if not isinstance(matrix, list) or len(matrix) != 16:
            raise InvalidArgument(f"camera_path[{i}].camera_to_world must hold 16 numbers", path=path)
        c2w = np.array([_number(v, f"camera_path[{i}].camera_to_world", path) for v in matrix]).reshape(4, 4)
        fov = _number(entry.get("fov", 50.0), f"camera_path[{i}].fov", path)
        try:
            kwargs = {"near": near} if near is not None else {}
            cameras.append(Camera(width, height, fov, c2w, **kwargs))
        except InvalidArgument as exc:
            raise InvalidArgument(f"camera_path[{i}]: {exc}", path=path) from exc
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
    Path(path).write_text(json.dumps(doc, indent=1), encoding="utf-8")


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
