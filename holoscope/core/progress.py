"""A terminal progress bar with ETA; silent when the stream is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class TerminalProgress:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.label, self.width = max(1, total), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._last_draw = 0.0

    def __call__(self, done: int, total: int | None = None, note: str = "") -> None:
        """``done`` of ``total`` steps; ``note`` (e.g. the loss) is shown after the ETA."""
        if total is not None:
            self.total = max(1, total)
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._last_draw < 0.1:
            return  # redraw at most 10 times a second
        self._last_draw = now
        elapsed = now - self.start
        frac = min(1.0, done / self.total)
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        self.stream.write(f"\r{self.label}[{bar}] {done}/{self.total} {_clock(elapsed)} ETA {_clock(eta)} {note}")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
