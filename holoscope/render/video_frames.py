"""Render the decoded frames of a neural video (``.nerv``, rgb24 :class:`VideoFrame` payloads)
to a video file, an image or an image sequence: no camera, no GL, the pictures themselves.

Output frame ``k`` is media frame ``start + k``, written at the output frame rate (the medium's by
default): one output frame per decoded frame. Decoding runs ahead on the same
:class:`~holoscope.core.player.Player` as playback, in its every-frame mode, within a byte
budget. A frame that cannot be decoded (a FailedFrame) is reported once and the previous frame
held. Frames are resized to the output size with swscale (display output, not analysis).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import av
import numpy as np

from holoscope.codecs.video.output import classify_output, describe_output, encoder_bytes_per_pixel, open_output
from holoscope.core import budget
from holoscope.core.camera import check_image_size
from holoscope.core.errors import BudgetExceeded, EmptyMedia, InvalidArgument
from holoscope.core.frames import VideoFrame
from holoscope.core.media import Media
from holoscope.core.player import Player, export_frames, read_ahead_bytes

ProgressFn = Callable[[int, int], None]

# Bytes per output pixel beyond the encoder's: the decoded frame, the PyAV frame and its resized
# copy (rgb24, 3 each) and slack.
FRAME_BYTES_PER_PIXEL = 16


def source_size(media: Media) -> tuple[int, int]:
    """(width, height) of the medium's pictures: from its info, else from its first frame."""
    info = media.info or {}
    width, height = info.get("width"), info.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    frame = media.frame(0)
    if not isinstance(frame, VideoFrame):
        raise InvalidArgument("frame 0 is not a video picture")
    return frame.width, frame.height


def check_frames_output_size(width: int, height: int, output: str | Path, codec: str | None = None) -> None:
    """Refuse an output size (each side 1..16384) whose writing would not fit the memory budget."""
    width, height = check_image_size(width, height)
    need = width * height * (FRAME_BYTES_PER_PIXEL + encoder_bytes_per_pixel(output, codec))
    limit = budget.current()
    if need > limit.limit:
        raise BudgetExceeded(
            f"writing {width}x{height} frames ({describe_output(output, codec)}) needs about "
            f"{budget.format_bytes(need)}, over the {budget.format_bytes(limit.limit)} memory budget "
            f"(from {limit.source}; change it with --max-memory or {budget.ENV_VAR}); choose a smaller size",
            path=output,
        )


def frame_rgb(frame: VideoFrame, width: int, height: int) -> np.ndarray:
    """The picture of an rgb24 frame as ``[height, width, 3] uint8``, resized when needed."""
    if frame.pixel_format != "rgb24":
        raise InvalidArgument(f"frame {frame.index} is {frame.pixel_format}; only rgb24 pictures can be written yet")
    rgb = frame.planes[0]
    if rgb.shape[:2] == (height, width):
        return rgb
    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return picture.reformat(width=width, height=height).to_ndarray()


def render_video_frames(media: Media, output: str | Path, *, size: tuple[int, int] | None = None,
                        fps: float | None = None, frame_range: tuple[int, int] | None = None,
                        codec: str | None = None, crf: int | None = None, progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None, decode_ahead_bytes: int | None = None) -> int:  # fmt: skip
    """Write frames ``frame_range`` (default all) of ``media`` into ``output``; returns the
    number written. Options and the output are validated before any frame is decoded; on any
    error or interruption the partial output is removed (the sinks guarantee it)."""
    if media.frame_count is None:
        raise InvalidArgument("a stream of unknown length cannot be rendered yet (its frame count is not known)")
    if media.frame_count < 1 or media.fps <= 0:
        raise EmptyMedia("nothing to render: the medium has no frames")
    start, stop = frame_range or (0, media.frame_count)
    if not 0 <= start < stop <= media.frame_count:
        raise InvalidArgument(f"frames {start}:{stop} select nothing of frames 0..{media.frame_count - 1}")
    indices = list(range(start, stop))
    if classify_output(str(output)) == "image":
        indices = indices[:1]
    width, height = size or source_size(media)
    out_fps = float(fps or media.fps)
    check_frames_output_size(width, height, output, codec)
    max_bytes = read_ahead_bytes() if decode_ahead_bytes is None else decode_ahead_bytes
    with open_output(str(output), width=width, height=height, fps=out_fps, codec=codec, crf=crf) as sink:
        player = Player(media, max_bytes=max_bytes, name="holoscope-export-decode")
        try:
            shown: np.ndarray | None = None
            for k, index, frame in export_frames(player, indices, cancel=cancel, output=output):
                if frame is not None:  # None: could not be decoded, the previous frame is held
                    if not isinstance(frame, VideoFrame):
                        raise InvalidArgument(f"frame {index} is not a video picture")
                    shown = frame_rgb(frame, width, height)
                if shown is None:  # the leading frames all failed: nothing to show yet
                    raise EmptyMedia(f"frame {index} cannot be read and no earlier frame can stand in")
                sink.write(shown)
                if progress is not None:
                    progress(k + 1, len(indices))
        finally:
            player.close()
    return len(indices)
