"""The info panel (toggle with I): what is shown, how fast, and through which decode path."""

from __future__ import annotations

import os
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
