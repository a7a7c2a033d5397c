"""A bare HTTP client for checking the test bed itself (no redirects followed, no retries)."""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    seconds: float
    error: Exception | None = None  # set when the body ended early (IncompleteRead, reset)


def get(url: str, headers: dict[str, str] | None = None, *, method: str = "GET", timeout: float = 30,
        context: ssl.SSLContext | None = None) -> Response:
    """One request on a fresh connection; a body cut short is returned with ``error`` set."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        resp = conn.getresponse()
        head = {k.lower(): v for k, v in resp.getheaders()}
        error = None
        chunks = []
        try:
            while True:
                piece = resp.read1(1 << 16) if method != "HEAD" else b""
                if not piece:
                    break
                chunks.append(piece)
        except http.client.IncompleteRead as exc:
            chunks.append(exc.partial)
            error = exc
        except OSError as exc:
            error = exc
        if error is None and method != "HEAD" and "content-length" in head:
            got = sum(map(len, chunks))
            if got < int(head["content-length"]):
                error = http.client.IncompleteRead(b"".join(chunks), int(head["content-length"]) - got)
        return Response(resp.status, head, b"".join(chunks), time.monotonic() - start, error)
    finally:
        conn.close()
