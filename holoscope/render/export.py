"""Headless render-to-file: cameras in, encoded frames out (used by the CLI and the app).

Runs on any moderngl context (a standalone EGL one by default). Sorting for frame i+1 runs on a
worker thread while frame i is drawn, read back and encoded.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import moderngl
import numpy as np

from holoscope.codecs.video.output import classify_output, open_output
from holoscope.core.camera import Camera, OrbitController, auto_near, frame_bounds
from holoscope.core.camera_path import CameraPath
from holoscope.core.errors import Cancelled, EmptyMedia
from holoscope.core.frames import SplatCloud
from holoscope.render.gl.context import create_headless_context
from holoscope.render.gl.splat_renderer import GlSplatRenderer, OffscreenTarget, RenderSettings, to_uint8
from holoscope.render.sort import sort_back_to_front

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportOptions:
    codec: str | None = None
    crf: int | None = None
    settings: RenderSettings = RenderSettings()


def default_orbit(cloud: SplatCloud, *, fov_y: float, aspect: float, up: str = "+y") -> OrbitController:
    """Frame the scene from robust (percentile) bounds, so floaters do not shrink it."""
    if cloud.count == 0:
        raise EmptyMedia("nothing to frame: the scene has no splats")
    lo, hi = cloud.robust_bounds()
    return frame_bounds(lo, hi, fov_y=fov_y, aspect=aspect, up=up)


def camera_near_for(orbit: OrbitController) -> float:
    return auto_near(orbit.distance)


class SplatFrameRenderer:
    """Owns a GL context, the uploaded cloud and an offscreen target; renders cameras to RGB."""

    def __init__(self, cloud: SplatCloud, ctx: moderngl.Context | None = None) -> None:
        self.ctx = ctx or create_headless_context()
        # Every GL call below runs inside ``with self.ctx``: with several renderers (or Qt's
        # context) on one thread, moderngl would otherwise talk to whichever context was made
        # current last.
        with self.ctx:
            self.renderer = GlSplatRenderer(self.ctx)
            self.renderer.upload(cloud)
        self.cloud = cloud
        self._target: OffscreenTarget | None = None

    def _target_for(self, camera: Camera) -> OffscreenTarget:
        t = self._target
        if t is None or (t.width, t.height) != (camera.width, camera.height):
            if t is not None:
                t.release()
            t = self._target = OffscreenTarget(self.ctx, camera.width, camera.height)
        return t

    def sort(self, camera: Camera) -> np.ndarray:
        return sort_back_to_front(self.cloud.means, camera.view_matrix, camera.near)

    def render(self, camera: Camera, settings: RenderSettings = RenderSettings(), order: np.ndarray | None = None) -> np.ndarray:
        """[H, W, 3] float32 (row 0 at the top), composited over the background."""
        order = self.sort(camera) if order is None else order
        with self.ctx:
            target = self._target_for(camera)
            target.begin()
            self.renderer.set_order(order)
            self.renderer.draw(camera, settings)
            return target.read_rgb(settings.background)

    def release(self) -> None:
        with self.ctx:
            if self._target is not None:
                self._target.release()
            self.renderer.release()


def render_to_output(
    cloud: SplatCloud,
    path_: CameraPath,
    output: str | Path,
    options: ExportOptions = ExportOptions(),
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    ctx: moderngl.Context | None = None,
) -> int:
    """Render every camera of ``path_`` into ``output``; returns the number of frames written.

    The output is opened (and validated) before any rendering. On any error or cancellation the
    partial output is removed; a finished output appears atomically.
    """
    cameras = list(path_.cameras)
    if classify_output(str(output)) == "image":
        cameras = cameras[:1]
    first = cameras[0]
    total = len(cameras)
    with open_output(str(output), width=first.width, height=first.height, fps=path_.fps,
                     codec=options.codec, crf=options.crf) as sink:  # fmt: skip
        frames = SplatFrameRenderer(cloud, ctx)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="holoscope-sort") as pool:
                pending = pool.submit(frames.sort, cameras[0])
                for i, camera in enumerate(cameras):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("render cancelled; partial output removed", path=output)
                    order = pending.result()
                    if i + 1 < total:  # sort the next view while this one draws and encodes
                        pending = pool.submit(frames.sort, cameras[i + 1])
                    rgb = frames.render(camera, options.settings, order)
                    sink.write(to_uint8(rgb))
                    if progress is not None:
                        progress(i + 1, total)
        finally:
            frames.release()
    return total
