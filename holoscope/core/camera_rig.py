"""CameraRig: the interactive camera behind every viewport, free of any GUI toolkit.

It turns gestures (orbit drag, pan, zoom steps, fly look/move, focus on a point) into an orbit
or fly controller, and produces a :class:`Camera` for any viewport size. The Qt viewport only
translates events into these calls, so all navigation maths is unit-tested without a display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from holoscope.core.camera import (
    UP_AXES,
    Camera,
    FlyController,
    OrbitController,
    auto_near,
    frame_bounds,
    parse_up,
)

ORBIT_RADIANS_PER_PIXEL = 0.008
ZOOM_PER_STEP = 0.88  # one wheel notch moves 12% closer
FLY_RADIANS_PER_PIXEL = 0.004


@dataclass
class Bounds:
    lo: np.ndarray
    hi: np.ndarray

    @property
    def size(self) -> float:
        return float(np.linalg.norm(self.hi - self.lo))


class CameraRig:
    def __init__(self, bounds: Bounds | None = None, *, up: str = "+y", fov_y: float = 50.0) -> None:
        self.fov_y = fov_y
        self.up = parse_up(up)
        self.bounds = bounds or Bounds(np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0]))
        self.orbit = OrbitController(np.zeros(3), 1.0, up=self.up)
        self.fly: FlyController | None = None  # set while fly mode is active
        self.aspect = 16 / 9
        self.reset()

    # Framing ---------------------------------------------------------------------------
    def reset(self, aspect: float | None = None) -> None:
        """Frame the scene bounds from the default viewpoint (R / Home)."""
        if aspect is not None:
            self.aspect = aspect
        self.fly = None
        self.orbit = frame_bounds(self.bounds.lo, self.bounds.hi, fov_y=self.fov_y, aspect=self.aspect, up=self.up)

    def set_bounds(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.reset()

    def set_up(self, up: str) -> None:
        self.up = parse_up(up)
        self.reset()

    def set_fov(self, fov_y: float) -> None:
        self.fov_y = float(np.clip(fov_y, 5.0, 150.0))

    # Gestures --------------------------------------------------------------------------
    def orbit_drag(self, dx: float, dy: float) -> None:
        self._leave_fly()
        self.orbit.rotate(-dx * ORBIT_RADIANS_PER_PIXEL, dy * ORBIT_RADIANS_PER_PIXEL)

    def pan_drag(self, dx: float, dy: float, viewport_height: int) -> None:
        """Pan so the point under the cursor follows it (dx, dy in pixels)."""
        self._leave_fly()
        scale = 2 * math.tan(math.radians(self.fov_y) / 2) / max(1, viewport_height)
        self.orbit.pan(dx * scale, dy * scale)

    def zoom_steps(self, steps: float) -> None:
        """Positive steps move closer (wheel forward, pinch out)."""
        if self.fly is not None:
            self.fly.move(steps * self.move_speed() * 0.5, 0, 0)
            return
        self.orbit.zoom(ZOOM_PER_STEP**steps)

    def fly_look(self, dx: float, dy: float) -> None:
        self._enter_fly()
        assert self.fly is not None
        self.fly.turn(-dx * FLY_RADIANS_PER_PIXEL, -dy * FLY_RADIANS_PER_PIXEL)

    def fly_move(self, forward: float, right: float, upward: float, seconds: float, fast: bool = False) -> None:
        """Move in fly mode; speed scales with the scene size (shift = 4x)."""
        self._enter_fly()
        assert self.fly is not None
        step = self.move_speed() * seconds * (4.0 if fast else 1.0)
        self.fly.move(forward * step, right * step, upward * step)

    def move_speed(self) -> float:
        """Scene sizes per second at normal speed (a fifth of the framed scene)."""
        return max(self.bounds.size, 1e-3) * 0.2

    def focus(self, point: np.ndarray) -> None:
        """Orbit around ``point`` from the current eye position (double-click)."""
        eye = self.eye()
        self._leave_fly()
        self.orbit.target = np.asarray(point, np.float64)
        self.orbit.distance = max(float(np.linalg.norm(eye - self.orbit.target)), 1e-4)
        self._orbit_from_eye(eye)

    # Output ----------------------------------------------------------------------------
    def eye(self) -> np.ndarray:
        return self.fly.position.copy() if self.fly is not None else self.orbit.eye()

    def camera_to_world(self) -> np.ndarray:
        return self.fly.camera_to_world() if self.fly is not None else self.orbit.camera_to_world()

    def camera(self, width: int, height: int) -> Camera:
        self.aspect = width / max(1, height)
        return Camera(width, height, self.fov_y, self.camera_to_world(), near=self.near())

    def near(self) -> float:
        return auto_near(self.orbit.distance if self.fly is None else max(self.bounds.size, 1e-3))

    def set_camera_to_world(self, c2w: np.ndarray) -> None:
        """Adopt an arbitrary pose (e.g. a recorded keyframe) as an orbit around the same target distance."""
        c2w = np.asarray(c2w, np.float64)
        eye, forward = c2w[:3, 3], -c2w[:3, 2]
        self.fly = None
        self.orbit.target = eye + forward * self.orbit.distance
        self._orbit_from_eye(eye)

    # Mode switching --------------------------------------------------------------------
    def _enter_fly(self) -> None:
        """Switch to fly mode at the orbit camera's pose (same eye, same view direction)."""
        if self.fly is not None:
            return
        eye = self.orbit.eye()
        forward = (self.orbit.target - eye) / np.linalg.norm(self.orbit.target - eye)
        up = UP_AXES[self.up]
        fly = FlyController(eye, 0.0, math.asin(float(np.clip(forward @ up, -1, 1))), up=self.up)
        horizontal = forward - (forward @ up) * up
        if np.linalg.norm(horizontal) > 1e-9:  # straight up/down: any yaw will do
            base = fly.forward() - (fly.forward() @ up) * up  # yaw 0, flattened
            base /= np.linalg.norm(base)
            h = horizontal / np.linalg.norm(horizontal)
            fly.yaw = math.atan2(float(np.cross(base, h) @ up), float(base @ h))
        self.fly = fly

    def _leave_fly(self) -> None:
        if self.fly is None:
            return
        eye, forward = self.fly.position.copy(), self.fly.forward()
        self.fly = None
        self.orbit.target = eye + forward * self.orbit.distance
        self._orbit_from_eye(eye)

    def _orbit_from_eye(self, eye: np.ndarray) -> None:
        """Set azimuth/elevation/distance so the orbit camera sits at ``eye``."""
        offset = eye - self.orbit.target
        distance = float(np.linalg.norm(offset))
        if distance < 1e-9:
            return
        self.orbit.distance = distance
        up, front, side = self.orbit._basis()
        direction = offset / distance
        self.orbit.elevation = math.asin(float(np.clip(direction @ up, -1, 1)))
        limit = math.radians(89.0)
        self.orbit.elevation = float(np.clip(self.orbit.elevation, -limit, limit))
        self.orbit.azimuth = math.atan2(float(direction @ side), float(direction @ front))
