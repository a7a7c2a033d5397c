"""The info panel (toggle with I): what is shown, how fast, and through which decode path."""

from __future__ import annotations

import os
from html import escape
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


def human_rate(bits_per_second: float) -> str:
    for unit, size in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits_per_second >= size:
            return f"{bits_per_second / size:.1f} {unit}"
    return f"{bits_per_second:.0f} b/s"


def network_stats() -> dict[str, Any] | None:
    """The HTTP session's totals (``core/http.py``), or None where there is no network layer."""
    try:
        from holoscope.core.http import default_session
    except ImportError:
        return None
    try:
        return dict(default_session().stats())
    except Exception:  # the panel must never fail because a counter could not be read
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stream_rows(url: str | None, download: tuple[int, int | None] | None, player: dict[str, Any], *,
                network: bool = True) -> dict[str, str]:  # fmt: skip
    """Rows for streamed media: the source URL, the download in progress, the network totals,
    and the player's ``level``, ``throughput_bps``, ``buffer_s`` and ``stalled_s`` for those of
    them it reports (a player without them, or with ``None``, gets no row)."""
    rows: dict[str, str] = {}
    if url:
        rows["Source"] = url
    if download is not None:
        got, total = download
        rows["Downloaded"] = f"{human_bytes(got)} of {human_bytes(total)}" if total else human_bytes(got)
    net = network_stats() if network else None
    if net:
        parts = [f"{human_bytes(net.get('bytes_downloaded') or 0)} in {net.get('requests') or 0} requests"]
        if net.get("retries"):
            parts.append(f"{net['retries']} retries")
        if net.get("cache_hits"):
            parts.append(f"{net['cache_hits']} cache hits")
        rows["Network"] = ", ".join(parts)
    rate = _number(player.get("throughput_bps"))
    if rate is None and net:
        rate = _number(net.get("throughput_bps"))
    if rate is not None:
        rows["Throughput"] = human_rate(rate)
    buffered = _number(player.get("buffer_s"))
    if buffered is not None:
        rows["Buffer"] = f"{buffered:.1f} s ahead"
    level, levels = player.get("level"), player.get("levels")
    if level is not None and (not isinstance(levels, (int, list, tuple)) or _count(levels) > 1):
        rows["Quality level"] = f"{level}" + (f" of {_count(levels)}" if isinstance(levels, (int, list, tuple)) else "")
    stalled = _number(player.get("stalled_s"))
    if stalled is not None:
        rows["Stalled"] = f"{stalled:.1f} s in all"
    return rows


def _count(levels: Any) -> int:
    return levels if isinstance(levels, int) else len(levels)


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
        html = "".join(f"<tr><td><b>{escape(k)}</b></td><td>&nbsp;{escape(v)}</td></tr>" for k, v in rows.items())
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
