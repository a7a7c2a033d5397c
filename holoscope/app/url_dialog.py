"""File > Open URL: a small dialog with the recent URLs, and what a drop from a browser holds.

Only http and https URLs are accepted (``core.sources.is_url``); the dialog says so instead of
accepting anything else.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from holoscope.app import recent
from holoscope.core.sources import is_url


class OpenUrlDialog(QDialog):
    """An editable list of the recent URLs; ``url()`` is the text once accepted."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open URL")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("A file or folder on a web server (http or https):", self))
        self.box = QComboBox(self)
        self.box.setEditable(True)
        self.box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.box.addItems(recent.recent_urls())
        self.box.setEditText(self.box.itemText(0) if self.box.count() else "https://")
        self.box.lineEdit().selectAll()
        layout.addWidget(self.box)
        self.hint = QLabel("", self)
        self.hint.setStyleSheet("color: #b33")
        layout.addWidget(self.hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def url(self) -> str:
        return self.box.currentText().strip()

    def accept(self) -> None:
        if not is_url(self.url()):
            self.hint.setText("Only http:// and https:// URLs can be opened.")
            return
        super().accept()


def dropped_urls(mime: QMimeData) -> list[str]:
    """The http(s) URLs a drop carries: its URL list (text/uri-list), else plain text holding
    one URL (some browsers drag a link as text only)."""
    # fully encoded: a decoded %2F or %23 would change which file the URL names
    found = [url.toString(QUrl.ComponentFormattingOption.FullyEncoded) for url in mime.urls()
             if url.scheme().lower() in ("http", "https")]
    if found:
        return found
    if mime.hasText():
        lines = [line.strip() for line in mime.text().splitlines() if line.strip() and not line.startswith("#")]
        if len(lines) == 1 and is_url(lines[0]) and " " not in lines[0]:
            return lines
    return []
