"""What a user names, opened: a file or folder format through the registry, or a splat sequence
(a folder of frame files, a glob pattern, a list file). The CLI and the app both open through
:func:`open_input`, so a dropped folder and ``holoscope render frames/`` behave alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from holoscope.codecs.sequence import is_list_file, is_sequence_folder, looks_like_glob, open_sequence
from holoscope.core.media import Media
from holoscope.core.registry import open_media
from holoscope.core.sources import is_url, source_for


def is_sequence_input(text: str | os.PathLike) -> bool:
    """A folder of frames (not a folder format such as an unbundled SOG), a glob pattern that
    is not itself an existing name, or a list file (``.txt``, ``.lst``, ``.list``)."""
    if is_url(text):
        return False  # a URL names one file or folder format; sequences are local
    path = Path(os.fspath(text))
    try:
        if path.is_dir():
            return is_sequence_folder(path)
        if not path.exists():
            return looks_like_glob(os.fspath(text))
    except (OSError, ValueError):
        return False  # the registry reports the name's problem properly
    return is_list_file(path)


def open_input(text: str | os.PathLike, forced: str | None = None, *, fps: float | None = None,
               **options: Any) -> Media:  # fmt: skip
    """Open whatever ``text`` names; ``forced`` picks a file format, ``fps`` a sequence's rate,
    ``options`` go to the formats that declare them (``image_size`` for hash-grid images)."""
    if forced is None and is_sequence_input(text):
        return open_sequence(text, fps=fps)
    if is_url(text):
        return open_media(source_for(text), forced, **options)  # type: ignore[arg-type]
    return open_media(Path(os.fspath(text)), forced, **options)
