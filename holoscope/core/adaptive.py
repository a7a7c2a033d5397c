"""Adaptive quality: which level of a multi-level stream to fetch next (Qt-free, thread-safe).

A reader with several quality levels (a segmented Gaussian video's manifest) asks
:meth:`AdaptiveController.choose` before it fetches each group, and reports every segment read
with :meth:`~AdaptiveController.record` (bytes and seconds); the player reports how many seconds
of decoded frames it holds ahead with :meth:`~AdaptiveController.report_buffer`. The rule is
dash.js's throughput rule with a buffer guard (a "BOLA-lite"):

- throughput: two exponentially weighted moving averages of the measured rate (a fast and a
  slow one); the estimate is the lower of the two, so a drop is seen at once and a rise only
  once it lasts (dash.js does the same);
- start at the lowest level (safe: the first group arrives soonest), unless told otherwise;
- go down, possibly several levels at once, to the best level whose bitrate fits within the
  estimate times ``safety``, and one level down when the buffer is below ``low_buffer_s``;
- go up one level at a time, only when the estimate exceeds the next level's bitrate times
  ``up_margin`` and the buffer holds at least ``healthy_buffer_s`` (or is not reported);
- a ``fixed`` level disables all this (a user's choice, ``HOLOSCOPE_GSV_LEVEL``);
- a controller made with ``engaged=False`` stays at its start level until :meth:`engage`:
  a reader makes it so, and the player engages it on its first real-time poll, so that
  every-frame consumers (render, convert, info) read the best level of a URL, as of the local
  file, and only real-time playback adapts.

Levels are listed best first (index 0 is the best), each with its bitrate in bits per second.
Rates are in bits per second too (``throughput_bps``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

FAST_ALPHA = 0.5  # weight of the newest sample in the fast average (about two samples' memory)
SLOW_ALPHA = 0.15  # ... and in the slow one (about six samples)
MIN_SECONDS = 1e-4  # a read timed faster than this is counted as taking this long
# A sample is counted as at most this many times the best level's bitrate: a read served from
# the cache (or a local disk) would otherwise outweigh every real measurement for a long while,
# and no decision compares against more than 1.25 times the best bitrate anyway.
SAMPLE_CAP = 2.0


class AdaptiveController:
    """Chooses a level per group from measured throughput and the buffer level."""

    def __init__(self, levels: Sequence[tuple[str, float]], *, fixed: int | None = None, start: int | None = None,
                 safety: float = 0.8, up_margin: float = 1.25, low_buffer_s: float = 0.75,
                 healthy_buffer_s: float = 1.5, engaged: bool = True) -> None:  # fmt: skip
        if not levels:
            raise ValueError("an adaptive controller needs at least one level")
        if fixed is not None and not 0 <= fixed < len(levels):
            raise ValueError(f"fixed level {fixed} is not one of 0..{len(levels) - 1}")
        self.names = [str(name) for name, _ in levels]
        self.bitrates = [max(0.0, float(rate)) for _, rate in levels]
        self.fixed = fixed
        self.safety = safety
        self.up_margin = up_margin
        self.low_buffer_s = low_buffer_s
        self.healthy_buffer_s = healthy_buffer_s
        lowest = len(levels) - 1
        self._level = fixed if fixed is not None else (lowest if start is None else min(max(start, 0), lowest))
        self.engaged = engaged
        self._fast: float | None = None
        self._slow: float | None = None
        self._last_bps: float | None = None
        self._buffer: float | None = None
        self._buffer_full = False
        self._bytes = 0
        self.switches = 0
        self.history: list[int] = []  # the level chosen for each group fetched, in order
        self._lock = threading.Lock()

    @property
    def adaptive(self) -> bool:
        return self.fixed is None and len(self.bitrates) > 1

    def engage(self) -> None:
        """Start adapting (real-time playback began). Before any group was fetched, the first
        one is fetched at the lowest level, the safe start."""
        with self._lock:
            if not self.engaged:
                self.engaged = True
                if self.adaptive and not self.history:
                    self._level = len(self.bitrates) - 1

    @property
    def level(self) -> int:
        """The level of the group fetched last (or to be fetched first)."""
        with self._lock:
            return self._level

    @property
    def level_name(self) -> str:
        return self.names[self.level]

    @property
    def throughput_bps(self) -> float | None:
        """The throughput estimate in bits per second (``None`` before the first read)."""
        with self._lock:
            return self._estimate()

    def _estimate(self) -> float | None:
        if self._fast is None or self._slow is None:
            return None
        return min(self._fast, self._slow)

    def record(self, nbytes: int, seconds: float) -> None:
        """One segment read: ``nbytes`` arrived in ``seconds`` (wall time of the read)."""
        if nbytes <= 0:
            return
        bps = nbytes * 8.0 / max(float(seconds), MIN_SECONDS)
        best = max(self.bitrates)
        if best > 0 and self.adaptive:  # a fixed level only measures: the panel shows the real rate
            bps = min(bps, best * SAMPLE_CAP)
        with self._lock:
            self._bytes += nbytes
            self._last_bps = bps
            self._fast = bps if self._fast is None else FAST_ALPHA * bps + (1 - FAST_ALPHA) * self._fast
            self._slow = bps if self._slow is None else SLOW_ALPHA * bps + (1 - SLOW_ALPHA) * self._slow

    def report_buffer(self, seconds: float | None, *, full: bool = False) -> None:
        """The player's buffer: seconds of decoded frames ready ahead of the one due; ``full``:
        the read-ahead holds all it may (its byte budget, or the end of the stream), which
        counts as healthy however few seconds that is (large frames fill the budget first)."""
        with self._lock:
            self._buffer = None if seconds is None else max(0.0, float(seconds))
            self._buffer_full = bool(full)

    def choose(self) -> int:
        """The level for the next group (see the module doc); remembered as :attr:`level`."""
        with self._lock:
            level = self._decide()
            if level != self._level:
                self.switches += 1
            self._level = level
            self.history.append(level)
            return level

    def _decide(self) -> int:
        current = self._level
        if not self.adaptive or not self.engaged:
            return current
        estimate = self._estimate()
        if estimate is None:
            return current  # nothing measured yet: stay at the start level
        lowest = len(self.bitrates) - 1
        fits = next((i for i, rate in enumerate(self.bitrates) if rate <= estimate * self.safety), lowest)
        buffer = None if self._buffer_full else self._buffer  # a full read-ahead is healthy
        if fits > current:  # the link cannot carry this level: down to one it can
            return fits
        if buffer is not None and buffer < self.low_buffer_s:
            return min(current + 1, lowest)  # draining: one step down, whatever the estimate
        if current > 0 and estimate >= self.bitrates[current - 1] * self.up_margin:
            if buffer is None or buffer >= self.healthy_buffer_s:
                return current - 1  # one step up at a time
        return current

    def stats(self) -> dict[str, Any]:
        """For the info panel: the level (name and index), the throughput estimate and the
        last buffer level the player reported."""
        with self._lock:
            estimate = self._estimate()
            return {
                "level": self.names[self._level],
                "level_index": self._level,
                "levels": len(self.names),
                "adaptive": self.adaptive and self.engaged,
                "throughput_bps": None if estimate is None else round(estimate),
                "buffer_s": None if self._buffer is None else round(self._buffer, 3),
                "level_switches": self.switches,
                "bytes_fetched": self._bytes,
            }
