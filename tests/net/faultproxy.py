"""A fault-injecting HTTP proxy for the streaming tests (stdlib only).

It sits in front of an upstream server (the tests' nginx) on 127.0.0.1 and forwards GET and
HEAD requests, keeping the client's connection alive as HTTP/1.1 does. A test scripts it:

- :meth:`FaultProxy.fail`: answer ``status`` (404, 503, ...) with an optional ``Retry-After``
  instead of forwarding, for the next ``times`` requests whose path matches a pattern.
- :meth:`FaultProxy.drop_after`: forward the headers and the first ``nbytes`` of the body, then
  close the connection (FIN, or a TCP reset with ``reset=True``).
- :meth:`FaultProxy.delay`: wait before the headers and/or between body pieces.
- :meth:`FaultProxy.set_rate`: a bandwidth limit in bytes/s for all responses together (one
  token bucket, the link), changeable while a download runs; ``None`` lifts it.
- :attr:`FaultProxy.log`: one :class:`Request` per request (method, path, Range header, status,
  body bytes sent, the fault applied), so a test asserts what was fetched.

Rules are checked in the order they were added; the first one that matches the path (a regular
expression searched in the path, query included) and still has requests left applies.
``times=None`` applies it to every matching request. :meth:`reset` clears rules, log and rate.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 16 << 10  # body bytes per write (smaller under a low rate limit, so pacing is smooth)
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-connection",
}


@dataclass
class Rule:
    pattern: re.Pattern[str]
    times: int | None  # requests left, None: every one
    status: int | None = None
    retry_after: str | None = None
    drop_after: int | None = None
    reset: bool = False
    header_delay: float = 0.0
    piece_delay: float = 0.0
    piece_size: int = PIECE
    name: str = ""


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int | None = None
    sent: int = 0  # body bytes written to the client
    fault: str = ""
    start: float = field(default_factory=time.monotonic)
    end: float | None = None
    headers: dict[str, str] = field(default_factory=dict)


class TokenBucket:
    """A byte rate shared by every connection; ``take`` blocks until the bytes may go. Debt is
    allowed (a piece larger than the burst waits for its whole cost) and re-priced at the
    current rate, so raising the rate speeds up a transfer that is already waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._last = time.monotonic()

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None for no limit)")
        with self._lock:
            self._refill()
            self._rate = rate
            self._tokens = min(self._tokens, 0.0)

    def _refill(self) -> None:
        now = time.monotonic()
        if self._rate is not None:
            burst = max(self._rate * 0.05, 1.0)  # at most 50 ms of sending at once
            self._tokens = min(burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def take(self, n: int) -> None:
        with self._lock:
            self._refill()
            if self._rate is None:
                return
            self._tokens -= n
        while True:
            with self._lock:
                self._refill()
                if self._rate is None or self._tokens >= 0:
                    return
                wait = -self._tokens / self._rate
            time.sleep(min(wait, 0.02))

    def piece(self) -> int:
        """A write size that keeps pacing smooth at the current rate (~20 ms of data)."""
        rate = self._rate
        return PIECE if rate is None else int(max(512, min(PIECE, rate * 0.02)))


class _Dropped(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    timeout = 60  # an idle kept-alive client connection closes after this

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: the log is ours
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body pieces go out in separate writes: with Nagle's algorithm each
        # response would wait for the client's delayed ACK (~40 ms), a latency no real server adds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._proxy()

    def do_HEAD(self) -> None:
        self._proxy()

    def _reject(self, status: int) -> None:
        self.send_error(status)

    do_POST = do_PUT = do_DELETE = lambda self: self._reject(405)  # noqa: E731

    def _proxy(self) -> None:
        proxy = self.server.owner
        entry = Request(self.command, self.path, self.headers.get("Range"),
                        headers={k: v for k, v in self.headers.items()})
        proxy._record(entry)
        rule = proxy._match(self.path)
        try:
            if rule is not None:
                entry.fault = rule.name
                if rule.header_delay:
                    time.sleep(rule.header_delay)
                if rule.status is not None:
                    self._answer(entry, rule)
                    return
            self._forward(entry, rule, proxy)
        except _Dropped:
            pass
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            entry.end = time.monotonic()

    def _answer(self, entry: Request, rule: Rule) -> None:
        body = f"{rule.status} from the fault proxy\n".encode()
        entry.status = rule.status
        self.send_response_only(rule.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
        if rule.retry_after is not None:
            self.send_header("Retry-After", rule.retry_after)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            entry.sent = len(body)

    def _forward(self, entry: Request, rule: Rule | None, proxy: FaultProxy) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, headers=headers)
            resp = upstream.getresponse()
            entry.status = resp.status
            length = resp.getheader("Content-Length")
            # without a length (chunked upstream) the whole body is read so one can be sent
            body_first = None if length is not None or self.command == "HEAD" else resp.read()
            self.send_response_only(resp.status, resp.reason)
            for key, value in resp.getheaders():
                if key.lower() not in HOP_BY_HOP and not (body_first is not None and key.lower() == "content-length"):
                    self.send_header(key, value)
            if body_first is not None:
                self.send_header("Content-Length", str(len(body_first)))
            self.end_headers()
            if self.command == "HEAD":
                return
            self._send_body(entry, rule, proxy, resp, body_first)
        finally:
            upstream.close()

    def _send_body(self, entry, rule, proxy, resp, body_first) -> None:
        limit = rule.drop_after if rule is not None else None
        pending = body_first
        while True:
            if limit is not None and entry.sent >= limit:
                self._drop(rule)
            size = proxy.bucket.piece()
            if rule is not None and rule.piece_delay:
                size = min(size, rule.piece_size)
            if limit is not None:
                size = min(size, limit - entry.sent)
            if pending is not None:
                data, pending = pending[:size], pending[size:]
            else:
                data = resp.read(size)
            if not data:
                return
            if rule is not None and rule.piece_delay and entry.sent:
                time.sleep(rule.piece_delay)
            proxy.bucket.take(len(data))
            self.wfile.write(data)
            entry.sent += len(data)

    def _drop(self, rule: Rule) -> None:
        """End the connection mid-body: FIN (the client reads a short body) or RST."""
        self.close_connection = True
        try:
            self.wfile.flush()
            if rule.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:  # the connection was dropped on purpose
            pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultProxy

    def handle_error(self, request, client_address) -> None:
        pass  # a client that disconnects is part of the tests, not an error to print


class FaultProxy:
    """The proxy's controls; ``start`` runs it in a daemon thread, ``stop`` shuts it down."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.bucket = TokenBucket()
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._log: list[Request] = []
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> FaultProxy:
        server = _ProxyServer(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not running"
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    # -- scripting ------------------------------------------------------------------------
    def _add(self, pattern: str, times: int | None, name: str, **kw) -> Rule:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        rule = Rule(re.compile(pattern), times, name=name, **kw)
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(self, pattern: str, status: int, *, times: int | None = 1, retry_after: str | int | None = None) -> Rule:
        """Answer ``status`` instead of forwarding, for the next ``times`` matching requests."""
        ra = None if retry_after is None else str(retry_after)
        return self._add(pattern, times, f"status {status}", status=status, retry_after=ra)

    def drop_after(self, pattern: str, nbytes: int, *, times: int | None = 1, reset: bool = False) -> Rule:
        """Close the connection after ``nbytes`` body bytes, for the next ``times`` matching requests."""
        if nbytes < 0:
            raise ValueError("nbytes must not be negative")
        return self._add(pattern, times, f"drop after {nbytes}" + (" (reset)" if reset else ""),
                         drop_after=nbytes, reset=reset)

    def delay(self, pattern: str, *, headers: float = 0.0, pieces: float = 0.0, piece_size: int = PIECE,
              times: int | None = 1) -> Rule:
        """Wait ``headers`` s before answering and ``pieces`` s between body pieces of ``piece_size``."""
        return self._add(pattern, times, f"delay {headers}s/{pieces}s", header_delay=headers,
                         piece_delay=pieces, piece_size=max(1, piece_size))

    def set_rate(self, bytes_per_s: float | None) -> None:
        """Limit all responses together to ``bytes_per_s`` (None: no limit); takes effect at once."""
        self.bucket.set_rate(bytes_per_s)

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._log.clear()
        self.bucket.set_rate(None)

    def _match(self, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if (rule.times is None or rule.times > 0) and rule.pattern.search(path):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _record(self, entry: Request) -> None:
        with self._lock:
            self._log.append(entry)

    # -- the log --------------------------------------------------------------------------
    @property
    def log(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def settle(self, timeout: float = 2.0) -> None:
        """Wait until every logged request has finished on the proxy's side (a client may have
        its last bytes a moment before the proxy's thread counts them)."""
        deadline = time.monotonic() + timeout
        while any(r.end is None for r in self.log) and time.monotonic() < deadline:
            time.sleep(0.005)

    def requests(self, pattern: str = "", method: str | None = None, *, wait: bool = True) -> list[Request]:
        """The logged requests whose path matches ``pattern`` (and ``method`` if given), after
        those in flight have finished (``wait=False``: as they stand now)."""
        if wait:
            self.settle()
        rx = re.compile(pattern)
        return [r for r in self.log if rx.search(r.path) and (method is None or r.method == method)]

    def body_bytes(self, pattern: str = "") -> int:
        """Body bytes sent for requests matching ``pattern`` (what a client downloaded)."""
        return sum(r.sent for r in self.requests(pattern))

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
