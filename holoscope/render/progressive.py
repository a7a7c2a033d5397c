"""Progressive rendering of neural scenes for an interactive view: a coarse picture while the
camera moves, refined in steps once it stops. One background worker
(:class:`~holoscope.core.jobs.LatestJob`): the newest view wins, an older one is abandoned at
its next check, and every step is published as it finishes.

The coarse step's scale adapts to the renderer's measured speed so that it takes about
``COARSE_SECONDS`` (a camera drag stays responsive on a CPU); refinement then doubles the
resolution up to full size. Image-mode scenes are shown as a flat picture in the 3D view: the
image lies in the plane z = 0, ``aspect`` wide and 1 high, centred on the origin, and each
screen pixel's ray is intersected with it, so only pixels that show the image are evaluated,
at screen resolution, however large the image is.

Headless: no Qt, no GL; the app's view uploads the published pictures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from holoscope.core.camera import Camera
from holoscope.core.jobs import JobContext, JobResult, LatestJob

COARSE_SECONDS = 0.08
MIN_SCALE = 1 / 16
MAX_COARSE_SCALE = 0.5


@dataclass(frozen=True)
class ProgressiveFrame:
    """One published step: the picture (uint8 [h, w, 3], sRGB) for ``camera`` at ``scale``."""

    camera: Camera
    scale: float
    image: np.ndarray
    seconds: float

    @property
    def final(self) -> bool:
        return self.scale >= 1.0


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] sRGB -> uint8, rounded."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def image_plane_uv(camera: Camera, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of ``camera`` (row 0 at the top): where its ray meets the image plane as
    (u, v) in [0, 1] (v = 0 the image's top), and whether it hits the image at all."""
    h, w = camera.height, camera.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    t = camera.tan_half_fov_y
    dirs_cam = np.stack([((xs + 0.5) / w * 2 - 1) * t * w / h, (1 - (ys + 0.5) / h * 2) * t, -np.ones_like(xs)], -1)
    c2w = camera.camera_to_world
    dirs = dirs_cam @ c2w[:3, :3].T
    origin = c2w[:3, 3]
    dz = dirs[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -origin[2] / dz
    hit_plane = np.isfinite(s) & (s > 0)
    px = origin[0] + s * dirs[..., 0]
    py = origin[1] + s * dirs[..., 1]
    u = px / aspect + 0.5
    v = 0.5 - py
    inside = hit_plane & (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    return np.stack([u, v], -1).astype(np.float32), inside


def render_image_plane(evaluate_uv: Callable[[np.ndarray], np.ndarray], camera: Camera, aspect: float,
                       background: tuple[float, float, float]) -> np.ndarray:  # fmt: skip
    """The image-mode picture for ``camera``: ``evaluate_uv`` (uv [N, 2] -> sRGB [N, 3]) is
    called for the pixels that show the image only."""
    uv, inside = image_plane_uv(camera, aspect)
    out = np.empty((camera.height, camera.width, 3), np.float32)
    out[...] = np.asarray(background, np.float32)
    if inside.any():
        out[inside] = evaluate_uv(uv[inside])
    return out


class ProgressiveRenderer:
    """``submit(camera)`` from the GUI thread; ``latest()`` gives the newest published step.
    ``render(camera, cancelled) -> float sRGB [h, w, 3]`` is the scene's renderer (any thread)."""

    def __init__(self, render: Callable[[Camera, Callable[[], bool]], np.ndarray], *,
                 on_result: Callable[[JobResult], None] | None = None, name: str = "holoscope-neural-render") -> None:  # fmt: skip
        self._render = render
        self._seconds_per_pixel: float | None = None
        self._job: LatestJob[Camera, ProgressiveFrame] = LatestJob(self._run, name=name, on_result=on_result)

    def submit(self, camera: Camera) -> int:
        return self._job.submit(camera)

    def latest(self) -> JobResult[ProgressiveFrame] | None:
        return self._job.latest()

    def wait(self, request_id: int, timeout: float | None = None, *, final: bool = True) -> JobResult[ProgressiveFrame]:
        return self._job.wait(request_id, timeout, final=final)

    @property
    def alive(self) -> bool:
        return self._job.alive

    def close(self) -> None:
        self._job.close()

    def scales(self, camera: Camera) -> list[float]:
        """The steps for ``camera``: a coarse scale sized by the measured speed, then doubling to 1."""
        if self._seconds_per_pixel is None:
            coarse = 0.25
        else:
            pixels = COARSE_SECONDS / max(self._seconds_per_pixel, 1e-12)
            coarse = math.sqrt(pixels / (camera.width * camera.height))
        coarse = min(MAX_COARSE_SCALE, max(MIN_SCALE, coarse))
        steps = [coarse]
        while steps[-1] < 1.0:
            steps.append(min(1.0, steps[-1] * 2))
        return steps

    def _run(self, camera: Camera, ctx: JobContext) -> ProgressiveFrame:
        frame = None
        steps = self.scales(camera)
        for scale in steps:
            ctx.check()
            w, h = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
            start = time.perf_counter()
            image = self._render(replace(camera, width=w, height=h), lambda: ctx.cancelled)
            seconds = time.perf_counter() - start
            self._seconds_per_pixel = seconds / (w * h)
            frame = ProgressiveFrame(camera, scale, to_rgb8(image), seconds)
            if scale < 1.0:
                ctx.partial(frame)
        assert frame is not None
        return frame


__all__ = ["ProgressiveFrame", "ProgressiveRenderer", "image_plane_uv", "render_image_plane", "to_rgb8"]
