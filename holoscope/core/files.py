"""Opening inputs safely: regular files only, never blocking, every failure one clear error.

Every reader opens its input (and every member file of a folder format) through
:func:`open_regular`. It opens with ``O_NONBLOCK`` so a FIFO or a device cannot hang the
process in ``open()``, then checks with ``fstat`` on the open descriptor (no race with a rename)
that it got a regular file. :func:`os_error` maps ``OSError`` to the holoscope error that says
what went wrong (missing, a directory, permission, a name too long, a symlink loop ...).
:func:`display_path` renders any file name printable, whatever its bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from holoscope.core.errors import (
    CorruptStream,
    HoloscopeError,
    NotAFile,
    SourceNotFound,
    SourceUnreadable,
)


def os_error(exc: OSError, path: str | Path | None, *, action: str = "cannot read") -> HoloscopeError:
    """The holoscope error for an ``OSError`` raised while opening or reading ``path``."""
    code = exc.errno
    if code == errno.ENOENT:
        return SourceNotFound("no such file", path=path)
    if code == errno.EISDIR:
        return NotAFile("is a directory, not a file", path=path)
    if code == errno.ENOTDIR:
        return SourceNotFound("a folder in the path is not a folder", path=path)
    if code in (errno.EACCES, errno.EPERM):
        return SourceUnreadable(f"{action}: permission denied", path=path)
    if code == errno.ENAMETOOLONG:
        return SourceUnreadable(f"{action}: file name too long", path=path)
    if code == errno.ELOOP:
        return SourceUnreadable(f"{action}: too many levels of symbolic links (a symlink loop)", path=path)
    if code in (errno.ENXIO, errno.ENODEV, errno.EAGAIN):
        return NotAFile("is not a regular file (a FIFO, socket or device)", path=path)
    if code == errno.EIO:
        return CorruptStream(f"{action}: input/output error", path=path)
    return SourceUnreadable(f"{action}: {exc.strerror or exc}", path=path)


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_regular(path: str | Path) -> os.stat_result:
    """``stat`` a path that must be a regular file (symlinks followed), or raise."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise os_error(exc, path) from exc
    except ValueError as exc:  # an embedded NUL byte
        raise SourceNotFound(f"invalid file name ({exc})", path=path) from exc
    if stat.S_ISDIR(st.st_mode):
        raise NotAFile("is a directory, not a file", path=path)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"is {_kind_of(st.st_mode)}, not a regular file", path=path)
    return st


def open_regular(path: str | Path) -> BinaryIO:
    """Open a regular file for binary reading without ever blocking on a FIFO or device."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise os_error(exc, path) from exc
    except ValueError as exc:
        raise SourceNotFound(f"invalid file name ({exc})", path=path) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile(
                "is a directory, not a file" if stat.S_ISDIR(st.st_mode)
                else f"is {_kind_of(st.st_mode)}, not a regular file",
                path=path,
            )  # fmt: skip
        if hasattr(os, "O_NONBLOCK"):  # regular files never block; restore normal semantics
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | Path, limit: int, *, what: str = "file") -> bytes:
    """The whole of a small regular file, refusing one larger than ``limit`` bytes.

    Reads at most ``limit + 1`` bytes, so a size that lies (a /proc file reports 0) or a file
    that grows cannot make it read more.
    """
    parts, size = [], 0
    with open_regular(path) as fh:
        try:
            while size <= limit:  # in pieces: read(n) allocates n bytes up front
                piece = fh.read(min(16 << 20, limit + 1 - size))
                if not piece:
                    break
                parts.append(piece)
                size += len(piece)
        except OSError as exc:
            raise os_error(exc, path) from exc
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) > limit:
        raise CorruptStream(f"{what} is larger than the {limit:,} bytes allowed", path=path)
    return data
