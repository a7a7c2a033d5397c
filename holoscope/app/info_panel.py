"""The info panel (toggle with I): what is shown, how fast, and through which decode path."""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel


def process_memory_bytes() -> int:
    """Resident set size of this process (Linux /proc; falls back to the peak RSS)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class InfoPanel(QDockWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__("Info", parent)
        self.setObjectName("info-panel")
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setMargin(8)
        self.setWidget(self.label)
        self.rows: dict[str, str] = {}

    def show_rows(self, rows: dict[str, str]) -> None:
        self.rows = rows
        html = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{v}</td></tr>" for k, v in rows.items())
        self.label.setText(f"<table>{html}</table>")


class RenderRate:
    """The honest render rate: paints per second while frames are being painted, else idle.

    The viewport repaints only when something changed (a camera move, a new video frame, a
    finished sort), so a count of paints between two info refreshes reads ``0 fps`` for a still
    scene however fast it renders, and a refresh right after another one (opening a file,
    toggling the panel) measures over a few milliseconds. Here every paint is time-stamped:
    with paints in the last ``IDLE_AFTER`` seconds the rate is the number of paints in the last
    ``WINDOW`` seconds over the time they span up to now; otherwise the view is idle and the
    last paint's cost is shown instead. Qt-free; times are in seconds, paint times in ms.
    """

    WINDOW = 1.0
    IDLE_AFTER = 0.5

    def __init__(self) -> None:
        self._paints: deque[tuple[float, float]] = deque()  # (time, paint milliseconds)
        self.last_ms: float | None = None

    def add(self, now: float, paint_ms: float) -> None:
        self._paints.append((now, paint_ms))
        self.last_ms = paint_ms
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._paints and self._paints[0][0] < now - self.WINDOW:
            self._paints.popleft()

    def idle(self, now: float) -> bool:
        return not self._paints or now - self._paints[-1][0] > self.IDLE_AFTER

    def fps(self, now: float) -> float | None:
        """Paints per second over the last window; ``None`` when idle or after a single paint."""
        self._trim(now)
        if self.idle(now) or len(self._paints) < 2:
            return None
        span = now - self._paints[0][0]
        return (len(self._paints) - 1) / span if span > 0 else None

    def paint_ms(self, now: float) -> float | None:
        """Mean paint time over the window, else the last paint's."""
        self._trim(now)
        if self._paints:
            return sum(ms for _, ms in self._paints) / len(self._paints)
        return self.last_ms

    def describe(self, now: float) -> str:
        ms = self.paint_ms(now)
        if ms is None:
            return "no frame painted yet"
        fps = self.fps(now)
        if fps is not None:
            return f"{fps:.0f} fps, {ms:.1f} ms/frame"
        if self.idle(now):
            return f"{ms:.1f} ms/frame (idle)"
        return f"{ms:.1f} ms/frame"
