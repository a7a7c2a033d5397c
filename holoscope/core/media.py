"""The media model: everything holoscope opens is a :class:`Media`.

A Media knows its kind, frame count, frame rate and duration, and hands out typed frames
(:mod:`holoscope.core.frames`) by index. A static scene is one frame at 0 fps.

The rule for frames: :meth:`Media.frame` returns the bare payload (a ``SplatCloud``, a
``VideoFrame``): static scenes, ``holoscope info``, conversion and the exporter's first frame
use it. :meth:`Media.frames_from` is what flows to a renderer in time: it always yields
:class:`~holoscope.core.frames.Frame` envelopes (index, pts, duration, payload, device), built
here from what the reader yields, so readers need not know about them. The Player and its
decode-ahead pass envelopes through; views and the exporter take ``frame.payload``.

``frame_count`` may be ``None`` for a stream whose length is known only at its end: then
``duration`` is ``None``, ``frames_from`` (which such a medium must supply through
``iter_from``) stops at the end, and ``frame(i)`` past the end raises ``IndexError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from holoscope.core.frames import Frame


class MediaKind(enum.Enum):
    SPLATS = "splats"  # static Gaussian splat scene
    SPLAT_SEQUENCE = "splat-sequence"  # per-frame splat files played in time
    SPLAT_VIDEO = "splat-video"  # volumetric Gaussian video
    NEURAL_VIDEO = "neural-video"  # NeRV-family streams
    NEURAL_SCENE = "neural-scene"  # hash-grid scenes
    VIDEO = "video"  # plain video files

    @property
    def is_timed_splats(self) -> bool:
        """Splat frames in time (a sequence of files or a Gaussian video): they play, render and
        convert alike."""
        return self in (MediaKind.SPLAT_SEQUENCE, MediaKind.SPLAT_VIDEO)


@dataclass(eq=False)
class Media:
    """An opened file: what it is plus a way to fetch its frames.

    ``format`` is the registry name of the format, ``reader`` the name of the reader that won
    the probe (so the UI can say which one was used).
    """

    kind: MediaKind
    format: str
    reader: str
    frame_count: int | None  # None: a stream whose length is known only at its end
    fps: float
    load_frame: Callable[[int], Any]
    path: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Sequential access from a start frame; timed media with inter-frame coding (video) supply
    # one that seeks once and then decodes forward, far cheaper than frame(i) for every i.
    # It may yield payloads or Frame envelopes; frames_from wraps payloads.
    iter_from: Callable[[int], Iterator[Any]] | None = None
    close: Callable[[], None] | None = None

    @property
    def duration(self) -> float | None:
        """Seconds of playback; 0 for a static scene, ``None`` while the length is unknown."""
        if self.frame_count is None:
            return None
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    @property
    def is_static(self) -> bool:
        return self.frame_count == 1 and self.fps == 0

    @property
    def length_known(self) -> bool:
        return self.frame_count is not None

    def _check(self, index: int) -> None:
        if self.frame_count is None:
            if index < 0:
                raise IndexError(f"frame {index} is before the start of the stream")
        elif not 0 <= index < self.frame_count:
            raise IndexError(f"frame {index} out of range 0..{self.frame_count - 1}")

    def frame(self, index: int = 0) -> Any:
        """The bare payload of frame ``index`` (no envelope; see the module docstring)."""
        self._check(index)
        return self.load_frame(index)

    def frames_from(self, start: int = 0) -> Iterator[Frame]:
        """Frame envelopes start, start+1, ... to the end (sequential decode when the media
        offers it); for a stream of unknown length the end is where its iterator stops."""
        self._check(start)
        if self.iter_from is not None:
            expected = start
            for item in self.iter_from(start):
                frame = Frame.wrap(item, expected, self.fps)
                expected = frame.index + 1
                yield frame
        elif self.frame_count is None:
            raise TypeError("a medium of unknown length must supply iter_from")
        else:
            for index in range(start, self.frame_count):
                yield Frame.wrap(self.load_frame(index), index, self.fps)

    def release(self) -> None:
        """Free decoder resources (open containers, GPU handles); safe to call twice."""
        if self.close is not None:
            self.close()
