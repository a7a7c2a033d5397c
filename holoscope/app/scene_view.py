"""NeuralSceneView: hash-grid scenes (Instant-NGP snapshots, .hgz) in the viewport.

The torch renderer runs on a :class:`~holoscope.render.progressive.ProgressiveRenderer` worker:
each paint with a new camera submits it (the newest view wins), a coarse picture arrives first
and is refined while the camera stays still. Pictures go to the GPU through the video path
(rgb24 textures), uploaded in ``paint`` where the GL context is current; the GUI thread never
waits for the network. NeRF and SDF scenes start from the snapshot's stored view; an
image-mode scene is a flat picture facing the camera, panned and zoomed with the usual gestures.
"""

from __future__ import annotations

from typing import Any, Callable

import moderngl
import numpy as np

from holoscope.core.camera import Camera
from holoscope.core.camera_rig import Bounds
from holoscope.core.errors import CorruptStream
from holoscope.core.frames import VideoFrame
from holoscope.core.media import Media
from holoscope.render.gl.splat_renderer import RenderSettings
from holoscope.render.gl.video_renderer import GlVideoRenderer
from holoscope.render.progressive import ProgressiveRenderer, render_image_plane


class NeuralSceneView:
    interactive = True
    timed = False
    progressive = True  # the picture refines while the view is still
    exportable = False  # File > Export Video renders splat scenes; `holoscope render` renders these

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        self.media = media
        self.scene = media.frame(0)
        self.renderer = GlVideoRenderer(ctx)
        self.background = (0.0, 0.0, 0.0)
        self._submitted: Camera | None = None
        self._shown_id = 0
        self._shown_scale = 0.0
        self._shown_ms = 0.0
        self.progressive_job = ProgressiveRenderer(self._render, on_result=lambda _r: request_repaint())

    # What the viewport asks --------------------------------------------------------------
    @property
    def aspect(self) -> float:
        w, h = self.scene.image_size or (1, 1)
        return w / h

    def bounds(self) -> Bounds:
        if self.scene.mode == "image":
            half = np.array([self.aspect / 2, 0.5, 0.0])
            return Bounds(-half, half)
        lo, hi = self.scene.bounds()
        return Bounds(np.asarray(lo, float), np.asarray(hi, float))


    def initial_camera(self, width: int, height: int) -> Camera | None:
        """The snapshot's stored view (NeRF, SDF); None frames the bounds (image mode)."""
        if self.scene.mode == "image":
            return None
        try:
            return self.scene.renderer(interactive=True).default_camera(width, height)
        except CorruptStream:  # an unusable stored view: frame the scene's bounds instead
            return None

    # Rendering ---------------------------------------------------------------------------
    def _render(self, camera: Camera, cancelled: Callable[[], bool]) -> np.ndarray:
        renderer = self.scene.renderer(interactive=True)
        if self.scene.mode == "image":
            return render_image_plane(renderer.evaluate_uv, camera, self.aspect, self.background)
        return renderer.render(camera, cancelled=cancelled)

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        self.background = tuple(settings.background)
        if self._submitted is None or not _same_view(camera, self._submitted):
            self.progressive_job.submit(camera)
            self._submitted = camera
        result = self.progressive_job.latest()  # re-raises a render error here, on the GUI thread
        if result is not None and result.request_id != self._shown_id or (
            result is not None and result.value.scale != self._shown_scale
        ):
            frame = result.value
            h, w = frame.image.shape[:2]
            self.renderer.upload(VideoFrame(planes=(frame.image,), pixel_format="rgb24", width=w, height=h, pts=0.0,
                                            index=0, color_range="full"))  # fmt: skip
            self._shown_id, self._shown_scale, self._shown_ms = result.request_id, frame.scale, frame.seconds * 1e3
        self.renderer.draw(camera.width, camera.height, background=settings.background)

    @property
    def refined(self) -> bool:
        """Whether the picture on screen is the full-resolution one for the newest camera."""
        result = self.progressive_job.latest()
        return result is not None and result.final and result.request_id == self._shown_id

    def refined_for(self, camera: Camera) -> bool:
        """Whether the picture on screen is the full-resolution one of ``camera``."""
        result = self.progressive_job.latest()
        return self.refined and result is not None and _same_view(result.value.camera, camera)

    def stats(self) -> dict[str, Any]:
        snap = self.scene.snapshot
        step = "full resolution" if self._shown_scale >= 1 else f"{self._shown_scale:.0%} resolution, refining"
        details = {"Scene": f"{snap.mode} hash grid, {snap.n_params:,} parameters ({self.scene.container})",
                   "Neural render": f"{step}, {self._shown_ms:.0f} ms" if self._shown_scale else "starting"}  # fmt: skip
        return {"details": details, "cpu_bytes": snap.n_params * 4}

    def release(self) -> None:
        self.progressive_job.close()
        self.renderer.release()


def _same_view(a: Camera, b: Camera) -> bool:
    return (a.width, a.height, a.fov_y) == (b.width, b.height, b.fov_y) and np.allclose(
        a.camera_to_world, b.camera_to_world, atol=1e-9
    )


__all__ = ["NeuralSceneView"]
