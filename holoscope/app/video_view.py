"""VideoView: plain video (and any other timed picture stream) in the viewport.

Decoding runs on a :class:`FramePrefetcher` thread filling a small bounded queue; the GUI
thread asks for the frame the clock wants and gets it or nothing (late frames are dropped
inside the prefetcher). Uploads happen in ``paint`` where the GL context is current.

Opening never blocks the GUI thread: a short-lived thread waits for frame 0 and hands it over
with a repaint request; until then the viewport shows the background.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import moderngl

from holoscope.core.camera import Camera
from holoscope.core.media import Media
from holoscope.core.playback import FramePrefetcher
from holoscope.render.gl.splat_renderer import RenderSettings
from holoscope.render.gl.video_renderer import GlVideoRenderer

QUEUE_FRAMES = 4


class VideoView:
    interactive = False  # the camera does not apply to a flat picture
    timed = True
    progressive = False
    exportable = False  # the exporter renders splat scenes

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        self.media = media
        self.frame_count = media.frame_count
        self.fps = media.fps
        self.renderer = GlVideoRenderer(ctx)
        self.shown = 0  # the index on screen once the first frame arrives
        self._pending: Any = None  # taken from the prefetcher, uploaded at the next paint
        self._lock = threading.Lock()  # _pending and _first_wanted: GUI thread vs first-frame thread
        self._first_wanted = True  # no frame taken by show_frame yet
        self._first_error: BaseException | None = None
        self._request_repaint = request_repaint
        self.prefetcher = FramePrefetcher(media, capacity=QUEUE_FRAMES, start=0)
        self._first_thread = threading.Thread(target=self._await_first_frame, name="holoscope-first-frame",
                                              daemon=True)
        self._first_thread.start()

    def _await_first_frame(self) -> None:
        """Worker: wait for frame 0 and hand it to the next paint (never calls GL or Qt)."""
        try:
            frame = self.prefetcher.wait_for(0)
        except (LookupError, RuntimeError):  # a seek went elsewhere first, or the view closed
            return
        except Exception as exc:  # a decode failure: raised on the GUI thread (next paint or show_frame)
            with self._lock:
                self._first_error = exc
            self._request_repaint()
            return
        with self._lock:
            if not self._first_wanted:  # show_frame already put a newer frame up
                return
            self._pending = frame
        self._request_repaint()

    def seek(self, index: int) -> None:
        """Restart decoding at ``index`` unless the running decode will reach it soon anyway."""
        if not self.prefetcher.covers(index, max_gap=QUEUE_FRAMES * 2):
            self.prefetcher.seek(index)

    def _raise_first_error(self) -> None:
        with self._lock:
            error, self._first_error = self._first_error, None
        if error is not None:
            raise error

    def show_frame(self, index: int) -> bool:
        """Make ``index`` the displayed frame if it is decoded; True when the picture changed."""
        self._raise_first_error()
        if index == self.shown and self._pending is None:
            return False
        if not self.prefetcher.covers(index, max_gap=QUEUE_FRAMES * 4):
            self.prefetcher.seek(index)
        frame = self.prefetcher.take(index)
        if frame is None:
            return False
        with self._lock:
            self._pending = frame
            self._first_wanted = False
        self.shown = index
        return True

    @property
    def first_frame_shown(self) -> bool:
        """Whether a picture has been uploaded (before that the viewport shows the background)."""
        return self.renderer.frame is not None

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.renderer.upload(pending)
        self.renderer.draw(camera.width, camera.height, background=settings.background)
        self._raise_first_error()  # after drawing: the viewport reports it and keeps painting

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
        self.prefetcher.close()  # also ends the first-frame wait
        self._first_thread.join(timeout=5.0)
        self.renderer.release()
