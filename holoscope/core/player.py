"""The player: one Qt-free object that plays any timed medium.

It joins a :class:`PresentationClock` (play, pause, rate, loop), a decode-ahead
:class:`FramePrefetcher` held within a byte budget, and the mapping from clock time to frame
index, and reports an explicit :class:`PlayerState`. Two ways to consume it:

- real time (a GUI timer): :meth:`Player.poll` returns a new frame to show, or ``None`` to keep
  the current one; late frames are dropped inside the prefetcher, and a frame that is not ready
  yet makes the state ``BUFFERING`` instead of blocking (but see streaming below);
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

Streaming (``streamed=True``, by default ``media.info["streamed"]``: a medium read over a link):
the read-ahead holds ``buffer_seconds`` of frames (default :data:`STREAM_BUFFER_S`, converted to
frames with the frame rate, still bounded by the byte budget), and a frame due that is not
decoded yet STALLS playback instead of dropping frames: the clock pauses in state
``BUFFERING`` (the frame due is shown as soon as it comes: a stream's first picture does not
wait for the buffer) and resumes by itself once ``resume_seconds`` of frames are ready after
it (or the decode-ahead reached the end). A local file keeps dropping late frames: its decode
is slow, not its bytes, and stalling would only make it slower than real time. ``stats()``
reports ``stalls``, ``stalled_s`` and ``buffer_s`` (seconds of frames ready ahead), and, for a
medium with an adaptive controller (``media.adaptive``, see :mod:`holoscope.core.adaptive`),
``level``, ``throughput_bps``; the player engages that controller on its first :meth:`poll`
(real-time playback adapts its quality, :meth:`frame_at` export reads the best level) and
reports its buffer to it on every poll.

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


STREAM_BUFFER_S = 2.0  # seconds a streamed medium reads ahead by default
STREAM_RESUME_S = 0.5  # seconds that must be ready before a stalled stream plays again
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
                 now: Callable[[], float] = time.monotonic, name: str = "holoscope-player",
                 streamed: bool | None = None, buffer_seconds: float | None = None,
                 resume_seconds: float = STREAM_RESUME_S) -> None:  # fmt: skip
        """``capacity`` frames are read ahead, or ``buffer_seconds`` of them when given (a
        streamed medium: :data:`STREAM_BUFFER_S` unless given); see the module doc for
        ``streamed`` and ``resume_seconds``."""
        if (media.frame_count is not None and media.frame_count < 1) or media.fps <= 0:
            raise ValueError("a player needs a timed medium (frames and a frame rate)")
        if buffer_seconds is not None and not 0 < buffer_seconds <= 3600:
            raise ValueError(f"buffer_seconds must be within (0, 3600], got {buffer_seconds}")
        if not 0 <= resume_seconds <= 3600:
            raise ValueError(f"resume_seconds must be within [0, 3600], got {resume_seconds}")
        self.media = media
        self.fps = float(media.fps)
        self.streamed = bool(media.info.get("streamed")) if streamed is None else bool(streamed)
        if buffer_seconds is None and self.streamed:
            buffer_seconds = STREAM_BUFFER_S
        self.buffer_seconds = buffer_seconds
        if buffer_seconds is not None:
            capacity = max(1, math.ceil(buffer_seconds * self.fps))
        # at least a frame, and never more than the buffer holds (else it could never resume)
        self._resume_frames = max(1, min(math.ceil(resume_seconds * self.fps), capacity))
        self.adaptive = getattr(media, "adaptive", None)  # the medium's quality controller, if any
        self._now = now
        self._stalled_since: float | None = None  # when the clock was paused for a late frame
        self._stalled_total = 0.0
        self.stalls = 0
        self._count: int | None = None if media.frame_count is None else int(media.frame_count)
        duration = media.duration
        self.clock = PresentationClock(math.inf if duration is None else duration, loop=loop, now=now)
        self._prefetcher: FramePrefetcher | None = None
        self._prefetcher_args = (capacity, max_bytes, name)
        if self.adaptive is None or not self.adaptive.adaptive or self.adaptive.engaged:
            self._start_prefetcher()  # decoding starts now: frame 0 arrives as soon as it can
        # else on first use: the first poll engages the quality controller before the first
        # group is fetched (at the safe lowest level), while every-frame export reads the best
        self.index: int | None = None  # the index on screen (or failed) last
        self.frame: Any = None  # the last picture handed out
        self.warning: str | None = None
        self._waiting = False  # the frame due was not ready at the last poll
        self._failed_now = False  # the frame at ``index`` could not be decoded

    def _start_prefetcher(self) -> FramePrefetcher:
        if self._prefetcher is None:
            capacity, max_bytes, name = self._prefetcher_args
            self._prefetcher = FramePrefetcher(self.media, capacity, start=0, max_bytes=max_bytes, name=name)
        return self._prefetcher

    @property
    def prefetcher(self) -> FramePrefetcher:
        """The decode-ahead (started on first use for a medium whose quality adapts)."""
        return self._prefetcher if self._prefetcher is not None else self._start_prefetcher()

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
        if self._stalled_since is not None:
            return PlayerState.BUFFERING
        if self.clock.playing:
            return PlayerState.BUFFERING if self._waiting else PlayerState.PLAYING
        count = self.frame_count
        if (count is not None and not self.clock.loop and self.index == count - 1
                and self.clock.time >= self.clock.duration):  # fmt: skip
            return PlayerState.ENDED
        return PlayerState.PAUSED

    def play(self) -> None:
        if self._stalled_since is None:  # a stalled player plays on by itself
            self.clock.play()

    def pause(self) -> None:
        self._end_stall()
        self.clock.pause()

    def toggle(self) -> None:
        if self._stalled_since is not None:
            self.pause()  # it shows as playing (buffering): toggling pauses
        else:
            self.clock.toggle()

    @property
    def stalled(self) -> bool:
        """Playback waits for a streamed medium's frames (the clock is held)."""
        return self._stalled_since is not None

    def _stall(self) -> None:
        if self._stalled_since is None and self.clock.playing:
            self.clock.pause()
            self._stalled_since = self._now()
            self.stalls += 1

    def _end_stall(self) -> bool:
        """Stop counting a stall; True when there was one."""
        if self._stalled_since is None:
            return False
        self._stalled_total += max(0.0, self._now() - self._stalled_since)
        self._stalled_since = None
        return True

    def _buffer_frames(self, due: int) -> tuple[int, bool]:
        """Frames ready from the one due (after it, once it is on screen) and whether more come."""
        return self.prefetcher.ahead(due + 1 if self.index == due else due)

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
        return not self.clock.playing and self._stalled_since is None and self.index == due

    # Consuming -------------------------------------------------------------------------
    def _due(self) -> int:
        count = self.frame_count  # first: learning a stream's end sets the clock's duration
        index = max(math.floor(self.clock.time * self.fps + 1e-6), 0)  # 0.1 s at 30 fps is frame 3
        return index if count is None else min(index, count - 1)

    def poll(self) -> Any | None:
        """Real time: the new picture to show for the clock's time, or ``None`` (keep showing
        the current one: nothing new is due, it is not decoded yet, or it failed)."""
        if self.adaptive is not None and not self.adaptive.engaged:
            self.adaptive.engage()  # real-time playback adapts; every-frame export does not
        due = self._due()
        if self.adaptive is not None:
            ready, full = self._buffer_frames(due)
            self.adaptive.report_buffer(ready / self.fps, full=full)
        if self._stalled_since is not None:
            shown = None
            if due != self.index and self.prefetcher.ahead(due)[0]:
                # The frame due has come: show it at once (the first picture of a stream, or
                # the one after a seek), but hold the clock until the buffer is refilled.
                shown = self._accept(due, self.prefetcher.take(due))
            ready, ended = self._buffer_frames(due)
            if ready < self._resume_frames and not ended:
                if due != self.index and not self.prefetcher.covers(due, max_gap=self.prefetcher.capacity):
                    self.prefetcher.seek(due)  # sought while stalled
                return shown
            self._end_stall()  # enough is ready: the clock goes on from where it stopped
            self._waiting = False
            self.clock.play()
            if due == self.index:
                return shown
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
            if self.streamed:
                self._stall()  # hold the clock: a stream's late frames are waited for, not dropped
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
        """Counters for the info panel: the prefetcher's, the state, and the streaming ones
        (``streamed``, ``buffer_s``, ``stalls``, ``stalled_s``; with an adaptive medium also
        ``level`` (None for a one-level medium), ``levels``, ``adaptive``, ``throughput_bps``
        in bits per second, ``level_switches``)."""
        pre = self.prefetcher.stats()
        due = self._due()
        buffer_s = self._buffer_frames(due)[0] / self.fps
        stalled = self._stalled_total
        if self._stalled_since is not None:
            stalled += max(0.0, self._now() - self._stalled_since)
        out = {"state": self.state.value, "index": self.index, "warning": self.warning, **pre,
               "streamed": self.streamed, "buffer_s": round(buffer_s, 3), "buffer_seconds": self.buffer_seconds,
               "stalls": self.stalls, "stalled_s": round(stalled, 3),
               "resume_s": round(self._resume_frames / self.fps, 3)}  # fmt: skip
        if self.adaptive is not None:
            self.adaptive.report_buffer(buffer_s, full=self._buffer_frames(due)[1])
            ad = self.adaptive.stats()
            # a one-level medium (a .gsv file, V^3) only measures: no level to show
            out.update(level=ad["level"] if ad["levels"] > 1 else None, levels=ad["levels"], adaptive=ad["adaptive"],
                       throughput_bps=ad["throughput_bps"], level_switches=ad["level_switches"])  # fmt: skip
        return out

    def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close(timeout=5.0)

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

