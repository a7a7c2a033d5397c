"""Per-user settings: recent files and URLs, and the up axis remembered per file (QSettings).

A URL is kept as typed (never resolved as a local path): it is its own key."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings

from holoscope.core.camera import UP_AXES
from holoscope.core.sources import is_url

MAX_RECENT = 10


def settings() -> QSettings:
    return QSettings("holoscope", "holoscope")


def _strings(key: str) -> list[str]:
    value = settings().value(key, [])
    if isinstance(value, str):  # QSettings returns a bare string for a one-item list
        value = [value]
    return [v for v in (value or []) if isinstance(v, str)]


def _push(key: str, item: str) -> list[str]:
    items = ([item] + [p for p in _strings(key) if p != item])[:MAX_RECENT]
    settings().setValue(key, items)
    return items


def _key_of(path: str) -> str:
    # a URL is remembered without its user and password: QSettings is a plain-text file
    return _without_credentials(path) if is_url(path) else str(Path(path).resolve())


def _without_credentials(url: str) -> str:
    from holoscope.core.http import display_url

    return display_url(url.strip())


def recent_files() -> list[str]:
    return _strings("recent")


def add_recent(path: str) -> list[str]:
    """Remember an opened file, folder or URL (a URL also goes to :func:`recent_urls`)."""
    if is_url(path):
        add_recent_url(path)
    return _push("recent", _key_of(path))


def recent_urls() -> list[str]:
    """The URLs opened last, newest first (what File > Open URL offers)."""
    return [u for u in _strings("recent_urls") if is_url(u)]


def add_recent_url(url: str) -> list[str]:
    return _push("recent_urls", _without_credentials(url))


def clear_recent() -> None:
    settings().remove("recent")


def _file_key(path: str) -> str:
    return hashlib.sha1(_key_of(path).encode()).hexdigest()[:16]


def remembered_up(path: str) -> str | None:
    """The up axis the user chose for this file, if any (a value that is not an up axis, from
    a damaged or foreign settings file, counts as none: the file's default applies)."""
    value = settings().value(f"up/{_file_key(path)}")
    return value if isinstance(value, str) and value in UP_AXES else None


def remember_up(path: str, up: str) -> None:
    settings().setValue(f"up/{_file_key(path)}", up)
