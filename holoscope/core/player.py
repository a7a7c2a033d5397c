"""The player: one Qt-free object that plays any timed medium.

It joins a :class:`PresentationClock` (play, pause, rate, loop), a decode-ahead
:class:`FramePrefetcher` held within a byte budget, and the mapping from clock time to frame
index, and reports an explicit :class:`PlayerState`. Two ways to consume it:

- real time (a GUI timer): :meth:`Player.poll` returns a new frame to show, or ``None`` to keep
  the current one; late frames are dropped inside the prefetcher, and a frame that is not ready
  yet makes the state ``BUFFERING`` instead of blocking;
- every frame (an exporter): :meth:`Player.frame_at` waits for the frame, seeking when the
  wanted index is not on the decoder's way.

What it hands out are the :class:`~holoscope.core.frames.Frame` envelopes of
``media.frames_from`` (index, pts, duration, payload, device); callers draw ``frame.payload``.

A medium of unknown length (``frame_count`` ``None``, a stream) plays too: the clock runs
without an end until the decode-ahead reaches the end of the stream, which fixes
:attr:`Player.frame_count` and the clock's duration (then ``ENDED`` as for any medium); the
frame due is never sought ahead of the decoder (a stream decodes forward), only backwards (a
seek past the end reads the stream from the start to find its end, then shows the last frame);
:meth:`Player.frame_at` past the end raises ``IndexError``.

A frame that could not be decoded (a :class:`FailedFrame`) is never handed out as a picture: the
state becomes ``FAILED_FRAME``, :attr:`Player.warning` names it, the previous picture stays, and
playback goes on with the next frame. Seeking flushes the read-ahead (generation counter in the
prefetcher), so no stale frame appears after a seek.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from holoscope.core import budget
from holoscope.core.clock import PresentationClock
from holoscope.core.errors import Cancelled
from holoscope.core.frames import FailedFrame
from holoscope.core.media import Media
from holoscope.core.playback import FramePrefetcher


READ_AHEAD_CAP = 512 << 20  # bytes: the most any player reads ahead, whatever the budget


def read_ahead_bytes(cap: int = READ_AHEAD_CAP) -> int:
    """The read-ahead memory budget for one player: a quarter of the decode budget
    (:mod:`holoscope.core.budget`), at most ``cap`` bytes."""
    return max(0, min(int(cap), budget.current().limit // 4))


class PlayerState(enum.Enum):
    PAUSED = "paused"
    PLAYING = "playing"
    BUFFERING = "buffering"  # playing, but the frame due is not decoded yet
    ENDED = "ended"  # reached the end without looping
    FAILED_FRAME = "failed frame"  # the frame due could not be decoded; the previous one stays


class Player:
    def __init__(self, media: Media, *, max_bytes: int | None = None, capacity: int = 16, loop: bool = False,
                 now: Callable[[], float] = time.monotonic, name: str = "holoscope-player") -> None:  # fmt: skip
        if (media.frame_count is not None and media.frame_count < 1) or media.fps <= 0:
            raise ValueError("a player needs a timed medium (frames and a frame rate)")
        self.media = media
        self.fps = float(media.fps)
        self._count: int | None = None if media.frame_count is None else int(media.frame_count)
        duration = media.duration
        self.clock = PresentationClock(math.inf if duration is None else duration, loop=loop, now=now)
        self.prefetcher = FramePrefetcher(media, capacity, start=0, max_bytes=max_bytes, name=name)
        self.index: int | None = None  # the index on screen (or failed) last
        self.frame: Any = None  # the last picture handed out
        self.warning: str | None = None
        self._waiting = False  # the frame due was not ready at the last poll
        self._failed_now = False  # the frame at ``index`` could not be decoded

    @property
    def frame_count(self) -> int | None:
        """Frames in the medium; for a stream ``None`` until the decode-ahead reached its end."""
        if self._count is None:
            end = self.prefetcher.end
            if end is not None and end >= 1:
                self._count = end
                self.clock.duration = end / self.fps  # the clock now ends (or loops) there
        return self._count

    # Transport -------------------------------------------------------------------------
    @property
    def state(self) -> PlayerState:
        if self._failed_now and self.index == self._due():
            return PlayerState.FAILED_FRAME
        if self.clock.playing:
            return PlayerState.BUFFERING if self._waiting else PlayerState.PLAYING
        count = self.frame_count
        if (count is not None and not self.clock.loop and self.index == count - 1
                and self.clock.time >= self.clock.duration):  # fmt: skip
            return PlayerState.ENDED
        return PlayerState.PAUSED

    def play(self) -> None:
        self.clock.play()

    def pause(self) -> None:
        self.clock.pause()

    def toggle(self) -> None:
        self.clock.toggle()

    @property
    def loop(self) -> bool:
        return self.clock.loop

    @loop.setter
    def loop(self, value: bool) -> None:
        self.clock.loop = bool(value)

    def set_rate(self, rate: float) -> None:
        self.clock.set_rate(rate)

    def seek(self, index: int) -> None:
        """Jump to frame ``index`` (clamped); the read-ahead restarts there unless already on its way."""
        index = max(int(index), 0)
        count = self.frame_count
        if count is not None:
            index = min(index, count - 1)
        self.clock.seek(index / self.fps)
        if not self.prefetcher.covers(index, max_gap=self.prefetcher.capacity):
            self.prefetcher.seek(index)

    def step(self, delta: int) -> None:
        """Pause and move ``delta`` frames from the current position (the frame due, which
        the picture on screen may not have reached yet)."""
        self.pause()
        self.seek(self.due + delta)

    @property
    def due(self) -> int:
        """The frame index for the clock's time: the position on the timeline."""
        return self._due()

    @property
    def settled(self) -> bool:
        """Paused (or ended) with the frame due handed out (or failed): nothing to poll for."""
        due = self._due()  # first: reading the clock at the end stops it
        return not self.clock.playing and self.index == due

    # Consuming -------------------------------------------------------------------------
    def _due(self) -> int:
        count = self.frame_count  # first: learning a stream's end sets the clock's duration
        index = max(math.floor(self.clock.time * self.fps + 1e-6), 0)  # 0.1 s at 30 fps is frame 3
        return index if count is None else min(index, count - 1)

    def poll(self) -> Any | None:
        """Real time: the new picture to show for the clock's time, or ``None`` (keep showing
        the current one: nothing new is due, it is not decoded yet, or it failed)."""
        due = self._due()
        if due == self.index:
            return None
        if self.index is not None and due < self.index and not self.prefetcher.covers(due):
            self.prefetcher.seek(due)  # looped or scrubbed backwards
        frame = self.prefetcher.take(due)
        if frame is None:
            if self.frame_count is None:  # a stream: never seek ahead of the decoder
                head = self.prefetcher.position
                bound = self.prefetcher.end_at_most
                if head is not None and bound is not None and due >= bound and head >= bound:
                    # Sought past the end of a stream whose length is still unknown: read it
                    # from the start to find its end (frames before the one due are dropped).
                    self.prefetcher.seek(0)
                elif head is None or due < head:
                    self.prefetcher.seek(due)
            elif not self.prefetcher.covers(due, max_gap=self.prefetcher.capacity):
                self.prefetcher.seek(due)
            self._waiting = True
            return None
        self._waiting = False
        return self._accept(due, frame)

    def frame_at(self, index: int, timeout: float | None = None) -> Any | None:
        """Every frame: wait for frame ``index`` (seeking if needed). Returns the picture, or
        ``None`` when that frame failed (see :attr:`warning`; keep the previous picture)."""
        count = self.frame_count
        if index < 0 or (count is not None and index >= count):
            raise IndexError(self._past_end(index))
        if self.index is not None and index == self.index:
            return self.frame if not self._failed_now else None
        try:
            frame = self.prefetcher.wait_for(index, timeout)
        except LookupError:  # behind the decoder, or beyond where this run ends: seek
            try:
                self.prefetcher.seek(index)
                frame = self.prefetcher.wait_for(index, timeout)
            except LookupError:  # (IndexError too) a stream that ended before ``index``
                raise IndexError(self._past_end(index)) from None
        return self._accept(index, frame)

    def _past_end(self, index: int) -> str:
        count = self.frame_count
        if index < 0:
            return f"frame {index} is before the start"
        if count is None:
            return f"frame {index} is past the end of the stream"
        return f"frame {index} is past the end (the medium has {count} frames, 0..{count - 1})"

    def _accept(self, index: int, frame: Any) -> Any | None:
        self.index = index
        payload = getattr(frame, "payload", frame)
        if isinstance(payload, FailedFrame):
            self._failed_now = True
            self.warning = f"frame {index + 1} could not be read: {payload.message}"
            return None
        self._failed_now = False
        self.frame = frame
        return frame

    def stats(self) -> dict[str, Any]:
        pre = self.prefetcher.stats()
        return {"state": self.state.value, "index": self.index, "warning": self.warning, **pre}

    def close(self) -> None:
        self.prefetcher.close(timeout=5.0)

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_frames(player: Player, indices: Sequence[int], *, cancel: threading.Event | None,
                  output: Any) -> Iterator[tuple[int, int, Any]]:  # fmt: skip
    """What an exporter writes, in order: ``(k, index, payload)`` for each of ``indices``,
    waiting for every frame (an exporter drops nothing). ``payload`` is ``None`` where the frame
    could not be decoded (one warning per frame: the caller holds the previous picture);
    ``cancel`` being set raises :class:`Cancelled` naming ``output``."""
    warned: set[int] = set()
    for k, index in enumerate(indices):
        if cancel is not None and cancel.is_set():
            raise Cancelled("render cancelled; partial output removed", path=output)
        envelope = player.frame_at(index)
        payload = None if envelope is None else envelope.cpu_payload()
        if payload is None and index not in warned:
            warned.add(index)
            logging.getLogger("holoscope").warning("%s; the previous frame is held", player.warning)
        yield k, index, payload

