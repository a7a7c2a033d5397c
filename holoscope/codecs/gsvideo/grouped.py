"""Playback of group-coded Gaussian video: random access per group of frames.

Both V^3 streams and .gsv files are cut into groups of frames that decode on their own (each
starts with a key frame; inside a group frames are predicted from earlier ones). Seeking goes to
the group's start and decodes forward; playing through decodes each group once, in order.

A group that cannot be decoded (a truncated segment, a missing stream) does not end playback:
:meth:`Media.frames_from` yields a :class:`FailedFrame` for each of its frames with a warning,
then goes on with the next group. :meth:`Media.frame` raises the group's error.
"""

from __future__ import annotations

import bisect
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from holoscope.core.errors import HoloscopeError
from holoscope.core.frames import FailedFrame
from holoscope.core.media import Media, MediaKind

log = logging.getLogger("holoscope")


@dataclass(frozen=True)
class GroupSpan:
    """Frames ``start .. start + count - 1`` of the video form one group."""

    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count


# group index -> its frames in order (SplatCloud payloads). Raises HoloscopeError when the group
# is damaged, possibly after some frames were produced.
GroupDecoder = Callable[[int], Iterator[Any]]


def check_spans(groups: list[GroupSpan]) -> None:
    """Groups must tile the frames 0..N-1 without gaps; a reader calls this on what a header says."""
    expected = 0
    for index, group in enumerate(groups):
        if group.start != expected or group.count <= 0:
            raise ValueError(f"group {index} covers frames {group.start}..{group.end - 1}, expected to start at {expected}")
        expected = group.end


class GroupedFrames:
    """Frame access over groups: ``frame(i)`` decodes forward from the start of i's group,
    keeping the open decode so that the next frame costs one frame's decode."""

    def __init__(self, groups: list[GroupSpan], decode_group: GroupDecoder, label: str = "") -> None:
        check_spans(groups)
        self.groups = groups
        self.decode_group = decode_group
        self.label = label
        self._starts = [g.start for g in groups]
        self._lock = threading.Lock()
        self._open: tuple[int, int, Iterator[Any]] | None = None  # (group, next frame, iterator)

    @property
    def frame_count(self) -> int:
        return self.groups[-1].end if self.groups else 0

    def group_of(self, index: int) -> int:
        return bisect.bisect_right(self._starts, index) - 1

    def frame(self, index: int) -> Any:
        group = self.group_of(index)
        with self._lock:
            if self._open is not None and self._open[0] == group and self._open[1] <= index:
                _, position, frames = self._open
            else:
                position, frames = self.groups[group].start, self.decode_group(group)
            self._open = None
            try:
                while True:
                    payload = next(frames)
                    position += 1
                    if position > index:
                        break
            except StopIteration:
                raise HoloscopeError(f"group {group + 1} ended before frame {index + 1}") from None
            if position < self.groups[group].end:
                self._open = (group, position, frames)
            return payload

    def close(self) -> None:
        """Stop the decode kept open for the next frame (its threads and containers)."""
        with self._lock:
            open_run, self._open = self._open, None
        if open_run is not None:
            _close(open_run[2])

    def iter_from(self, start: int) -> Iterator[Any]:
        """Frames from ``start`` to the end; a damaged group becomes FailedFrames and a warning."""
        for group in range(self.group_of(start), len(self.groups)):
            span = self.groups[group]
            index = max(start, span.start)
            frames: Any = None
            try:
                frames = self.decode_group(group)
                for position in range(span.start, span.end):
                    payload = next(frames)
                    if position >= index:
                        yield payload
                        index = position + 1
                _close(frames)  # the group's decode threads stop now, not when collected
            except (HoloscopeError, StopIteration) as exc:
                _close(frames)
                reason = str(exc) if isinstance(exc, HoloscopeError) else "the group ended early"
                log.warning("%sgroup %d (frames %d-%d) skipped: %s", f"{self.label}: " if self.label else "",
                            group + 1, span.start + 1, span.end, reason)  # fmt: skip
                for position in range(index, span.end):
                    yield FailedFrame(position, f"group {group + 1} skipped: {reason}")


def _close(run: Any) -> None:
    close = getattr(run, "close", None)
    if close is not None:
        close()


def grouped_media(*, groups: list[GroupSpan], decode_group: GroupDecoder, fps: float, format: str, reader: str,
                  path: str | None, info: dict, close: Callable[[], None] | None = None) -> Media:  # fmt: skip
    """Timed splat media (kind ``SPLAT_VIDEO``) over ``groups`` decoded by ``decode_group``."""
    frames = GroupedFrames(groups, decode_group, label=path or "")
    info = {**info, "groups": len(groups), "group_frames": [g.count for g in groups]}

    def close_all() -> None:
        frames.close()
        if close is not None:
            close()

    return Media(kind=MediaKind.SPLAT_VIDEO, format=format, reader=reader, frame_count=frames.frame_count, fps=fps,
                 load_frame=frames.frame, iter_from=frames.iter_from, path=path, info=info, close=close_all)  # fmt: skip
