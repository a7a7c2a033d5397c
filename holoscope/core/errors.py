"""One root exception type. Each subclass also inherits the matching builtin, so callers
that already catch ``ValueError`` or ``FileNotFoundError`` keep working (as PyAV does)."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | Path | bytes | None) -> str:
    """A file name safe to print on any terminal: undecodable bytes become ``\\xNN`` escapes."""
    if path is None:
        return ""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    # Surrogate escapes (non-UTF-8 bytes in the name) and control characters would either
    # crash the print (UnicodeEncodeError) or garble the terminal.
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif not ch.isprintable():
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


class HoloscopeError(Exception):
    """Root of every error holoscope raises on purpose. Carries the file it concerns, if any."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = display_path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class SourceNotFound(HoloscopeError, FileNotFoundError):
    """The input file does not exist."""


class NotAFile(HoloscopeError, IsADirectoryError):
    """The input is a directory (or another non-file) where a file was expected."""


class FormatNotRecognized(HoloscopeError, ValueError):
    """No reader recognises the input, or a forced format name is unknown."""


class CorruptStream(HoloscopeError, ValueError):
    """The file claims to be a known format but its contents are damaged or truncated."""


class EmptyMedia(HoloscopeError, ValueError):
    """The file is valid but holds nothing to show (for example zero splats)."""


class InvalidArgument(HoloscopeError, ValueError):
    """A user-supplied option is malformed (size, colour, codec, camera path ...)."""


class OutputError(HoloscopeError, OSError):
    """The output cannot be written (unwritable folder, unsupported container ...)."""


class DecoderUnavailable(HoloscopeError, ImportError):
    """An optional backend (torch, CUDA, an OpenGL context, a codec) is missing."""


class Cancelled(HoloscopeError):
    """A long job was cancelled by the user; partial output has been removed."""


class SourceUnreadable(HoloscopeError, PermissionError):
    """The input exists but cannot be read (permissions, a name too long, a symlink loop ...)."""


class BudgetExceeded(HoloscopeError, MemoryError):
    """Decoding the input would need more memory than the decode budget allows."""


class NetworkError(HoloscopeError, ConnectionError):
    """A server could not be reached or kept failing (timeouts, resets, 5xx) after the retries."""


class UnsafeLocation(HoloscopeError, PermissionError):
    """A URL holoscope will not follow without the user's consent: another scheme or host named
    by a manifest, an https → http redirect, a scheme other than http(s)."""
