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

from holoscope.codecs.video.output import classify_output, describe_output, encoder_bytes_per_pixel, open_output
from holoscope.core import budget
from holoscope.core.camera import Camera, OrbitController, check_fov, check_image_size, frame_bounds
from holoscope.core.camera_path import CameraPath
from holoscope.core.errors import BudgetExceeded, Cancelled, EmptyMedia, InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.render.gl.context import create_headless_context
from holoscope.render.gl.splat_renderer import (
    GlSplatRenderer,
    OffscreenTarget,
    RenderSettings,
    check_target_size,
    to_uint8,
)
from holoscope.render.sort import sort_back_to_front

ProgressFn = Callable[[int, int], None]

# Peak bytes per output pixel of drawing and reading back one frame, whatever the output: the
# RGBA16F target (8; in RAM on Mesa llvmpipe, in GPU memory on a GPU), the float32 RGBA read-back
# (16), compositing and the uint8 conversion (float temporaries; 3 for the frame). Measured as the
# peak RSS of a PNG render minus a 64x64 one: 44.3 at 2048x2048 and at 4096x4096 (llvmpipe).
RENDER_BYTES_PER_PIXEL = 48


def output_bytes(width: int, height: int, output: str | Path, codec: str | None = None) -> int:
    """Upper bound of the memory a render to ``output`` needs beyond the scene itself."""
    per_pixel = RENDER_BYTES_PER_PIXEL + encoder_bytes_per_pixel(output, codec)
    return int(width) * int(height) * per_pixel


def check_output_size(width: int, height: int, output: str | Path, codec: str | None = None, *,
                      ctx: moderngl.Context | None = None) -> None:  # fmt: skip
    """Refuse an output size before anything is allocated.

    Without ``ctx`` (before a GL context exists): each side within 1..16384, and the bytes a
    render needs (:func:`output_bytes`) within the memory budget. With ``ctx``: also this GL
    implementation's size limits (GL_MAX_TEXTURE_SIZE, GL_MAX_RENDERBUFFER_SIZE,
    GL_MAX_VIEWPORT_DIMS). Raises InvalidArgument or BudgetExceeded with one clear line.
    """
    width, height = check_image_size(width, height)
    if ctx is not None:
        check_target_size(ctx, width, height)
    need, limit = output_bytes(width, height, output, codec), budget.current()
    if need > limit.limit:
        raise BudgetExceeded(
            f"rendering {width}x{height} frames ({describe_output(output, codec)}) needs about "
            f"{budget.format_bytes(need)}, over the {budget.format_bytes(limit.limit)} memory budget "
            f"(from {limit.source}; change it with --max-memory or {budget.ENV_VAR}); choose a smaller size",
            path=output,
        )


@dataclass(frozen=True)
class ExportOptions:
    codec: str | None = None
    crf: int | None = None
    settings: RenderSettings = RenderSettings()


def default_orbit(cloud: SplatCloud, *, fov_y: float, aspect: float, up: str = "+y") -> OrbitController:
    """Frame the scene from robust (percentile) bounds, so floaters do not shrink it."""
    check_fov(fov_y)  # a tiny fov would fail much later as a "degenerate direction"
    if cloud.count == 0:
        raise EmptyMedia("nothing to frame: the scene has no splats")
    lo, hi = cloud.robust_bounds()
    return frame_bounds(lo, hi, fov_y=fov_y, aspect=aspect, up=up)


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

    def upload(self, cloud: SplatCloud) -> None:
        """Show another cloud (a streamed-LOD scene at other levels): the GPU buffers are reused."""
        with self.ctx:
            self.renderer.upload(cloud)
        self.cloud = cloud

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
    cloud_for: Callable[[Camera], SplatCloud] | None = None,
) -> int:
    """Render every camera of ``path_`` into ``output``; returns the number of frames written.

    ``cloud_for``: the scene each camera needs (a streamed-LOD scene under a splat budget),
    asked for on the sorting thread one camera ahead; without it every camera sees ``cloud``.

    The size is checked against the memory budget and the GL limits, and the output opened (and
    validated), before any rendering. On any error or interruption (KeyboardInterrupt included)
    the partial output is removed; a finished output appears atomically.
    """
    cameras = list(path_.cameras)
    if not cameras:
        raise InvalidArgument("the camera path has no cameras")
    if classify_output(str(output)) == "image":
        cameras = cameras[:1]
    first = cameras[0]
    if any((c.width, c.height) != (first.width, first.height) for c in cameras):
        raise InvalidArgument("every camera of an output must have the same image size")
    total = len(cameras)
    check_output_size(first.width, first.height, output, options.codec)  # before the GL context
    own_ctx = ctx is None
    ctx = ctx or create_headless_context()
    try:
        check_output_size(first.width, first.height, output, options.codec, ctx=ctx)
        _render_all(cloud, cameras, path_.fps, output, options, ctx, progress, cancel, cloud_for)
    finally:
        if own_ctx:
            ctx.release()
    return total


def _render_all(cloud: SplatCloud, cameras: list[Camera], fps: float, output: str | Path,
                options: ExportOptions, ctx: moderngl.Context, progress: ProgressFn | None,
                cancel: threading.Event | None,
                cloud_for: Callable[[Camera], SplatCloud] | None = None) -> None:  # fmt: skip
    first, total = cameras[0], len(cameras)

    def prepare(camera: Camera) -> tuple[SplatCloud, np.ndarray]:  # the scene for a camera, sorted
        scene = cloud if cloud_for is None else cloud_for(camera)
        return scene, sort_back_to_front(scene.means, camera.view_matrix, camera.near)

    with open_output(str(output), width=first.width, height=first.height, fps=fps,
                     codec=options.codec, crf=options.crf) as sink:  # fmt: skip
        frames = SplatFrameRenderer(cloud, ctx)
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="holoscope-sort") as pool:
                pending = pool.submit(prepare, cameras[0])
                for i, camera in enumerate(cameras):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("render cancelled; partial output removed", path=output)
                    scene, order = pending.result()
                    if i + 1 < total:  # sort the next view while this one draws and encodes
                        pending = pool.submit(prepare, cameras[i + 1])
                    if scene is not frames.cloud:
                        frames.upload(scene)
                    rgb = frames.render(camera, options.settings, order)
                    sink.write(to_uint8(rgb))
                    if progress is not None:
                        progress(i + 1, total)
        finally:
            frames.release()
