"""VideoView: plain video (and any other timed picture stream) in the viewport.

The view owns the medium's :class:`~holoscope.core.player.Player` (clock, decode-ahead on one
thread into a small bounded queue, explicit states); the window drives it (play, pause, seek,
step, loop, speed, and ``poll`` on its timer) and hands each new picture to :meth:`present`.
Uploads happen in ``paint`` where the GL context is current.

Opening never blocks the GUI thread: the window's timer polls the player until frame 0 is
decoded. A view used without a window gets it too: a short-lived thread waits (without taking
it) until frame 0 is queued and asks for a repaint; the paint takes it from the player. Until
then the viewport shows the background. A decode failure is raised on the GUI thread.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import moderngl

from holoscope.app.views import PlayerView
from holoscope.core.camera import Camera
from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import Frame
from holoscope.core.media import Media
from holoscope.core.player import Player, read_ahead_bytes
from holoscope.render.gl.splat_renderer import RenderSettings
from holoscope.render.gl.video_renderer import GlVideoRenderer

QUEUE_FRAMES = 4


class VideoView(PlayerView):
    interactive = False  # the camera does not apply to a flat picture
    timed = True
    progressive = False
    exportable = False  # the exporter renders splat scenes

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        if media.frame_count is None:
            raise InvalidArgument("the app cannot play a stream of unknown length yet")
        self.media = media
        self.frame_count = media.frame_count
        self.fps = media.fps
        self.renderer = GlVideoRenderer(ctx)
        self.shown = 0  # the index on screen once the first frame arrives
        self._pending: Any = None  # handed over by present(), uploaded at the next paint
        self._request_repaint = request_repaint
        self.player = Player(media, capacity=QUEUE_FRAMES, max_bytes=read_ahead_bytes(), name="holoscope-video-read")
        self._first_thread = threading.Thread(target=self._await_first_frame, name="holoscope-first-frame",
                                              daemon=True)  # fmt: skip
        self._first_thread.start()

    def _await_first_frame(self) -> None:
        """Worker: wait until frame 0 is decoded (or failed) and ask for a repaint; never takes
        the frame, never calls GL or Qt."""
        try:
            self.player.prefetcher.wait_ready(0)
        except (LookupError, RuntimeError):  # a seek went elsewhere first, or the view closed
            return
        self._request_repaint()

    @property
    def warning(self) -> str | None:
        return self.player.warning

    def present(self, frame: Frame) -> None:
        """Show ``frame`` (the envelope the player handed out) from the next paint on."""
        self._pending = frame.cpu_payload()  # a GL upload: host memory only
        self.shown = frame.index


    @property
    def first_frame_shown(self) -> bool:
        """Whether a picture has been uploaded (before that the viewport shows the background)."""
        return self.renderer.frame is not None

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        error: Exception | None = None
        if self._pending is None and self.player.index is None:  # no window polled frame 0 yet
            try:
                frame = self.player.poll()
            except Exception as exc:  # reported after drawing: the viewport logs it, keeps painting
                error = exc
            else:
                if frame is not None:
                    self.present(frame)
        pending, self._pending = self._pending, None
        if pending is not None:
            self.renderer.upload(pending)
        self.renderer.draw(camera.width, camera.height, background=settings.background)
        if error is not None:
            raise error

    def stats(self) -> dict[str, Any]:
        info = self.media.info
        decode_ms = self.player.prefetcher.decode_ms
        w, h = info.get("width", 0), info.get("height", 0)
        return {
            "width": w,
            "height": h,
            "bitrate": info.get("bitrate"),
            "decode_ms": decode_ms,
            "decode_fps": 1000.0 / decode_ms if decode_ms > 0 else 0.0,
            "decode_path": f"{info.get('decode_path', 'software')} ({info.get('codec', '?')}), upload + YUV→RGB on the GPU",
            "gpu_bytes": int(w * h * 1.5),
            "dropped": self.player.prefetcher.frames_dropped,
            "warning": self.player.warning,
        }

    def release(self) -> None:
        self.player.close()  # also ends the first-frame wait
        self._first_thread.join(timeout=5.0)
        self.renderer.release()
