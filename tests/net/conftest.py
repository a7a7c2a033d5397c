"""Fixtures of the streaming tests: a private nginx on loopback (session), the fault proxy in
front of it (session; its rules, log and rate reset around every test) and a private HTTP cache
folder for every test. Skipped with the reason when nginx is not installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.net.faultproxy import FaultProxy
from tests.net.nginx import NginxServer, nginx_binary


def _samples_path() -> Path | None:
    env = os.environ.get("HOLOSCOPE_SAMPLES")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "samples"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory):
    """nginx serving ``/samples/`` (the shared samples; an empty folder without them) and
    ``/streams/`` (``streams_dir``: tests write what they encode there), with TLS beside it
    when openssl is installed. Stopped, workers included, at the end of the session."""
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian package nginx-light; .ci/install-system installs it)")
    samples = _samples_path() or tmp_path_factory.mktemp("no-samples")
    streams = tmp_path_factory.mktemp("streams")
    server = NginxServer(tmp_path_factory.mktemp("nginx"), {"samples": samples, "streams": streams},
                         tls=shutil.which("openssl") is not None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def streams_dir(nginx: NginxServer) -> Path:
    """The folder served as ``/streams/``."""
    return nginx.roots["streams"]


@pytest.fixture(scope="session")
def fault_proxy(nginx: NginxServer):
    proxy = FaultProxy("127.0.0.1", nginx.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy(fault_proxy: FaultProxy):
    """The fault proxy with no rules, an empty log and no rate limit (and so left afterwards)."""
    fault_proxy.reset()
    yield fault_proxy
    fault_proxy.reset()


@pytest.fixture(autouse=True)
def http_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HTTP cache folder per test (``HOLOSCOPE_CACHE_DIR``), cache enabled, and a
    fresh program-wide HTTP session (as a new process has: no parts in memory, no policy that
    an earlier ``--no-cache`` left)."""
    folder = tmp_path / "http-cache"
    monkeypatch.setenv("HOLOSCOPE_CACHE_DIR", str(folder))
    monkeypatch.delenv("HOLOSCOPE_NO_CACHE", raising=False)
    fresh_session(monkeypatch)
    yield folder
    fresh_session(monkeypatch)


def fresh_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the program's HTTP session; the next use makes a new one from the environment."""
    try:
        import holoscope.core.http as http
    except ImportError:  # the HTTP source has not landed: nothing to reset
        return
    monkeypatch.setattr(http, "_default", None, raising=False)
