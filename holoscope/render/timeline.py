"""Headless rendering of timed 3D media (splat sequences now): frames and cameras aligned in time.

:func:`plan_timeline` decides, for every output frame, which media frame and which camera it
shows; :func:`render_timeline` renders that plan. Output frame ``k`` is at time ``t = k / fps``:
it shows media frame ``start + floor(t · media_fps)`` and camera ``floor(t · path_fps)`` of the
camera path. The output lasts as long as the longer of the two: the media holds its last frame
(or loops with ``loop=True``) while a longer camera path goes on, and a path with one camera is
a fixed view that lasts as long as the media.

Rendering drives the same :class:`~holoscope.core.player.Player` as playback, in its
every-frame mode (an exporter never drops late ones): its decode-ahead, within a byte budget,
reads the next frames while the current one draws. A frame that cannot be read (a FailedFrame) is reported once and
the previous frame stays on screen.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from holoscope.codecs.video.output import classify_output, open_output
from holoscope.core.camera import Camera
from holoscope.core.camera_path import CameraPath
from holoscope.core.errors import EmptyMedia, InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.core.media import Media
from holoscope.core.player import Player, export_frames, read_ahead_bytes
from holoscope.render.export import ExportOptions, SplatFrameRenderer, check_output_size
from holoscope.render.gl.context import create_headless_context
from holoscope.render.gl.splat_renderer import to_uint8

if TYPE_CHECKING:  # the context is created in render/gl; this module only passes it on
    import moderngl

ProgressFn = Callable[[int, int], None]
MAX_OUTPUT_FRAMES = 1_000_000


@dataclass(frozen=True)
class TimelinePlan:
    frames: tuple[int, ...]  # media frame index per output frame
    cameras: tuple[Camera, ...]  # camera per output frame
    fps: float

    def __len__(self) -> int:
        return len(self.frames)


def parse_frame_range(text: str, frame_count: int) -> tuple[int, int]:
    """``A:B`` (B exclusive, either side may be empty, negatives count from the end) -> (a, b)."""
    if frame_count is None:
        raise InvalidArgument("--frames needs a medium whose frame count is known")
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a = int(parts[0]) if parts[0].strip() else 0
        b = int(parts[1]) if parts[1].strip() else frame_count
    except ValueError:
        raise InvalidArgument(f"--frames takes A:B (frame indices, B excluded), got {text!r}") from None
    a, b = (a + frame_count if a < 0 else a), (b + frame_count if b < 0 else b)
    if not 0 <= a < b <= frame_count:
        raise InvalidArgument(f"--frames {text} selects nothing of frames 0..{frame_count - 1}")
    return a, b


def plan_timeline(media_frames: int | None, media_fps: float, cameras: CameraPath, *, fps: float | None = None,
                  loop: bool = False, frame_range: tuple[int, int] | None = None) -> TimelinePlan:  # fmt: skip
    """Align ``frame_range`` of a timed medium with a camera path (see the module docstring)."""
    if media_frames is None:
        raise InvalidArgument("a stream of unknown length cannot be rendered yet (its frame count is not known)")
    if media_frames < 1 or media_fps <= 0:
        raise EmptyMedia("nothing to render: the medium has no timed frames")
    start, stop = frame_range or (0, media_frames)
    out_fps = float(fps or media_fps)
    media_seconds = (stop - start) / media_fps
    path_seconds = len(cameras) / cameras.fps if len(cameras) > 1 else 0.0
    total = max(1, round(max(media_seconds, path_seconds) * out_fps))
    if total > MAX_OUTPUT_FRAMES:
        raise InvalidArgument(f"the output would hold {total:,} frames (limit {MAX_OUTPUT_FRAMES:,})")
    section = stop - start
    frames, views = [], []
    for k in range(total):
        t = k / out_fps
        i = math.floor(t * media_fps + 1e-6)
        i = i % section if loop else min(i, section - 1)
        frames.append(start + i)
        c = min(math.floor(t * cameras.fps + 1e-6), len(cameras) - 1) if len(cameras) > 1 else 0
        views.append(cameras.cameras[c])
    return TimelinePlan(tuple(frames), tuple(views), out_fps)


def render_timeline(media: Media, plan: TimelinePlan, output: str | Path, options: ExportOptions = ExportOptions(),
                    *, progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                    ctx: moderngl.Context | None = None, decode_ahead_bytes: int | None = None) -> int:  # fmt: skip
    """Render every output frame of ``plan`` into ``output``; returns the number written.

    Options and the output are validated before any frame is read; on any error or
    interruption the partial output is removed (the sinks guarantee it).
    """
    frames, views = list(plan.frames), list(plan.cameras)
    if classify_output(str(output)) == "image":
        frames, views = frames[:1], views[:1]
    if not frames:
        raise InvalidArgument("the timeline is empty")
    first = views[0]
    if any((c.width, c.height) != (first.width, first.height) for c in views):
        raise InvalidArgument("every camera of an output must have the same image size")
    check_output_size(first.width, first.height, output, options.codec)
    own_ctx = ctx is None
    ctx = ctx or create_headless_context()
    max_bytes = read_ahead_bytes() if decode_ahead_bytes is None else decode_ahead_bytes
    player = Player(media, max_bytes=max_bytes, name="holoscope-export-decode")
    try:
        check_output_size(first.width, first.height, output, options.codec, ctx=ctx)
        with open_output(str(output), width=first.width, height=first.height, fps=plan.fps,
                         codec=options.codec, crf=options.crf) as sink:  # fmt: skip
            renderer: SplatFrameRenderer | None = None
            shown: int | None = None
            try:
                for k, index, frame in export_frames(player, frames, cancel=cancel, output=output):
                    camera = views[k]
                    if frame is not None and index != shown:  # None: unreadable, the previous frame is held
                        if not isinstance(frame, SplatCloud):
                            raise InvalidArgument(f"frame {index} is not a splat scene")
                        if renderer is None:
                            renderer = SplatFrameRenderer(frame, ctx)
                        else:
                            with ctx:
                                renderer.renderer.upload(frame)
                            renderer.cloud = frame
                        shown = index
                    if renderer is None:  # the leading frames all failed: nothing to show yet
                        raise EmptyMedia(f"frame {index} cannot be read and no earlier frame can stand in")
                    sink.write(to_uint8(renderer.render(camera, options.settings)))
                    if progress is not None:
                        progress(k + 1, len(frames))
            finally:
                if renderer is not None:
                    renderer.release()
    finally:
        player.close()
        if own_ctx:
            ctx.release()
    return len(frames)
