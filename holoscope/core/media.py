"""The media model: everything holoscope opens is a :class:`Media`.

A Media knows its kind, frame count, frame rate and duration, and hands out typed frames
(:mod:`holoscope.core.frames`) by index. A static scene is one frame at 0 fps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


class MediaKind(enum.Enum):
    SPLATS = "splats"  # static Gaussian splat scene
    SPLAT_SEQUENCE = "splat-sequence"  # per-frame splat files played in time
    SPLAT_VIDEO = "splat-video"  # volumetric Gaussian video
    NEURAL_VIDEO = "neural-video"  # NeRV-family streams
    NEURAL_SCENE = "neural-scene"  # hash-grid scenes
    VIDEO = "video"  # plain video files


@dataclass(eq=False)
class Media:
    """An opened file: what it is plus a way to fetch its frames.

    ``format`` is the registry name of the format, ``reader`` the name of the reader that won
    the probe (so the UI can say which one was used).
    """

    kind: MediaKind
    format: str
    reader: str
    frame_count: int
    fps: float
    load_frame: Callable[[int], Any]
    path: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Sequential access from a start frame; timed media with inter-frame coding (video) supply
    # one that seeks once and then decodes forward, far cheaper than frame(i) for every i.
    iter_from: Callable[[int], Iterator[Any]] | None = None
    close: Callable[[], None] | None = None

    @property
    def duration(self) -> float:
        """Seconds of playback; 0 for a static scene."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    @property
    def is_static(self) -> bool:
        return self.frame_count == 1 and self.fps == 0

    def frame(self, index: int = 0) -> Any:
        if not 0 <= index < self.frame_count:
            raise IndexError(f"frame {index} out of range 0..{self.frame_count - 1}")
        return self.load_frame(index)

    def frames_from(self, start: int = 0) -> Iterator[Any]:
        """Frames start, start+1, ... to the end (sequential decode when the media offers it)."""
        if not 0 <= start < self.frame_count:
            raise IndexError(f"frame {start} out of range 0..{self.frame_count - 1}")
        if self.iter_from is not None:
            yield from self.iter_from(start)
        else:
            for index in range(start, self.frame_count):
                yield self.load_frame(index)

    def release(self) -> None:
        """Free decoder resources (open containers, GPU handles); safe to call twice."""
        if self.close is not None:
            self.close()
