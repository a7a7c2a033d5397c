"""Pinhole cameras in OpenGL axes, plus orbit/fly controllers and automatic framing.

Conventions (the same as nerfstudio's camera paths): ``camera_to_world`` is a 4x4 matrix whose
columns are the camera's right (+X), up (+Y) and backward (+Z) axes and its position; the
camera looks down -Z. The field of view is vertical, in degrees.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

import numpy as np

from holoscope.core.errors import InvalidArgument

UP_AXES: dict[str, np.ndarray] = {
    "+y": np.array([0.0, 1.0, 0.0]),
    "-y": np.array([0.0, -1.0, 0.0]),  # COLMAP-trained scenes: image "down" is +Y
    "+z": np.array([0.0, 0.0, 1.0]),
}
# For each up axis, the direction an orbit at azimuth 0 looks from (towards the target).
_FRONT: dict[str, np.ndarray] = {
    "+y": np.array([0.0, 0.0, 1.0]),
    "-y": np.array([0.0, 0.0, -1.0]),
    "+z": np.array([0.0, -1.0, 0.0]),
}

DEFAULT_NEAR = 0.2  # the reference rasterizer culls splats with view depth <= 0.2

# Vertical field of view, degrees. 0.1 degrees is already a ~14,000 mm lens (35 mm equivalent):
# smaller values are typos, and towards 0 (or 180) the focal length and framing distance
# overflow into a meaningless "degenerate direction" error much later.
MIN_FOV, MAX_FOV = 0.1, 179.0
# Largest image side: the size every OpenGL 4.3 implementation must support for textures and
# renderbuffers. One such frame already needs several GB (see render/export.py).
MAX_IMAGE_SIDE = 16384


def check_fov(deg: object, what: str = "field of view") -> float:
    """A vertical field of view in degrees: a finite number within MIN_FOV..MAX_FOV."""
    if isinstance(deg, bool) or not isinstance(deg, numbers.Real) or not math.isfinite(deg):
        raise InvalidArgument(f"{what} must be a finite number of degrees, got {deg!r}")
    if not MIN_FOV <= deg <= MAX_FOV:
        raise InvalidArgument(f"{what} must be within {MIN_FOV:g}..{MAX_FOV:g} degrees, got {float(deg):g}")
    return float(deg)


def check_side(value: object, what: str = "width") -> int:
    """One image side in pixels: a whole number within 1..MAX_IMAGE_SIDE (640.0 passes, 640.5 not)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok and not isinstance(value, numbers.Integral):
        ok = float(value).is_integer()  # False for inf and NaN too
    if not ok or not 1 <= value <= MAX_IMAGE_SIDE:  # type: ignore[operator]
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InvalidArgument(f"{what} must be a whole number of pixels within 1..{MAX_IMAGE_SIDE}, got {text}")
    return int(value)  # type: ignore[arg-type]


def check_image_size(width: object, height: object) -> tuple[int, int]:
    """(width, height), each checked by :func:`check_side`."""
    return check_side(width, "width"), check_side(height, "height")


def parse_up(up: str) -> str:
    key = up.strip().lower()
    if key in ("y", "+y"):
        return "+y"
    if key in UP_AXES:
        return key
    if key in ("z",):
        return "+z"
    raise InvalidArgument(f"unknown up axis {up!r}; choose one of +y, -y, +z")


def _normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    if n < 1e-12:
        raise InvalidArgument("degenerate direction (zero length)")
    return v / n


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """camera_to_world for a camera at ``eye`` looking at ``target`` with ``up`` roughly up."""
    eye = np.asarray(eye, np.float64)
    forward = _normalize(np.asarray(target, np.float64) - eye)
    up = np.asarray(up, np.float64)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along up: pick any perpendicular
        right = np.cross(forward, np.roll(up, 1))
    right = _normalize(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: image size, vertical field of view and pose (OpenGL axes)."""

    width: int
    height: int
    fov_y: float  # degrees
    camera_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    near: float = DEFAULT_NEAR

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise InvalidArgument(f"image size must be positive, got {self.width}x{self.height}")
        check_fov(self.fov_y)
        c2w = np.asarray(self.camera_to_world, np.float64)
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
            raise InvalidArgument("camera_to_world must be a finite 4x4 matrix")
        object.__setattr__(self, "camera_to_world", c2w)

    # Intrinsics -------------------------------------------------------------------------
    @property
    def tan_half_fov_y(self) -> float:
        return math.tan(math.radians(self.fov_y) / 2)

    @property
    def tan_half_fov_x(self) -> float:
        return self.tan_half_fov_y * self.width / self.height

    @property
    def focal(self) -> float:
        """Focal length in pixels (square pixels: fx == fy)."""
        return self.height / (2 * self.tan_half_fov_y)

    def projection_matrix(self, far: float = 1000.0) -> np.ndarray:
        """OpenGL perspective matrix (column vectors, clip = P @ view)."""
        n, f = self.near, far
        t = self.tan_half_fov_y
        p = np.zeros((4, 4))
        p[0, 0] = 1 / (t * self.width / self.height)
        p[1, 1] = 1 / t
        p[2, 2] = -(f + n) / (f - n)
        p[2, 3] = -2 * f * n / (f - n)
        p[3, 2] = -1
        return p

    # Extrinsics -------------------------------------------------------------------------
    @property
    def position(self) -> np.ndarray:
        return self.camera_to_world[:3, 3].copy()

    @property
    def view_matrix(self) -> np.ndarray:
        """world_to_camera (OpenGL axes), computed as a rigid inverse."""
        r = self.camera_to_world[:3, :3]
        t = self.camera_to_world[:3, 3]
        w2c = np.eye(4)
        w2c[:3, :3] = r.T
        w2c[:3, 3] = -r.T @ t
        return w2c

    def resized(self, width: int, height: int) -> "Camera":
        return replace(self, width=width, height=height)


@dataclass
class OrbitController:
    """Orbit/pan/zoom around a target, with a selectable world up axis."""

    target: np.ndarray
    distance: float
    azimuth: float = 0.0  # radians around the up axis
    elevation: float = 0.3  # radians above the horizontal plane
    up: str = "+y"

    def __post_init__(self) -> None:
        self.up = parse_up(self.up)
        self.target = np.asarray(self.target, np.float64)

    def _basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        up = UP_AXES[self.up]
        front = _FRONT[self.up]
        side = np.cross(up, front)
        return up, front, side

    def eye(self) -> np.ndarray:
        up, front, side = self._basis()
        horizontal = math.cos(self.azimuth) * front + math.sin(self.azimuth) * side
        direction = math.cos(self.elevation) * horizontal + math.sin(self.elevation) * up
        return self.target + self.distance * direction

    def camera_to_world(self) -> np.ndarray:
        return look_at(self.eye(), self.target, UP_AXES[self.up])

    def rotate(self, d_azimuth: float, d_elevation: float) -> None:
        self.azimuth += d_azimuth
        limit = math.radians(89.0)
        self.elevation = float(np.clip(self.elevation + d_elevation, -limit, limit))

    def zoom(self, factor: float) -> None:
        """Multiply the distance to the target (factor < 1 moves closer)."""
        self.distance = float(np.clip(self.distance * factor, 1e-4, 1e7))

    def pan(self, dx: float, dy: float) -> None:
        """Move the target in the view plane by fractions of the distance."""
        c2w = self.camera_to_world()
        self.target = self.target + (-dx * c2w[:3, 0] + dy * c2w[:3, 1]) * self.distance


@dataclass
class FlyController:
    """First-person camera: a position plus yaw/pitch about the world up axis."""

    position: np.ndarray
    yaw: float = 0.0
    pitch: float = 0.0
    up: str = "+y"

    def __post_init__(self) -> None:
        self.up = parse_up(self.up)
        self.position = np.asarray(self.position, np.float64)

    def forward(self) -> np.ndarray:
        up = UP_AXES[self.up]
        front = -_FRONT[self.up]  # yaw 0 looks the way an azimuth-0 orbit camera looks
        side = np.cross(up, front)
        horizontal = math.cos(self.yaw) * front + math.sin(self.yaw) * side
        return math.cos(self.pitch) * horizontal + math.sin(self.pitch) * up

    def camera_to_world(self) -> np.ndarray:
        return look_at(self.position, self.position + self.forward(), UP_AXES[self.up])

    def turn(self, d_yaw: float, d_pitch: float) -> None:
        self.yaw += d_yaw
        limit = math.radians(89.0)
        self.pitch = float(np.clip(self.pitch + d_pitch, -limit, limit))

    def move(self, forward: float, right: float, upward: float) -> None:
        c2w = self.camera_to_world()
        self.position = (
            self.position + forward * self.forward() + right * c2w[:3, 0] + upward * UP_AXES[self.up]
        )


def frame_bounds(
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    fov_y: float,
    aspect: float,
    up: str = "+y",
    margin: float = 1.08,
    elevation: float = 0.35,
) -> OrbitController:
    """An orbit controller that fits the box [lo, hi] in view, looking slightly down on it.

    The distance is the smallest at which all eight box corners project inside the image, for
    every azimuth of a full orbit (so an orbit video never crops the scene): tighter than
    fitting the bounding sphere, which leaves flat scenes small in the frame.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    center = (lo + hi) / 2
    half = np.maximum((hi - lo) / 2, 1e-3)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    tan_y = math.tan(math.radians(fov_y) / 2)
    tan_x = tan_y * aspect
    distance = 0.0
    probe = OrbitController(target=np.zeros(3), distance=1.0, elevation=elevation, up=up)
    for azimuth in np.linspace(0, 2 * math.pi, 24, endpoint=False):
        probe.azimuth = float(azimuth)
        c2w = probe.camera_to_world()
        right, true_up, back = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2]
        # A corner at offset o sits at depth d - o.back; it fits when |o.right| <= tan_x * depth.
        need = np.maximum(np.abs(corners @ right) / tan_x, np.abs(corners @ true_up) / tan_y) + corners @ back
        distance = max(distance, float(need.max()))
    return OrbitController(target=center, distance=margin * distance, azimuth=0.0, elevation=elevation, up=up)


def auto_near(distance: float) -> float:
    """The reference near plane (0.2), pulled closer for scenes framed from very close."""
    return min(DEFAULT_NEAR, 0.05 * distance)
