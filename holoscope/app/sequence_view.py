"""SplatSequenceView: a splat sequence (per-frame splat files) on the timeline, camera free;
GaussianVideoView: the same for volumetric Gaussian video (.gsv, V^3 streams).

The view owns the medium's :class:`~holoscope.core.player.Player`: frames are read ahead on its
thread within a byte budget (a quarter of the decode budget, at most 512 MiB). The window drives
the player and hands each frame it gives out to :meth:`present`; the view uploads it at the next
paint, reusing the renderer's GPU buffers. Depth sorts run on one latest-wins job
(:class:`~holoscope.core.jobs.LatestJob`): each result names the frame it was sorted for, and
only an order for the frame on screen is drawn. A frame that cannot be read is never handed
out: the player's warning names it, the previous frame stays up and playback goes on.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import moderngl
import numpy as np

from holoscope.app.views import PlayerView
from holoscope.core import budget
from holoscope.core.camera import Camera
from holoscope.core.camera_rig import Bounds
from holoscope.core.errors import EmptyMedia, HoloscopeError, InvalidArgument
from holoscope.core.frames import Frame, SplatCloud
from holoscope.core.jobs import JobContext, LatestJob
from holoscope.core.media import Media
from holoscope.core.player import Player, read_ahead_bytes
from holoscope.render.gl.splat_renderer import GlSplatRenderer, RenderSettings
from holoscope.render.sort import sort_back_to_front

READ_AHEAD_FRAMES = 64  # a count cap besides the byte budget (read_ahead_bytes)
SORT_TIMEOUT = 5.0  # seconds a paint waits for the order of a frame it has just uploaded


def _sort(request: tuple[int, np.ndarray, np.ndarray], ctx: JobContext) -> tuple[int, np.ndarray]:
    token, means, view = request
    return token, sort_back_to_front(means, view, 0.0)


class SplatSequenceView(PlayerView):
    cloud: SplatCloud  # the frame on screen (uploaded at the next paint when one is pending)
    interactive = True  # the camera stays under the user's control while the sequence plays
    timed = True
    progressive = False
    exportable = False  # not from the app yet: `holoscope render SEQ` exports sequences

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        if media.frame_count is None:
            raise InvalidArgument("the app cannot play a stream of unknown length yet")
        self.media = media
        self.frame_count = media.frame_count
        self.fps = media.fps
        first, self.cloud = self._first_frame(media)
        self._bounds = self.cloud.robust_bounds()  # of the first frame: the view does not jump
        self.shown = first
        self.renderer = GlSplatRenderer(ctx)
        self.renderer.upload(self.cloud)
        self._token = 0  # which upload the renderer holds
        self._pending: SplatCloud | None = None
        self._lock = threading.Lock()
        self._sorter: LatestJob = LatestJob(_sort, name="holoscope-sequence-sort",
                                            on_result=lambda _r: request_repaint())  # fmt: skip
        self._last_view: np.ndarray | None = None
        self._last_request = 0
        self._drawn: tuple[int, int] | None = None  # (token, request id) of the order in use
        self.player = Player(media, capacity=READ_AHEAD_FRAMES, max_bytes=read_ahead_bytes(),
                             name="holoscope-sequence-read")  # fmt: skip

    @staticmethod
    def _first_frame(media: Media) -> tuple[int, SplatCloud]:
        """The frame shown until the player hands one out (and whose bounds frame the view)."""
        first = int(media.info.get("first_readable_frame", 0))
        return first, media.frame(first)  # read when the sequence was opened: no wait

    # Timeline --------------------------------------------------------------------------
    @property
    def warning(self) -> str | None:
        """The last frame that could not be read, named (the player's warning)."""
        return self.player.warning

    def present(self, frame: Frame) -> None:
        """Show ``frame`` (the envelope of a cloud the player handed out) from the next paint on."""
        cloud = frame.cpu_payload()  # a GL upload: host memory only
        with self._lock:
            self._pending = cloud
        self.shown = frame.index


    # Drawing ---------------------------------------------------------------------------
    def bounds(self) -> Bounds:
        lo, hi = self._bounds
        return Bounds(lo, hi)

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.renderer.upload(pending)  # into the existing buffers when it fits
            self.cloud = pending
            self._token += 1
            self._last_view = None  # the new frame needs its own order
        view = camera.view_matrix
        if self._last_view is None or not np.allclose(view, self._last_view, atol=1e-9):
            self._last_request = self._sorter.submit((self._token, self.cloud.means, view))
            self._last_view = view
        result = self._sorter.latest()
        if result is None or result.value[0] != self._token:  # no order for this frame yet
            result = self._sorter.wait(self._last_request, SORT_TIMEOUT)
        if self._drawn != (self._token, result.request_id):
            self.renderer.set_order(result.value[1])
            self._drawn = (self._token, result.request_id)
        self.renderer.draw(camera, settings)

    def pick(self, camera: Camera, x: float, y: float, radius_px: float = 6.0) -> np.ndarray | None:
        from holoscope.app.views import pick_splat

        return pick_splat(self.cloud, camera, x, y, radius_px)

    def stats(self) -> dict[str, Any]:
        c, pre = self.cloud, self.player.prefetcher.stats()
        decode_ms = pre["decode_ms"]
        return {
            "frame": f"{self.shown + 1} / {self.frame_count}",
            "splats": c.count,
            "sh_degree": c.sh_degree,
            "decode_ms": decode_ms,
            "decode_fps": 1000.0 / decode_ms if decode_ms > 0 else 0.0,
            "prefetched": f"{pre['queued']} frames, {budget.format_bytes(pre['queued_bytes'])} "
                          f"(budget {budget.format_bytes(pre['max_bytes'] or 0)})",
            "gpu_bytes": c.count * (16 + 32 + 4 + 48) + c.sh.nbytes,
            "cpu_bytes": c.nbytes + pre["queued_bytes"],
            "dropped": pre["frames_dropped"],
            "warning": self.warning,
        }

    def release(self) -> None:
        self.player.close()
        self._sorter.close()
        self.renderer.release()


class GaussianVideoView(SplatSequenceView):
    """A Gaussian video (.gsv file or segments, V^3 stream): played like a splat sequence (a
    damaged group's frames are failed frames: warned about, skipped); the info panel also names
    its groups, preset or codec, splats and bytes per frame, and decode path."""

    @staticmethod
    def _first_frame(media: Media) -> tuple[int, SplatCloud]:
        # Opening checked the header only: a group can still fail its checksum. Start at the
        # first group that decodes instead of refusing the whole video.
        first = int(media.info.get("first_readable_frame", 0))
        starts, at = [], 0
        for count in media.info.get("group_frames") or [media.frame_count]:
            if at >= first:
                starts.append(at)
            at += int(count)
        error: HoloscopeError | None = None
        for start in starts or [first]:
            try:
                return start, media.frame(start)
            except HoloscopeError as exc:
                error = error or exc
        raise EmptyMedia(f"no group of frames can be decoded ({error})", path=media.path)

    def stats(self) -> dict[str, Any]:
        info = self.media.info
        out = super().stats()
        path, codec = info.get("decode_path", "software"), info.get("codec", "?")
        out["decode_path"] = f"{path} ({codec} through PyAV, on the read-ahead thread)"
        if info.get("hwdec_fallback"):  # why hardware decoding was tried and given up
            out["decode_path"] += f"; hardware not used: {info['hwdec_fallback']}"
        out["bitrate"] = info.get("bitrate")
        out["details"] = video_details(info)
        return out


def video_details(info: dict[str, Any]) -> dict[str, str]:
    """Info-panel rows describing a Gaussian video from its media info (what its reader says)."""
    rows: dict[str, str] = {}
    sizes = [int(n) for n in info.get("group_frames") or []]
    if sizes:
        # Groups are the unit of seeking (a seek decodes from its group's start); the last may be shorter.
        regular = len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]
        rows["Groups"] = f"{len(sizes)} of {sizes[0]} frames" if regular else \
            f"{len(sizes)} of {min(sizes)} to {max(sizes)} frames"
        missing = info.get("missing_groups") or []
        if missing:
            rows["Groups"] += f" ({len(missing)} missing: {', '.join(str(g) for g in missing[:8])})"
    if info.get("preset"):
        rows["Preset"] = f"{info['preset']} ({info.get('codec', '?')})"
        if len(info.get("levels") or []) > 1:  # a segmented layout: the level played, of those stored
            rows["Preset"] += f"; levels {', '.join(str(lv) for lv in info['levels'])}"
    elif info.get("codec"):
        rows["Codec"] = f"{info['codec']} ({info['profile']})" if info.get("profile") else str(info["codec"])
    lo, hi = info.get("splats_min"), info.get("splats_max")
    if lo is not None and hi is not None:
        rows["Splats per frame"] = f"{int(lo):,}" if lo == hi else f"{int(lo):,} to {int(hi):,}"
    if info.get("bytes_per_frame") is not None:
        rows["Bytes per frame"] = budget.format_bytes(int(info["bytes_per_frame"]))
    return rows
