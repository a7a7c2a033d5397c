"""VideoView: plain video (and any other timed picture stream) in the viewport.

Decoding runs on a :class:`FramePrefetcher` thread filling a small bounded queue; the GUI
thread asks for the frame the clock wants and gets it or nothing (late frames are dropped
inside the prefetcher). Uploads happen in ``paint`` where the GL context is current.
"""

from __future__ import annotations

from typing import Any, Callable

import moderngl

from holoscope.core.camera import Camera
from holoscope.core.media import Media
from holoscope.core.playback import FramePrefetcher
from holoscope.render.gl.splat_renderer import RenderSettings
from holoscope.render.gl.video_renderer import GlVideoRenderer

QUEUE_FRAMES = 4
FIRST_FRAME_TIMEOUT = 10.0  # seconds; only opening waits for a frame, playback never does


class VideoView:
    interactive = False  # the camera does not apply to a flat picture
    timed = True

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        self.media = media
        self.frame_count = media.frame_count
        self.fps = media.fps
        self.renderer = GlVideoRenderer(ctx)
        self.prefetcher = FramePrefetcher(media, capacity=QUEUE_FRAMES, start=0)
        first = self.prefetcher.wait_for(0, timeout=FIRST_FRAME_TIMEOUT)
        self.renderer.upload(first)
        self.shown = 0
        self._pending: Any = None

    def seek(self, index: int) -> None:
        """Restart decoding at ``index`` unless the running decode will reach it soon anyway."""
        if not self.prefetcher.covers(index, max_gap=QUEUE_FRAMES * 2):
            self.prefetcher.seek(index)

    def show_frame(self, index: int) -> bool:
        """Make ``index`` the displayed frame if it is decoded; True when the picture changed."""
        if index == self.shown and self._pending is None:
            return False
        if not self.prefetcher.covers(index, max_gap=QUEUE_FRAMES * 4):
            self.prefetcher.seek(index)
        frame = self.prefetcher.take(index)
        if frame is None:
            return False
        self._pending = frame
        self.shown = index
        return True

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        if self._pending is not None:
            self.renderer.upload(self._pending)
            self._pending = None
        self.renderer.draw(camera.width, camera.height, background=settings.background)

    def stats(self) -> dict[str, Any]:
        info = self.media.info
        decode_ms = self.prefetcher.decode_ms
        w, h = info.get("width", 0), info.get("height", 0)
        return {
            "width": w,
            "height": h,
            "bitrate": info.get("bitrate"),
            "decode_ms": decode_ms,
            "decode_fps": 1000.0 / decode_ms if decode_ms > 0 else 0.0,
            "decode_path": f"{info.get('decode_path', 'software')} ({info.get('codec', '?')}), upload + YUV→RGB on the GPU",
            "gpu_bytes": int(w * h * 1.5),
            "dropped": self.prefetcher.frames_dropped,
        }

    def release(self) -> None:
        self.prefetcher.close()
        self.renderer.release()
