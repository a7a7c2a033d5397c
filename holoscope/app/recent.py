"""Per-user settings: recent files and the up axis remembered per file (QSettings)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings

from holoscope.core.camera import UP_AXES

MAX_RECENT = 10


def settings() -> QSettings:
    return QSettings("holoscope", "holoscope")


def recent_files() -> list[str]:
    value = settings().value("recent", [])
    if isinstance(value, str):  # QSettings returns a bare string for a one-item list
        value = [value]
    return [v for v in (value or []) if isinstance(v, str)]


def add_recent(path: str) -> list[str]:
    path = str(Path(path).resolve())
    items = [path] + [p for p in recent_files() if p != path]
    items = items[:MAX_RECENT]
    settings().setValue("recent", items)
    return items


def clear_recent() -> None:
    settings().remove("recent")


def _file_key(path: str) -> str:
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]


def remembered_up(path: str) -> str | None:
    """The up axis the user chose for this file, if any (a value that is not an up axis, from
    a damaged or foreign settings file, counts as none: the file's default applies)."""
    value = settings().value(f"up/{_file_key(path)}")
    return value if isinstance(value, str) and value in UP_AXES else None


def remember_up(path: str, up: str) -> None:
    settings().setValue(f"up/{_file_key(path)}", up)
