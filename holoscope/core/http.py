"""HTTP(S) sources: every reader reads a URL the way it reads a file, by range requests.

:class:`HttpSource` is a :class:`~holoscope.core.sources.Source` whose bytes live on a web server
(any server or CDN that honours ``Range``; nginx's static files do). Reads are cut into
:data:`~holoscope.core.http_cache.BLOCK`-sized parts, fetched by range requests (a run of
missing parts in one request), kept in a small memory LRU and in the on-disk
:class:`~holoscope.core.http_cache.PartCache`, so a replay or a seek back downloads nothing.
:meth:`HttpSource.iter_chunks` is one streaming GET yielding pieces as they arrive (progressive
readers), :meth:`HttpSource.open` a seekable file object over the range reads (PyAV, zipfile).

Every source belongs to an :class:`HttpSession`: its :class:`HttpPolicy` (timeouts, retries with
back-off, redirect limit, TLS verification, consent to leave the origin), its cache, its
keep-alive connections (one per host and thread) and its statistics (bytes, requests, retries,
cache hits, recent throughput).

Safety rules (issue 12):
- only ``http`` and ``https``; TLS certificates and host names are verified (the system's CAs);
- a name a manifest gives resolves against the manifest's URL (:meth:`HttpSource.relative`) and
  may not switch scheme or host unless the session allows it (``allow_cross_origin``);
- at most :attr:`HttpPolicy.max_redirects` redirects, never from https to http;
- connect and read timeouts; retries (back-off doubling from ``backoff``, ``Retry-After``
  honoured up to a cap) on timeouts, resets, 429 and 5xx; 404 is :class:`SourceNotFound` at once;
- a response is read only up to the length asked for, checked against ``Content-Range`` and the
  size first seen; a file that changes on the server while it is read (another ETag or
  Last-Modified, detected through ``If-Range``) is an error, never a mix of two versions;
  ``read_limited`` refuses by ``Content-Length`` before downloading.
"""

from __future__ import annotations

import collections
import http.client
import io
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from holoscope.core.errors import (
    CorruptStream,
    HoloscopeError,
    NetworkError,
    SourceNotFound,
    SourceUnreadable,
    UnsafeLocation,
)
from holoscope.core.http_cache import BLOCK, PartCache, resource_key
from holoscope.core.sources import Source, is_url

__all__ = ["HttpPolicy", "HttpSession", "HttpSource", "check_url", "configure", "default_session", "display_url",
           "is_url", "origin"]

SCHEMES = ("http", "https")
USER_AGENT = "holoscope"
NO_RANGES_LIMIT = 256 << 20  # a server that ignores Range: the most read in one whole download
# The first request asks for this much: enough for every format's sniffing and headers, and
# small, so the first picture of a slow link is not held up by a whole part.
PROBE_BYTES = 16 << 10
MEMORY_BLOCKS = 256  # blocks (64 MiB) kept in memory per session
REVALIDATE_S = 10.0  # seconds a probed URL's size and version are trusted for new sources
FAILURE_MEMORY = 2.0  # seconds a "not found" answer is reused before the server is asked again
MIN_BYTES_PER_S = 1024  # the slowest average a body may keep once past the read timeout
MAX_READ_AHEAD_BLOCKS = 16  # 4 MiB: the most a sequential reader gets ahead in one request
RETRY_AFTER_CAP = 5.0  # seconds: the longest Retry-After honoured before the next try


def display_url(url: str) -> str:
    """The URL without user and password, for messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:  # not a URL that parses: still no password in a message
        return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


_PATH_SAFE = "/%:@!$&'()*+,;=~-._"  # kept as they are: reserved characters and existing escapes
_QUERY_SAFE = _PATH_SAFE + "?"


def normalize_url(url: str) -> str:
    """``url`` as it goes on the wire: spaces and non-ASCII characters of the path and query
    percent-encoded (UTF-8, as browsers send them), a non-ASCII host in IDNA, the fragment
    dropped. Existing escapes are kept. Refuses what is not an absolute http(s) URL."""
    if not isinstance(url, str):
        raise SourceNotFound(f"not a URL: {url!r}")
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
        host = parts.hostname or ""
        if any(ord(c) < 33 or c == "\x7f" for c in host):
            raise ValueError("the host name holds spaces or control characters")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise SourceNotFound(f"not a valid URL ({exc})", path=display_url(url)) from exc
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeLocation(f"only http and https URLs are opened, not {parts.scheme or 'a bare name'!r}",
                             path=display_url(url))  # fmt: skip
    if not host:
        raise SourceNotFound("the URL names no host", path=display_url(url))
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + (f"[{host}]" if ":" in host else host)
    netloc += f":{port}" if port is not None else ""
    path = urllib.parse.quote(parts.path, safe=_PATH_SAFE, encoding="utf-8", errors="surrogatepass")
    query = urllib.parse.quote(parts.query, safe=_QUERY_SAFE, encoding="utf-8", errors="surrogatepass")
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, path or "/", query, ""))


def check_url(url: str) -> urllib.parse.SplitResult:
    """Split ``url`` (normalised, see :func:`normalize_url`), refusing anything but an absolute
    http(s) URL with a host."""
    return urllib.parse.urlsplit(normalize_url(url))


def origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 4  # tries after the first
    backoff: float = 0.25  # seconds before the first retry, doubling, at most max_backoff
    max_backoff: float = 4.0
    max_redirects: int = 5
    max_parallel: int = 6  # range requests in flight at once (read_ranges)
    verify_tls: bool = True
    allow_cross_origin: bool = False  # may a manifest name files on another host or scheme?
    use_cache: bool = True


class _Meter:
    """Recent download throughput: bytes over the seconds spent receiving them."""

    def __init__(self, window: int = 32) -> None:
        self._samples: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, nbytes: int, seconds: float) -> None:
        if nbytes > 0:
            with self._lock:
                self._samples.append((nbytes, max(seconds, 1e-6)))

    def rate(self) -> float | None:
        with self._lock:
            samples = list(self._samples)
        if not samples:
            return None
        return sum(b for b, _ in samples) / sum(s for _, s in samples)


class _Resource:
    """What the session knows about one URL: where it ended up, its size and version."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.final = url  # after redirects
        self.size: int | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.ranges = True  # the server honours Range
        self.folder = False  # the URL redirected to itself with a '/': a folder
        self.whole: bytes | None = None  # the file, from a server that ignores Range
        self.head: bytes | None = None  # the first bytes, from the probe
        self.previous: dict[str, Any] | None = None  # what an earlier probe of the URL found
        self.probed = False
        self.probed_at = 0.0
        self.failure: tuple[float, HoloscopeError] | None = None  # (when, the not-found error)
        self.lock = threading.Lock()

    @property
    def validator(self) -> str | None:
        return self.etag or self.last_modified

    @property
    def key(self) -> str:
        return resource_key(self.final, self.validator or "")

    @property
    def if_range(self) -> str | None:
        """The validator a range request may carry: If-Range takes a strong ETag or a date,
        never a weak ETag (W/"..." never matches: every answer would be the whole file)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


class _Response:
    """An open response and the connection it came on (closed unless fully read)."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, url: str) -> None:
        self.conn, self.resp, self.url = conn, resp, url

    @property
    def status(self) -> int:
        return self.resp.status

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def discard(self) -> None:
        self.conn.close()


class _Retry(Exception):
    """A failure worth another try (timeout, reset, 5xx, a cut-off body). ``slow``: a body
    that trickled below the minimum pace, counted as a try even though bytes came."""

    def __init__(self, reason: str, wait: float | None = None, *, slow: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.slow = slow


class HttpSession:
    """Connections, cache and statistics shared by the sources of one program (or one test)."""

    def __init__(self, policy: HttpPolicy | None = None, cache: PartCache | None = None) -> None:
        self.policy = policy or HttpPolicy()
        self.cache = (cache or PartCache()) if self.policy.use_cache else None
        self._local = threading.local()
        self._resources: dict[str, _Resource] = {}
        self._memory: collections.OrderedDict[tuple[str, int], bytes] = collections.OrderedDict()
        self._inflight: dict[tuple[str, int], threading.Event] = {}  # parts being fetched now
        self._lock = threading.Lock()
        self.meter = _Meter()
        self.counts = collections.Counter()
        self._tls: ssl.SSLContext | None = None

    # Statistics -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        rate = self.meter.rate()
        with self._lock:
            counts = dict(self.counts)
        return {
            "bytes_downloaded": counts.get("bytes", 0),
            "requests": counts.get("requests", 0),
            "retries": counts.get("retries", 0),
            "cache_hits": self.cache.hits if self.cache else 0,
            "cache_hit_bytes": self.cache.hit_bytes if self.cache else 0,
            "throughput_bps": None if rate is None else rate * 8.0,
        }

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    # Resources and parts ------------------------------------------------------------------
    def resource(self, url: str) -> _Resource:
        """What is known of ``url``: reused while fresh (the parts of one opening, a manifest's
        segments read again and again), asked again (a conditional request: a 304 without a body
        when nothing changed) once older than :data:`REVALIDATE_S`, so a URL reopened later is
        never served an old version."""
        with self._lock:
            res = self._resources.get(url)
            if res is None or (res.probed and time.monotonic() - res.probed_at > REVALIDATE_S):
                old = res
                res = self._resources[url] = _Resource(url)
                if old is not None and old.validator and old.ranges and not old.folder:
                    res.previous = {"final": old.final, "size": old.size, "etag": old.etag,
                                    "last_modified": old.last_modified}  # fmt: skip
            return res

    def _cache_key(self, res: _Resource) -> str:
        # without a validator a new version cannot be told apart: its parts belong to this
        # resource object alone (a reopened URL gets a new one, see resource())
        return res.key if res.validator else f"nocache:{id(res)}:{res.final}"

    def get_block(self, res: _Resource, block: int) -> bytes | None:
        key = self._cache_key(res)
        with self._lock:
            data = self._memory.get((key, block))
            if data is not None:
                self._memory.move_to_end((key, block))
                return data
        if self.cache is None or not res.validator:
            return None
        data = self.cache.get(key, block)
        if data is not None:
            self._remember_block(key, block, data)
        return data

    def claim(self, res: _Resource, blocks: list[int]) -> tuple[list[int], list[tuple[int, threading.Event]]]:
        """Split missing parts into those this thread fetches (marked in flight) and those
        another thread is fetching now (with the event set when it is done)."""
        key = self._cache_key(res)
        mine: list[int] = []
        theirs: list[tuple[int, threading.Event]] = []
        with self._lock:
            for b in blocks:
                event = self._inflight.get((key, b))
                if event is None:
                    self._inflight[(key, b)] = threading.Event()
                    mine.append(b)
                else:
                    theirs.append((b, event))
        return mine, theirs

    def release(self, res: _Resource, blocks: list[int]) -> None:
        """The parts this thread claimed are stored (or failed): wake whoever waits for them."""
        key = self._cache_key(res)
        with self._lock:
            events = [self._inflight.pop((key, b), None) for b in blocks]
        for event in events:
            if event is not None:
                event.set()

    def has_block(self, res: _Resource, block: int) -> bool:
        """Whether a part is at hand, without reading it (nor counting a cache hit)."""
        key = self._cache_key(res)
        with self._lock:
            if (key, block) in self._memory:
                return True
        return self.cache is not None and bool(res.validator) and self.cache.has(key, block)

    def put_block(self, res: _Resource, block: int, data: bytes) -> None:
        key = self._cache_key(res)
        self._remember_block(key, block, data)
        if self.cache is not None and res.validator:
            self.cache.put(key, block, data)

    def _remember_block(self, key: str, block: int, data: bytes) -> None:
        with self._lock:
            self._memory[(key, block)] = data
            self._memory.move_to_end((key, block))
            while len(self._memory) > MEMORY_BLOCKS:
                self._memory.popitem(last=False)

    # Connections ------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ctx = ssl.create_default_context()
            if not self.policy.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    def _connection(self, url: str) -> http.client.HTTPConnection:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = origin(url)
        conn = pool.get(key)
        if conn is None:
            scheme, host, port = key
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=self.policy.connect_timeout,
                                                   context=self._tls_context())  # fmt: skip
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.policy.connect_timeout)
            pool[key] = conn
        if conn.sock is None:
            conn.timeout = self.policy.connect_timeout
            conn.connect()  # connect timeout, then the read timeout for every socket operation
            conn.sock.settimeout(self.policy.read_timeout)
        return conn

    def _drop_connection(self, url: str) -> None:
        pool = getattr(self._local, "pool", {})
        conn = pool.pop(origin(url), None)
        if conn is not None:
            conn.close()

    def open_response(self, url: str, headers: dict[str, str], *, label: str) -> _Response:
        """Send a GET, following at most ``max_redirects`` redirects (never https → http).
        Network failures raise :class:`_Retry`; the caller decides whether to try again."""
        seen = 0
        while True:
            parts = urllib.parse.urlsplit(url)
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            send = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
            if parts.username or parts.password:
                import base64

                creds = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
                send["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
            try:
                conn = self._connection(url)
                conn.request("GET", target, headers=send)
                resp = conn.getresponse()
            except ssl.SSLCertVerificationError as exc:
                self._drop_connection(url)
                raise SourceUnreadable(f"TLS certificate rejected ({exc.verify_message or exc})", path=label) from exc
            except socket.gaierror as exc:  # a name that does not resolve will not on a retry
                self._drop_connection(url)
                raise NetworkError(_reason(exc), path=label) from exc
            except ssl.SSLError as exc:  # https to a plain-HTTP port, no common cipher: not transient
                self._drop_connection(url)
                raise SourceUnreadable(f"the TLS handshake failed ({exc.reason or exc})", path=label) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection(url)
                raise _Retry(_reason(exc)) from exc
            self._count("requests")
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                resp.read(64 << 10)
                if resp.getheader("Content-Length") is None or not resp.isclosed():
                    self._drop_connection(url)
                if not location:
                    raise SourceUnreadable(f"the server answered {resp.status} without a Location", path=label)
                seen += 1
                if seen > self.policy.max_redirects:
                    raise SourceUnreadable(f"too many redirects (more than {self.policy.max_redirects})", path=label)
                new = normalize_url(urllib.parse.urljoin(url, location.strip()))
                if origin(url)[0] == "https" and origin(new)[0] != "https":
                    raise UnsafeLocation(f"redirected from https to {display_url(new)}: refused", path=label)
                url = new
                continue
            encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
            if resp.status in (200, 206) and encoding not in ("identity", ""):
                # asked for identity: compressed bytes would be taken for the file's own
                self._drop_connection(url)
                raise SourceUnreadable(f"the server sent the file {encoding}-encoded although asked not to",
                                       path=label)  # fmt: skip
            return _Response(conn, resp, url)

    # Retries ----------------------------------------------------------------------------
    def retrying(self, label: str, attempt_fn: Any) -> Any:
        """Call ``attempt_fn(try_number)`` until it returns, retrying :class:`_Retry` with back-off."""
        policy = self.policy
        for attempt in range(policy.retries + 1):
            try:
                return attempt_fn(attempt)
            except _Retry as exc:
                if attempt >= policy.retries:
                    raise NetworkError(f"{exc} (gave up after {attempt + 1} tries)", path=label) from None
                self._count("retries")
                wait = min(policy.backoff * (2**attempt), policy.max_backoff)
                if exc.wait is not None:
                    wait = max(wait, min(exc.wait, RETRY_AFTER_CAP))
                time.sleep(wait)
        raise AssertionError("unreachable")

    def read_ranges(self, items: Sequence[tuple[Source, int, int]]) -> list[bytes]:
        """``source.read_range(offset, length)`` for each item, at most ``max_parallel`` at once
        (V^3's 20 videos per group come faster in parallel); results in the items' order."""
        if len(items) <= 1:
            return [s.read_range(o, n) for s, o, n in items]
        with ThreadPoolExecutor(max_workers=min(self.policy.max_parallel, len(items)),
                                thread_name_prefix="holoscope-http") as pool:  # fmt: skip
            return list(pool.map(lambda item: item[0].read_range(item[1], item[2]), items))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return "connection reset by the server"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed mid-transfer"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    return str(exc) or type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


def _status_error(res: _Response, label: str) -> HoloscopeError | _Retry:
    """The error (or retry) for a response that is not the data asked for."""
    status = res.status
    reason = res.resp.reason or ""
    res.discard()
    if status in (404, 410):
        return SourceNotFound(f"not found on the server ({status} {reason})".rstrip(), path=label)
    if status in (401, 403, 407):
        return SourceUnreadable(f"the server refused access ({status} {reason})".rstrip(), path=label)
    if status == 429 or status >= 500:
        return _Retry(f"the server answered {status} {reason}".rstrip(), _retry_after(res.header("Retry-After")))
    return SourceUnreadable(f"the server answered {status} {reason}".rstrip(), path=label)


_default: HttpSession | None = None
_default_lock = threading.Lock()


def default_session() -> HttpSession:
    """The program's session (created with ``$HOLOSCOPE_NO_CACHE`` respected)."""
    global _default
    with _default_lock:
        if _default is None:
            no_cache = os.environ.get("HOLOSCOPE_NO_CACHE", "").strip() not in ("", "0")
            _default = HttpSession(HttpPolicy(use_cache=not no_cache))
        return _default


def configure(**policy: Any) -> HttpSession:
    """Replace the program's session with one whose policy changes the given fields
    (``use_cache=False`` for ``--no-cache``, ``allow_cross_origin=True``, timeouts ...)."""
    global _default
    base = default_session().policy
    with _default_lock:
        _default = HttpSession(replace(base, **policy))
        return _default


class HttpSource(Source):
    """A file on a web server, read by range requests (see the module docstring)."""

    local_path = None

    def __init__(self, url: str, session: HttpSession | None = None) -> None:
        url = normalize_url(url)
        self.url = url
        self.uri = url
        self.session = session or default_session()
        self._display = display_url(url)
        # ``name`` is what the registry matches extensions on: the path, without query or fragment.
        self.name = urllib.parse.unquote(urllib.parse.urlsplit(url).path) or "/"
        self.res = self.session.resource(url)
        self._sequential_to = -1  # the part a read continuing the last one starts in
        self._ahead = 0  # parts fetched ahead by the last sequential read

    @property
    def label(self) -> str:
        return self._display

    @property
    def is_folder(self) -> bool:  # type: ignore[override]
        return self.url.endswith("/") or self.res.folder

    # Probing ----------------------------------------------------------------------------
    def _probe(self) -> _Resource:
        """Learn the size and version (one range request for the first part, or a
        conditional one answered 304 when the cache holds this version)."""
        res = self.res
        if res.probed:
            return res
        if self.url.endswith("/"):
            res.folder = res.probed = True  # a folder is reached through its files, never read
            return res
        with res.lock:
            failed = res.failure
            if failed is not None and time.monotonic() - failed[0] < FAILURE_MEMORY:
                raise failed[1]  # the same answer a moment ago (exists() then open: one request)
            if not res.probed:
                try:
                    self.session.retrying(self.label, lambda attempt: self._probe_once(res))
                except SourceNotFound as exc:
                    res.failure = (time.monotonic(), exc)
                    raise
                res.probed, res.failure, res.probed_at = True, None, time.monotonic()
        return res

    def _probe_once(self, res: _Resource) -> None:
        session = self.session
        known = session.cache.remembered(self.url) if session.cache is not None else None
        known = known or res.previous
        headers = {"Range": f"bytes=0-{PROBE_BYTES - 1}"}
        if known and known.get("final"):
            if known.get("etag"):
                headers["If-None-Match"] = known["etag"]
            elif known.get("last_modified"):
                headers["If-Modified-Since"] = known["last_modified"]
        started = time.monotonic()
        reply = session.open_response(self.url, headers, label=self.label)
        if reply.url.rstrip("/") == self.url.rstrip("/") and reply.url.endswith("/") and not self.url.endswith("/"):
            res.folder = True  # a server's "that is a folder" redirect
        res.final = reply.url
        if res.folder:
            reply.discard()  # its index page (or 403/404 without one) is not what is read
            return
        if reply.status == 304 and known:
            reply.resp.read()
            res.size, res.etag, res.last_modified = known.get("size"), known.get("etag"), known.get("last_modified")
            if session.get_block(res, 0) is not None or res.size == 0:
                return
            # The cache lost the first part: ask again, unconditionally.
            if session.cache is not None:
                session.cache.remember(self.url, {})
            res.previous = None
            raise _Retry("the cache lost its first part")
        if reply.status == 416 and (reply.header("Content-Range") or "").replace(" ", "").lower() == "bytes*/0":
            reply.discard()
            res.size = 0  # an empty file: the readers say so
            res.etag, res.last_modified = reply.header("ETag"), reply.header("Last-Modified")
            return
        if reply.status not in (200, 206):
            raise _status_error(reply, self.label)
        res.etag = reply.header("ETag")
        res.last_modified = reply.header("Last-Modified")
        if reply.status == 206:
            match = _CONTENT_RANGE.match(reply.header("Content-Range") or "")
            if not match or int(match.group(1)) != 0:
                reply.discard()
                raise SourceUnreadable("the server's answer to a range request has no usable Content-Range",
                                       path=self.label)  # fmt: skip
            res.size = None if match.group(3) == "*" else int(match.group(3))
            want = int(match.group(2)) + 1
        else:  # the server ignored Range: it sends the whole file
            res.ranges = False
            length = reply.header("Content-Length")
            res.size = int(length) if length and length.isdigit() else None
            if res.size is not None and res.size > NO_RANGES_LIMIT:
                reply.discard()
                raise SourceUnreadable(f"the server does not support range requests and the file is "
                                       f"{res.size:,} bytes (more than {NO_RANGES_LIMIT:,})", path=self.label)  # fmt: skip
            want = res.size if res.size is not None else NO_RANGES_LIMIT + 1
        data = _read_body(reply, want, session, started)
        if len(data) < want and (res.ranges or res.size is not None):
            raise _Retry("the connection closed mid-transfer")  # never a cut-off body taken for the file
        if not res.ranges:
            if len(data) > NO_RANGES_LIMIT:
                raise SourceUnreadable("the server does not support range requests and the file is too large",
                                       path=self.label)  # fmt: skip
            res.size = len(data)
            res.whole = data  # kept whole: its parts could not be asked for again
        elif len(data) == res.size:
            session.put_block(res, 0, data)  # the whole (small) file
        else:
            res.head = data  # the file's start: sniffing and headers need no more
        if session.cache is not None and res.validator and res.ranges:
            session.cache.remember(self.url, {"final": res.final, "size": res.size, "etag": res.etag,
                                              "last_modified": res.last_modified})  # fmt: skip

    @property
    def size(self) -> int | None:
        return self._probe().size

    def at_hand(self, offset: int, length: int) -> bool:
        res = self.res
        if not res.probed and self.session.cache is not None:
            # not asked yet: what the disk cache holds of the version seen last (no request)
            known = self.session.cache.remembered(self.url)
            if known and known.get("final") and isinstance(known.get("size"), int):
                res = _Resource(self.url)
                res.final, res.size = known["final"], known["size"]
                res.etag, res.last_modified = known.get("etag"), known.get("last_modified")
        if res.size is None or (res is self.res and not res.probed):
            return False
        end = min(offset + length, res.size)
        if res.whole is not None or end <= offset or (res.head is not None and end <= len(res.head)):
            return True
        return all(self.session.has_block(res, b) for b in range(offset // BLOCK, (end - 1) // BLOCK + 1))

    def exists(self) -> bool:
        try:
            self._probe()
        except SourceNotFound:
            return False
        return True

    # Reading ----------------------------------------------------------------------------
    def read_range(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        res = self._probe()
        if res.folder:
            raise SourceNotFound("is a folder on the server, not a file", path=self.label)
        end = offset + length if res.size is None else min(offset + length, res.size)
        if end <= offset:
            return b""
        if res.whole is not None:
            return res.whole[offset:end]
        if res.head is not None and end <= len(res.head):
            return res.head[offset:end]
        first, last = offset // BLOCK, (end - 1) // BLOCK
        blocks: dict[int, bytes] = {}
        missing: list[int] = []
        for b in range(first, last + 1):
            data = self.session.get_block(res, b)
            if data is None:
                missing.append(b)
            else:
                blocks[b] = data
        # Parts another thread is fetching now are waited for, not fetched again.
        mine, theirs = self.session.claim(res, missing)
        runs = _runs(mine)
        try:
            if runs and self._sequential_to == first:
                # A reader going through the file in order (PyAV demuxing, a zip member): fetch
                # the parts after this read in the same request, more each time, so a
                # high-latency link is not paid once per part.
                self._ahead = min(max(2 * self._ahead, 1), MAX_READ_AHEAD_BLOCKS)
                limit = last + self._ahead if res.size is None else min(last + self._ahead, (res.size - 1) // BLOCK)
                tail = runs[-1]
                while tail[-1] < limit and not self.session.has_block(res, tail[-1] + 1):
                    extra, _ = self.session.claim(res, [tail[-1] + 1])
                    if not extra:
                        break  # another reader has it in hand
                    tail.append(tail[-1] + 1)
            elif runs:
                self._ahead = 0
            for run in runs:
                blocks.update(self._fetch_blocks(res, run[0], run[-1]))
        finally:
            self.session.release(res, [b for run in runs for b in run])
        for b, done in theirs:
            done.wait(self.session.policy.read_timeout * (self.session.policy.retries + 1))
            data = self.session.get_block(res, b)
            blocks[b] = data if data is not None else self._fetch_blocks(res, b, b).get(b, b"")
        self._sequential_to = last + 1 if end == (last + 1) * BLOCK or res.size == end else last
        joined = b"".join(blocks[b] for b in range(first, last + 1) if b in blocks)
        start = offset - first * BLOCK
        return joined[start : start + (end - offset)]

    def _fetch_blocks(self, res: _Resource, first: int, last: int) -> dict[int, bytes]:
        """Parts ``first..last`` by one range request (resumed where a retry left off)."""
        if not res.ranges:
            raise CorruptStream("lost the parts of a file whose server does not support range requests",
                                path=self.label)  # fmt: skip
        start = first * BLOCK
        stop = (last + 1) * BLOCK if res.size is None else min((last + 1) * BLOCK, res.size)
        got = bytearray()

        def attempt(_: int) -> None:
            # A server may answer a range with less than asked (CDNs cap them): ask for the
            # rest at once while each answer brings something; a failure that brought
            # nothing new is a retry (with back-off).
            while start + len(got) < stop:
                before = len(got)
                try:
                    done = self._range_into(res, start + len(got), stop, got)
                except _Retry as exc:
                    if len(got) > before and not exc.slow:
                        continue
                    raise
                if done or len(got) == before:
                    break

        self.session.retrying(self.label, attempt)
        out = {}
        for b in range(first, last + 1):
            part = bytes(got[(b - first) * BLOCK : (b - first + 1) * BLOCK])
            if part:
                self.session.put_block(res, b, part)
                out[b] = part
        return out

    def _range_into(self, res: _Resource, start: int, stop: int, into: bytearray) -> bool:
        """Append bytes from ``start`` (up to ``stop``) to ``into``: what one range answer holds,
        which may be less than asked. True at the end of the file. A body cut off keeps what
        arrived and raises :class:`_Retry` (the caller asks for the rest)."""
        if start >= stop:
            return True
        headers = {"Range": f"bytes={start}-{stop - 1}"}
        if res.if_range:
            headers["If-Range"] = res.if_range
        began = time.monotonic()
        reply = self.session.open_response(res.final, headers, label=self.label)
        if reply.status == 416:
            reply.discard()
            return True
        if reply.status == 200:
            reply.discard()
            if not res.if_range:
                raise SourceUnreadable("the server stopped answering range requests", path=self.label)
            raise CorruptStream("the file changed on the server while it was being read; open it again",
                                path=self.label)  # fmt: skip
        if reply.status != 206:
            raise _status_error(reply, self.label)
        match = _CONTENT_RANGE.match(reply.header("Content-Range") or "")
        total = None if not match or match.group(3) == "*" else int(match.group(3))
        if not match or int(match.group(1)) != start or int(match.group(2)) >= stop or (
                total is not None and res.size is not None and total != res.size):  # fmt: skip
            reply.discard()
            raise CorruptStream("the server answered a different range or size than asked; "
                                "the file may have changed", path=self.label)  # fmt: skip
        tag = reply.header("ETag")
        if res.etag and tag and tag != res.etag:
            reply.discard()
            raise CorruptStream("the file changed on the server while it was being read; open it again",
                                path=self.label)  # fmt: skip
        want = int(match.group(2)) + 1 - start
        _read_body(reply, want, self.session, began, into=into)
        return total is not None and int(match.group(2)) + 1 >= total

    def iter_chunks(self, piece: int = 1 << 20, start: int = 0) -> Iterator[bytes]:
        """One streaming GET from ``start``: pieces as they arrive (at most ``piece`` bytes),
        parts already cached first; a dropped connection resumes where it stopped."""
        res = self._probe()
        if res.whole is not None:
            for i in range(start, len(res.whole), piece):
                yield res.whole[i : i + piece]
            return
        offset = start
        while res.size is None or offset < res.size:
            block = offset // BLOCK
            cached = self.session.get_block(res, block)
            if cached is not None:
                tail = cached[offset - block * BLOCK :]
                if not tail:
                    return
                for i in range(0, len(tail), piece):
                    yield tail[i : i + piece]
                offset += len(tail)
                continue
            head = res.head if block == 0 and res.head is not None else b""
            if offset < len(head):
                for i in range(offset, len(head), piece):
                    yield head[i : i + piece]
                offset = len(head)
            gen = self._stream_from(res, block, offset, piece, head)
            for data in gen:
                offset += len(data)
                yield data
            return

    def _stream_from(self, res: _Resource, block: int, offset: int, piece: int,
                     have: bytes = b"") -> Iterator[bytes]:  # fmt: skip
        """Stream from part ``block`` to the end, storing every whole part; yield from ``offset``.
        ``have``: the start of that part, already here (the probe's bytes)."""
        position = block * BLOCK  # where the part being filled starts
        pending = bytearray(have)  # the bytes of that part received so far
        sent = offset  # bytes before this were given out already
        tries = slow_tries = 0
        while res.size is None or position + len(pending) < res.size:
            at = position + len(pending)  # the next byte to receive
            headers = {"Range": f"bytes={at}-"}
            if res.if_range:
                headers["If-Range"] = res.if_range
            try:
                reply = self.session.open_response(res.final, headers, label=self.label)
                if reply.status == 200 and res.if_range:
                    reply.discard()
                    raise CorruptStream("the file changed on the server while it was being read; open it again",
                                        path=self.label)  # fmt: skip
                if reply.status == 416:
                    reply.discard()
                    break
                if reply.status not in (200, 206):
                    raise _status_error(reply, self.label)
                skip = at if reply.status == 200 else 0  # a server without ranges starts at 0
                capped = False  # a complete answer that ends before the file does
                answered, received = time.monotonic(), 0
                while True:
                    began = time.monotonic()
                    try:
                        data = reply.resp.read1(min(piece, BLOCK))
                    except (OSError, http.client.HTTPException) as exc:
                        reply.discard()
                        raise _Retry(_reason(exc)) from exc
                    if not data:
                        if res.size is not None and position + len(pending) < res.size:
                            if reply.status == 206 and reply.resp.length == 0:
                                capped = True  # the server caps ranges: ask for the rest now
                            else:
                                reply.discard()
                                raise _Retry("the connection closed mid-transfer")
                        _finish(reply, True)
                        break
                    self.session.meter.add(len(data), time.monotonic() - began)
                    self.session._count("bytes", len(data))
                    received += len(data)
                    try:
                        _check_pace(received, answered, self.session.policy)
                    except _Retry:
                        reply.discard()
                        raise
                    if skip:
                        cut = min(skip, len(data))
                        data, skip = data[cut:], skip - cut
                        if not data:
                            continue
                    tries = 0
                    first = position + len(pending)  # absolute offset of data[0]
                    pending += data
                    if first + len(data) > sent:
                        try:
                            yield bytes(data[max(0, sent - first):])
                        except GeneratorExit:  # the reader stopped: this body is never read
                            reply.discard()
                            raise
                        sent = first + len(data)
                    while len(pending) >= BLOCK:
                        self.session.put_block(res, position // BLOCK, bytes(pending[:BLOCK]))
                        del pending[:BLOCK]
                        position += BLOCK
                if capped:
                    continue
                break
            except _Retry as exc:
                tries += 1
                slow_tries += exc.slow  # a trickle is never forgiven by the bytes it brings
                tries = max(tries, slow_tries)
                if tries > self.session.policy.retries:
                    raise NetworkError(f"{exc} (gave up after {tries} tries)", path=self.label) from None
                self.session._count("retries")
                time.sleep(min(self.session.policy.backoff * 2 ** (tries - 1), self.session.policy.max_backoff))
        if pending:
            self.session.put_block(res, position // BLOCK, bytes(pending))

    def read_limited(self, limit: int, *, what: str = "file") -> bytes:
        size = self.size
        if size is not None and size > limit:
            raise CorruptStream(f"{what} is larger than the {limit:,} bytes allowed ({size:,} bytes on the server)",
                                path=self.label)  # fmt: skip
        return super().read_limited(limit, what=what)

    def open(self) -> BinaryIO:
        self._probe()
        if self.is_folder:
            raise SourceNotFound("is a folder on the server, not a file", path=self.label)
        return io.BufferedReader(_RangeFile(self), buffer_size=BLOCK)  # type: ignore[return-value]

    # Neighbours -------------------------------------------------------------------------
    def relative(self, name: str) -> Source:
        if not isinstance(name, str) or not name or any(ord(c) < 32 for c in name) or "\\" in name:
            raise CorruptStream(f"{name!r} is not a usable file name", path=self.label)
        # Against where the file really is (after redirects), as a browser resolves them.
        base = self.res.final if self.res.probed else self.url
        if self.res.folder and not base.endswith("/"):
            base += "/"
        target = urllib.parse.urljoin(base, urllib.parse.quote(name, safe="/:?&=#%@+,;~!$'()*"))
        check_url(target)
        if origin(target) != origin(base) and not self.session.policy.allow_cross_origin:
            raise UnsafeLocation(f"names {display_url(target)}, on another host or scheme than the file it came "
                                 f"from; allow it with --allow-cross-origin", path=self.label)  # fmt: skip
        return HttpSource(target, self.session)


class _RangeFile(io.RawIOBase):
    """A seekable raw file over :meth:`HttpSource.read_range` (buffered by the caller)."""

    def __init__(self, source: HttpSource) -> None:
        self.source = source
        self.pos = 0
        self.name = source.label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self.pos + offset
        elif whence == io.SEEK_END:
            size = self.source.size
            if size is None:
                raise OSError("the server did not say how large the file is")
            pos = size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise OSError("negative seek position")
        self.pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read_range(self.pos, len(view))
        view[: len(data)] = data
        self.pos += len(data)
        return len(data)


def _read_body(reply: _Response, want: int, session: HttpSession, began: float,
               into: bytearray | None = None) -> bytes:  # fmt: skip
    """Read at most ``want`` body bytes (never more than asked, whatever the server sends).
    A cut-off body keeps what arrived in ``into`` and raises :class:`_Retry`."""
    out = into if into is not None else bytearray()
    start_len = len(out)
    try:
        while len(out) - start_len < want:
            chunk = reply.resp.read1(min(want - (len(out) - start_len), 1 << 20))
            if not chunk:
                break
            out += chunk
            _check_pace(len(out) - start_len, began, session.policy)
    except (OSError, http.client.HTTPException) as exc:
        reply.discard()
        session._count("bytes", len(out) - start_len)
        session.meter.add(len(out) - start_len, time.monotonic() - began)
        raise _Retry(_reason(exc)) from exc
    except _Retry:
        reply.discard()
        session._count("bytes", len(out) - start_len)
        raise
    got = len(out) - start_len
    session._count("bytes", got)
    session.meter.add(got, time.monotonic() - began)
    _finish(reply, got >= want)
    if got < want and into is not None:
        raise _Retry("the connection closed mid-transfer")
    return bytes(out) if into is None else b""


def _check_pace(received: int, began: float, policy: HttpPolicy) -> None:
    """A server that keeps a body trickling (a byte now and then, each within the read
    timeout) would hold a read for ever: past the read timeout, a body must have averaged
    :data:`MIN_BYTES_PER_S`, else it counts as a stalled transfer (retried, then an error)."""
    elapsed = time.monotonic() - began
    if elapsed > policy.read_timeout and received < MIN_BYTES_PER_S * elapsed:
        raise _Retry(f"the server sends too slowly ({received / elapsed:.0f} bytes/s)", slow=True)


def _finish(reply: _Response, complete: bool) -> None:
    """Hand the connection back for the next request: http.client's read1 never closes a
    response whose body has all been read, and a connection with an open response refuses
    the next request. A body left unread closes the connection instead."""
    if not complete:
        reply.discard()  # a cut-off body: the socket is dead or mid-stream either way
        return
    if reply.resp.length == 0:
        reply.resp.read()  # reads nothing; marks the response done
    if not reply.resp.isclosed():
        reply.discard()


def _runs(blocks: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for b in blocks:
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    return runs
