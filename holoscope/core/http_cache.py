"""The on-disk cache of downloaded parts: replays and seeks back cost no network.

Parts are fixed-size blocks of a resource (:data:`BLOCK` bytes; the last one shorter), stored as
one file each under ``<root>/<key[:2]>/<key>/<block>``, where ``key`` hashes the final URL and
the resource's validator (its ETag, else its Last-Modified): a file changed on the server has a
new validator, so its old parts are never served for it. A resource without a validator is not
cached on disk (nothing could tell a stale copy from a fresh one).

``<root>/meta/<hash of the URL>.json`` remembers the last validator and size seen for a URL, so a
later run can ask the server "still this version?" (a conditional request answered ``304`` with
no body) instead of downloading again.

The size is bounded (:data:`DEFAULT_LIMIT`, ``$HOLOSCOPE_CACHE_BYTES``): when a write takes the
total over it, the least recently used parts (oldest modification time; a hit touches the file)
are removed first. Writes are atomic (a temporary file renamed into place), so a crash never
leaves a half part, and several holoscope processes may share the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

BLOCK = 256 << 10  # bytes per cached part (and per range request of a random read)
DEFAULT_LIMIT = 2 << 30
META = "meta"


def default_root() -> Path:
    """``$HOLOSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/holoscope/http`` (``~/.cache/...``)."""
    given = os.environ.get("HOLOSCOPE_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "holoscope" / "http"


def default_limit() -> int:
    """``$HOLOSCOPE_CACHE_BYTES`` (2G, 512M or a number of bytes, as ``--max-memory``), else
    :data:`DEFAULT_LIMIT`; a value that does not parse is said once and the default kept."""
    given = os.environ.get("HOLOSCOPE_CACHE_BYTES")
    if not given:
        return DEFAULT_LIMIT
    from holoscope.core.budget import parse_bytes
    from holoscope.core.errors import InvalidArgument

    try:
        return parse_bytes(given, minimum=0)
    except InvalidArgument:
        logging.getLogger("holoscope").warning("HOLOSCOPE_CACHE_BYTES=%r is not a size (like 2G or 512M); "
                                               "the cache keeps %s bytes", given, f"{DEFAULT_LIMIT:,}")  # fmt: skip
        return DEFAULT_LIMIT


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def resource_key(url: str, validator: str) -> str:
    return _digest(url + "\0" + validator)


class PartCache:
    """Blocks of resources on disk within a byte limit, least recently used evicted first."""

    def __init__(self, root: Path | str | None = None, limit: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.limit = default_limit() if limit is None else int(limit)
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes on disk, counted on first write
        self.hits = 0
        self.hit_bytes = 0

    # Blocks -----------------------------------------------------------------------------
    def _block_path(self, key: str, block: int) -> Path:
        return self.root / key[:2] / key / str(block)

    def get(self, key: str, block: int) -> bytes | None:
        path = self._block_path(key, block)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            os.utime(path)  # recently used: evicted last
        except OSError:
            return None
        with self._lock:
            self.hits += 1
            self.hit_bytes += len(data)
        return data

    def has(self, key: str, block: int) -> bool:
        return self._block_path(key, block).is_file()

    def put(self, key: str, block: int, data: bytes) -> None:
        if self.limit <= 0 or len(data) > self.limit:
            return
        path = self._block_path(key, block)
        try:
            _atomic_write(path, data)
        except OSError:
            return  # a full or read-only disk costs a re-download, never the playback
        with self._lock:
            total = self._count() + len(data)
            self._total = total
            over = total > self.limit
        if over:
            self.evict()

    # Per-URL validators -----------------------------------------------------------------
    def _meta_path(self, url: str) -> Path:
        return self.root / META / (_digest(url) + ".json")

    def remembered(self, url: str) -> dict[str, Any] | None:
        """The validator and size last seen for ``url`` (None if never, or unreadable)."""
        try:
            with open(self._meta_path(url), "rb") as fh:
                data = json.loads(fh.read(1 << 16))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("url") == url else None

    def remember(self, url: str, record: dict[str, Any]) -> None:
        if self.limit <= 0:
            return
        try:
            _atomic_write(self._meta_path(url), json.dumps({**record, "url": url}).encode())
        except (OSError, TypeError, ValueError):
            pass

    # Size -------------------------------------------------------------------------------
    def _parts(self) -> list[tuple[float, int, Path]]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if _is_shard(d)]  # only the cache's own folders
                continue
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                found.append((st.st_mtime, st.st_size, path))
        return found

    def _count(self) -> int:
        if self._total is None:
            self._total = sum(size for _, size, _ in self._parts())
        return self._total

    def size(self) -> int:
        """Bytes of parts on disk now."""
        return sum(size for _, size, _ in self._parts())

    def evict(self, target: int | None = None) -> int:
        """Remove least recently used parts until the total is at most ``target`` (default: 90 %
        of the limit, so a busy download does not evict on every block). Returns bytes freed."""
        goal = int(self.limit * 0.9) if target is None else int(target)
        with self._lock:
            parts = sorted(self._parts(), key=lambda p: p[0])
            total = sum(size for _, size, _ in parts)
            freed = 0
            for _, size, path in parts:
                if total - freed <= goal:
                    break
                try:
                    path.unlink()
                    freed += size
                except OSError:
                    pass
            self._total = total - freed
        return freed

    def clear(self) -> int:
        """Remove every part and record; returns the bytes freed. Only what the cache writes
        goes (its two-hex-digit folders and ``meta/``): a cache folder pointed at a folder that
        holds other things leaves them alone."""
        with self._lock:
            freed = sum(size for _, size, _ in self._parts())
            try:
                entries = list(os.scandir(self.root))
            except OSError:
                entries = []
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and (entry.name == META or _is_shard(entry.name)):
                    shutil.rmtree(entry.path, ignore_errors=True)
            self._total = 0
        return freed


def _is_shard(name: str) -> bool:
    return len(name) == 2 and all(c in "0123456789abcdef" for c in name)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
