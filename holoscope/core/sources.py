"""Sources: where a reader's bytes come from, so no opener depends on a local ``Path``.

A :class:`Source` has a ``uri``, a ``name`` for messages (every holoscope error names it), a
``size`` when known, ``read_range(offset, length)``, ``head(n)`` and ``open()``: a seekable,
readable binary file object that ``zipfile``, PyAV (``av.open`` takes file objects) and the
numpy readers use. ``local_path`` is set when the bytes are a real local file, so a reader may
keep its fastest path (``np.fromfile`` on the descriptor, FFmpeg opening the file itself).

- :class:`FileSource`: a local regular file, opened through :func:`holoscope.core.files.open_regular`
  (non-blocking, ``fstat`` on the descriptor: a FIFO or device is refused, never waited on).
- :class:`BytesSource`: bytes in memory.
- :class:`FolderSource`: a local folder (unbundled SOG, splat sequences): ``member(name)`` and
  ``names()``.

Formats made of several files (a manifest and its segments, a V^3 folder, an unbundled SOG, a
streamed-LOD scene) reach the other files through :meth:`Source.relative`: a name resolved
against the source as a URL reference is (a file: against its folder; a folder: inside it), so
the same reader works on a local folder and on a web server (``holoscope.core.http``).
:func:`source_for` turns what callers hold (a ``Source``, a ``str``/``Path``, ``bytes``) into one.
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path
from collections.abc import Iterator
from typing import BinaryIO

from holoscope.core.errors import CorruptStream, NotAFile, SourceNotFound, UnsafeLocation
from holoscope.core.files import check_regular, open_regular, os_error


READ_PIECE = 16 << 20  # bytes per read of a whole source


class Source:
    """Base of every source. Subclasses implement ``open`` (and may speed up ``read_range``)."""

    uri: str = ""
    name: str = ""
    #: the local file or folder holding the bytes, or None (memory, network)
    local_path: Path | None = None
    is_folder: bool = False

    @property
    def size(self) -> int | None:
        return None

    @property
    def label(self) -> str | Path:
        """What error messages name: the local path when there is one, else ``name``."""
        return self.local_path if self.local_path is not None else self.name

    def open(self) -> BinaryIO:
        raise NotImplementedError

    def read_range(self, offset: int, length: int) -> bytes:
        """At most ``length`` bytes from ``offset`` (fewer at the end of the source)."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        with self.open() as fh:
            try:
                fh.seek(offset)
                return fh.read(length)
            except OSError as exc:
                raise os_error(exc, self.label) from exc

    def head(self, n: int) -> bytes:
        return self.read_range(0, n)

    def iter_chunks(self, piece: int = 1 << 20, start: int = 0) -> Iterator[bytes]:
        """The bytes from ``start`` to the end, in order, as they become available (a download
        yields each piece as it arrives): what progressive readers consume."""
        offset = start
        while True:
            data = self.read_range(offset, piece)
            if not data:
                return
            yield data
            offset += len(data)

    def relative(self, name: str) -> Source:
        """The source ``name`` names relative to this one, as a URL reference resolves: against
        a file's folder, or inside a folder. Only sources that live somewhere (files, folders,
        URLs) have neighbours."""
        raise NotAFile(f"has no neighbouring files to read {name!r} from", path=self.label)

    def exists(self) -> bool:
        """Whether there is something to read here (a file, a folder, a URL that answers)."""
        return True

    def at_hand(self, offset: int, length: int) -> bool:
        """Whether those bytes can be read without the network (a local file, memory, parts of
        a download already cached): a read of them measures no link."""
        return self.local_path is not None

    def read_limited(self, limit: int, *, what: str = "file") -> bytes:
        """The whole source, refusing one larger than ``limit`` bytes (the size is not trusted:
        at most ``limit + 1`` bytes are read)."""
        # In pieces: read(n) allocates n bytes up front, and a limit of gigabytes must not.
        parts, size = [], 0
        while size <= limit:
            piece = self.read_range(size, min(READ_PIECE, limit + 1 - size))
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
        if size > limit:
            raise CorruptStream(f"{what} is larger than the {limit:,} bytes allowed", path=self.label)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"


class FileSource(Source):
    """A local regular file. Nothing is opened until a read; every failure is a holoscope error."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.local_path = Path(path)
        self.name = os.fspath(self.local_path)
        try:
            self.uri = self.local_path.absolute().as_uri()
        except ValueError:  # an undecodable or odd name: keep a readable uri
            self.uri = "file:" + self.name

    @property
    def size(self) -> int | None:
        try:
            st = os.stat(self.local_path)  # type: ignore[arg-type]
        except (OSError, ValueError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def check(self) -> os.stat_result:
        """``stat`` the file, raising the holoscope error if it is not a readable regular file."""
        return check_regular(self.local_path)  # type: ignore[arg-type]

    def open(self) -> BinaryIO:
        return open_regular(self.local_path)  # type: ignore[arg-type]

    def relative(self, name: str) -> Source:
        return _local_relative(self.local_path.parent, name)  # type: ignore[union-attr]

    def exists(self) -> bool:
        return self.size is not None


class BytesSource(Source):
    """Bytes held in memory (a download, an archive member, a test)."""

    def __init__(self, data: bytes | bytearray | memoryview, name: str = "<memory>") -> None:
        self._data = bytes(data)
        self.name = name
        self.uri = f"memory:{name}"

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def data(self) -> bytes:
        return self._data

    def open(self) -> BinaryIO:
        return io.BytesIO(self._data)

    def read_range(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        return self._data[offset : offset + length]

    def at_hand(self, offset: int, length: int) -> bool:
        return True


class FolderSource(Source):
    """A local folder: a folder format (unbundled SOG) or a folder of sequence frames."""

    is_folder = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.local_path = Path(path)
        self.name = os.fspath(self.local_path)
        try:
            self.uri = self.local_path.absolute().as_uri() + "/"
        except ValueError:
            self.uri = "file:" + self.name + "/"

    def open(self) -> BinaryIO:
        raise NotAFile("is a directory, not a file", path=self.label)

    def read_range(self, offset: int, length: int) -> bytes:
        raise NotAFile("is a directory, not a file", path=self.label)

    def member(self, name: str) -> FileSource:
        """The file ``name`` inside the folder (opened, and so checked, on first read)."""
        return FileSource(self.local_path / name)  # type: ignore[operator]

    def relative(self, name: str) -> Source:
        return _local_relative(self.local_path, name)  # type: ignore[arg-type]

    def exists(self) -> bool:
        try:
            return self.local_path.is_dir()  # type: ignore[union-attr]
        except (OSError, ValueError):
            return False

    def has(self, name: str) -> bool:
        try:
            return (self.local_path / name).is_file()  # type: ignore[operator]
        except (OSError, ValueError):
            return False

    def names(self) -> list[str]:
        """The names of the entries in the folder (unsorted, as the file system lists them)."""
        try:
            return os.listdir(self.local_path)  # type: ignore[arg-type]
        except OSError as exc:
            raise os_error(exc, self.label, action="cannot list the folder") from exc


def _local_relative(folder: Path, name: str) -> Source:
    """``name`` (a relative reference with '/' separators) inside the local ``folder``: a folder
    gives a FolderSource, anything else a FileSource. An absolute name is refused: a manifest
    names its files relative to itself."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise CorruptStream(f"{name!r} is not a relative file name", path=folder)
    path = folder.joinpath(*[part for part in name.split("/") if part not in ("", ".")])
    try:
        if path.is_dir():
            return FolderSource(path)
    except (OSError, ValueError):
        pass
    return FileSource(path)


def is_url(text: object) -> bool:
    """Whether ``text`` is an http(s) URL: what the CLI, the app and :func:`source_for` treat
    as remote (checked without importing the network layer)."""
    return isinstance(text, str) and text[:8].lower().startswith(("http://", "https://"))


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def resolve_name(text: str) -> str:
    """What a user typed, made a path or an http(s) URL: ``file://`` URLs become local paths,
    http(s) URLs stay, any other scheme (ftp://, s3://, ...) is refused by name rather than
    taken for a local file called ``ftp:/...``."""
    m = _SCHEME.match(text) if isinstance(text, str) else None
    if m is None or is_url(text):
        return text
    if m.group(1).lower() == "file":
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise UnsafeLocation(f"a file:// URL on another machine ({parts.netloc}) cannot be opened", path=text)
        return unquote(parts.path)
    raise UnsafeLocation(f"only http and https URLs are opened, not {m.group(1)}://", path=text)


def source_for(value: Source | str | os.PathLike[str] | bytes | bytearray | memoryview) -> Source:
    """A :class:`Source` for what a caller holds: a Source (returned as is), an http(s) URL (an
    :class:`~holoscope.core.http.HttpSource`), a local path (a folder gives a
    :class:`FolderSource`, anything else a :class:`FileSource` whose reads raise the right
    error) or bytes (a :class:`BytesSource`)."""
    if isinstance(value, Source):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BytesSource(value)
    if is_url(value):
        from holoscope.core.http import HttpSource  # the network layer only when a URL is opened

        return HttpSource(value)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        try:
            if path.is_dir():
                return FolderSource(path)
        except OSError as exc:  # a name too long, a symlink loop, a folder we may not enter
            raise os_error(exc, path) from exc
        except ValueError as exc:  # an embedded NUL byte
            raise SourceNotFound(f"invalid file name ({exc})", path=path) from exc
        return FileSource(path)
    raise TypeError(f"cannot read from {type(value).__name__!r}: give a path, bytes or a Source")


def read_array_into(fh: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``fh``; returns the bytes read (fewer at the end of the stream)."""
    view = buffer.cast("B")
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:])  # type: ignore[attr-defined]
        if not n:
            break
        done += n
    return done
