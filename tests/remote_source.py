"""A Source that serves a local folder as a web server would: through ``read_range`` only
(``local_path`` is None, ``relative`` resolves like a URL), so readers take their remote code
path without a network. The :class:`Link` they share counts every read, can fail a file (as a
404 or a dropped connection does) and can throttle to a bandwidth the test changes as it goes.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from holoscope.core.errors import CorruptStream, NotAFile, SourceNotFound
from holoscope.core.sources import Source

BASE = "http://test.invalid/"


class Link:
    """The served folder and what happens on the way: reads logged as (name, offset, length),
    ``fail[name]`` an exception to raise for that file, ``rate`` bytes per second (None: as fast
    as the disk)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.reads: list[tuple[str, int, int]] = []
        self.fail: dict[str, BaseException] = {}
        self.rate: float | None = None
        self.lock = threading.Lock()
        self.active = 0  # reads in progress now
        self.peak = 0  # the most reads in progress at once

    def source(self, name: str = "") -> "RemoteSource":
        return RemoteSource(self, name)

    def names_read(self) -> list[str]:
        with self.lock:
            return [name for name, _, _ in self.reads]


class RemoteSource(Source):
    local_path = None

    def __init__(self, link: Link, name: str) -> None:
        self.link = link
        self.path_name = name  # relative to the served folder, '/' separated; '' or '.../' a folder
        self.uri = self.name = BASE + name
        self.is_folder = name == "" or name.endswith("/")

    def _file(self) -> Path:
        return self.link.root.joinpath(*[p for p in self.path_name.split("/") if p])

    @property
    def size(self) -> int | None:
        path = self._file()
        return path.stat().st_size if not self.is_folder and path.is_file() else None

    def read_range(self, offset: int, length: int) -> bytes:
        if self.is_folder:
            raise NotAFile("is a directory, not a file", path=self.name)
        failure = self.link.fail.get(self.path_name)
        if failure is not None:
            raise failure
        path = self._file()
        if not path.is_file():
            raise SourceNotFound("404 Not Found", path=self.name)
        link = self.link
        with link.lock:
            link.reads.append((self.path_name, offset, length))
            link.active += 1
            link.peak = max(link.peak, link.active)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read(length)
            rate = link.rate
            if rate:
                time.sleep(len(data) / rate)
            return data
        finally:
            with link.lock:
                link.active -= 1

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.read_range(0, self.size or 0))

    def relative(self, name: str) -> "RemoteSource":
        url = urljoin(self.uri, name)
        if not url.startswith(BASE):
            raise CorruptStream(f"{name!r} leaves the server", path=self.name)
        rest = urlsplit(url).path[len(urlsplit(BASE).path):]
        if rest and not rest.endswith("/") and self.link.root.joinpath(*rest.split("/")).is_dir():
            rest += "/"
        return RemoteSource(self.link, rest)

    def exists(self) -> bool:
        path = self._file()
        return path.is_dir() if self.is_folder else path.is_file()
