"""The streaming test bed itself: the private nginx serves files, ranges, validators, rate limits
and redirects as the streaming tests assume, the fault proxy's faults each do what they say, and
nothing is left running afterwards."""

from __future__ import annotations

import os
import ssl
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.net.client import get
from tests.net.faultproxy import FaultProxy
from tests.net.nginx import NginxServer

BLOB_SIZE = 300_000


@pytest.fixture(scope="module")
def blob(streams_dir: Path) -> bytes:
    """A file of known, non-repeating bytes in the served streams folder."""
    data = os.urandom(BLOB_SIZE)
    (streams_dir / "testbed-blob.bin").write_bytes(data)
    return data


# -- nginx -----------------------------------------------------------------------------------


def test_serves_samples_byte_for_byte(nginx: NginxServer, samples_dir: Path) -> None:
    local = (samples_dir / "splats" / "lod4.ply").read_bytes()
    resp = get(nginx.url("samples/splats/lod4.ply"))
    assert resp.status == 200 and resp.body == local
    assert int(resp.headers["content-length"]) == len(local)


def test_ranges_and_validators(nginx: NginxServer, blob: bytes) -> None:
    url = nginx.url("streams/testbed-blob.bin")
    resp = get(url, {"Range": "bytes=1000-1999"})
    assert resp.status == 206 and resp.body == blob[1000:2000]
    assert resp.headers["content-range"] == f"bytes 1000-1999/{BLOB_SIZE}"
    tail = get(url, {"Range": "bytes=-10"})
    assert tail.status == 206 and tail.body == blob[-10:]
    assert get(url, {"Range": f"bytes={BLOB_SIZE}-"}).status == 416
    full = get(url, method="HEAD")
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    assert full.headers["accept-ranges"] == "bytes"
    assert get(url, {"If-None-Match": etag}).status == 304
    assert get(url, {"If-Modified-Since": modified}).status == 304
    # If-Range with the current validator keeps the range, with a stale one sends everything
    assert get(url, {"Range": "bytes=0-9", "If-Range": etag}).status == 206
    stale = get(url, {"Range": "bytes=0-9", "If-Range": '"0-0"'})
    assert stale.status == 200 and stale.body == blob


def test_a_changed_file_gets_a_new_etag(nginx: NginxServer, streams_dir: Path) -> None:
    path = streams_dir / "testbed-changing.bin"
    path.write_bytes(b"a" * 100)
    url = nginx.url("streams/testbed-changing.bin")
    first = get(url, method="HEAD").headers["etag"]
    path.write_bytes(b"b" * 100)
    os.utime(path, (time.time() + 5, time.time() + 5))  # ETag = mtime in seconds + size
    second = get(url)
    assert second.headers["etag"] != first and second.body == b"b" * 100


def test_limit_rate_slows_a_download(nginx: NginxServer, blob: bytes) -> None:
    fast = get(nginx.url("streams/testbed-blob.bin"))
    slow = get(nginx.url(f"rate/{BLOB_SIZE}/streams/testbed-blob.bin"))  # ~1 s of data
    assert fast.body == slow.body == blob
    assert slow.seconds > 0.7, slow.seconds
    assert fast.seconds < slow.seconds / 4
    # a range through the rate location is still a range
    part = get(nginx.url("rate/1000000/streams/testbed-blob.bin"), {"Range": "bytes=5-14"})
    assert part.status == 206 and part.body == blob[5:15]


def test_redirects(nginx: NginxServer, blob: bytes) -> None:
    hop = get(nginx.url("hop/3/streams/testbed-blob.bin"))
    assert hop.status == 302 and hop.headers["location"] == "/hop/2/streams/testbed-blob.bin"
    followed = urllib.request.urlopen(nginx.url("hop/5/streams/testbed-blob.bin"), timeout=10)
    assert followed.url == nginx.url("streams/testbed-blob.bin") and followed.read() == blob
    loop = get(nginx.url("loop/streams/testbed-blob.bin"))
    assert loop.status == 302 and loop.headers["location"] == "/loop/streams/testbed-blob.bin"
    off = get(nginx.url("offhost/streams/testbed-blob.bin"))
    assert off.headers["location"] == f"http://localhost:{nginx.port}/streams/testbed-blob.bin"
    scheme = get(nginx.url("toscheme/streams/testbed-blob.bin"))
    assert scheme.status == 302 and scheme.headers["location"].startswith("https://127.0.0.1:")


def test_tls_server_and_downgrade(nginx: NginxServer, blob: bytes) -> None:
    if not nginx.tls_port:
        pytest.skip("openssl is not installed: no TLS server")
    context = ssl.create_default_context(cafile=str(nginx.ca_file))
    with urllib.request.urlopen(nginx.https_url("streams/testbed-blob.bin"), context=context, timeout=10) as r:
        assert r.read() == blob
    with pytest.raises(urllib.error.URLError):  # not trusted without the test CA
        urllib.request.urlopen(nginx.https_url("streams/testbed-blob.bin"), timeout=10)
    down = get(nginx.https_url("downgrade/streams/testbed-blob.bin"), context=context)
    assert down.status == 302 and down.headers["location"] == nginx.url("streams/testbed-blob.bin")


def test_stop_leaves_no_process(nginx: NginxServer, tmp_path: Path) -> None:  # nginx: skipped without it
    server = NginxServer(tmp_path / "ng", {"files": tmp_path}).start()
    master = server.process.pid
    workers = server.worker_pids()
    assert workers, "nginx runs a master and its workers"
    server.stop()
    for pid in [master, *workers]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid), pid
    with pytest.raises(OSError):
        get(server.url("health"), timeout=2)


def test_nginx_dies_with_a_killed_test_process(nginx: NginxServer, tmp_path: Path) -> None:
    """A test run killed outright (SIGKILL: no teardown, no atexit) leaves no nginx behind."""
    import signal
    import subprocess
    import sys

    code = ("import sys, time; from pathlib import Path; from tests.net.nginx import NginxServer; "
            "s = NginxServer(Path(sys.argv[1]), {'files': Path(sys.argv[1])}).start(); "
            "print(s.process.pid, *s.worker_pids(), flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ng")], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) >= 2
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_state(pid) == "alive" for pid in pids):
        time.sleep(0.05)
    assert all(_state(pid) != "alive" for pid in pids)


def _state(pid: int) -> str:
    try:
        return "zombie" if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z" else "alive"
    except OSError:
        return "gone"


# -- the fault proxy -------------------------------------------------------------------------


def test_proxy_passes_through_and_logs(proxy: FaultProxy, blob: bytes) -> None:
    url = proxy.url("streams/testbed-blob.bin")
    assert get(url).body == blob
    part = get(url, {"Range": "bytes=100-199"})
    assert part.status == 206 and part.body == blob[100:200]
    head = get(url, method="HEAD")
    assert head.status == 200 and int(head.headers["content-length"]) == BLOB_SIZE and "etag" in head.headers
    log = proxy.requests("testbed-blob")
    assert [(r.method, r.range, r.status, r.sent) for r in log] == [
        ("GET", None, 200, BLOB_SIZE), ("GET", "bytes=100-199", 206, 100), ("HEAD", None, 200, 0)]
    # a relative redirect keeps the client behind the proxy
    assert get(proxy.url("hop/1/streams/testbed-blob.bin")).headers["location"] == "/streams/testbed-blob.bin"


def test_proxy_keeps_connections_alive(proxy: FaultProxy, blob: bytes) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for offset in (0, 5000, 70000):
        conn.request("GET", "/streams/testbed-blob.bin", headers={"Range": f"bytes={offset}-{offset + 99}"})
        resp = conn.getresponse()
        assert resp.status == 206 and resp.read() == blob[offset:offset + 100]
    conn.close()
    assert len(proxy.requests("testbed-blob")) == 3


@pytest.mark.parametrize("reset", [False, True])
def test_drop_after_n_body_bytes(proxy: FaultProxy, blob: bytes, reset: bool) -> None:
    proxy.drop_after(r"testbed-blob", 50_000, times=2, reset=reset)
    url = proxy.url("streams/testbed-blob.bin")
    for _ in range(2):
        cut = get(url)
        assert cut.status == 200 and cut.error is not None
        assert cut.body == blob[: len(cut.body)] and len(cut.body) <= 50_000
        if not reset:
            assert len(cut.body) == 50_000
    assert get(url).body == blob  # the rule is used up
    assert [r.sent for r in proxy.requests("testbed-blob")] == [50_000, 50_000, BLOB_SIZE]
    assert proxy.requests("testbed-blob")[0].fault.startswith("drop after 50000")


def test_drop_only_matching_paths(proxy: FaultProxy, blob: bytes, samples_dir: Path) -> None:
    proxy.drop_after(r"testbed-blob", 10, times=None)
    assert get(proxy.url("samples/splats/minimal.splat")).body == (samples_dir / "splats" / "minimal.splat").read_bytes()
    for _ in range(3):
        assert get(proxy.url("streams/testbed-blob.bin")).error is not None


def test_status_faults(proxy: FaultProxy, blob: bytes) -> None:
    proxy.fail(r"testbed-blob", 503, times=2, retry_after=1)
    proxy.fail(r"missing", 404, times=1)
    url = proxy.url("streams/testbed-blob.bin")
    first, second, third = get(url), get(url), get(url)
    assert first.status == second.status == 503 and first.headers["retry-after"] == "1"
    assert third.status == 200 and third.body == blob
    assert get(proxy.url("streams/missing.bin")).status == 404
    assert [r.status for r in proxy.requests("testbed-blob")] == [503, 503, 200]


def test_delays(proxy: FaultProxy, blob: bytes) -> None:
    url = proxy.url("streams/testbed-blob.bin")
    proxy.delay(r"testbed-blob", headers=0.5)
    delayed, normal = get(url, {"Range": "bytes=0-9"}), get(url, {"Range": "bytes=0-9"})
    assert delayed.seconds >= 0.5 and normal.seconds < 0.4
    proxy.delay(r"testbed-blob", pieces=0.1, piece_size=10_000)
    paced = get(url, {"Range": "bytes=0-49999"})  # 5 pieces, 4 gaps
    assert paced.body == blob[:50_000] and paced.seconds >= 0.4


def test_bandwidth_limit_and_raise_during_download(proxy: FaultProxy, blob: bytes) -> None:
    url = proxy.url("streams/testbed-blob.bin")
    proxy.set_rate(600_000)
    limited = get(url)
    assert limited.body == blob and 0.4 < limited.seconds < 1.5, limited.seconds
    # at 50 kB/s the file would take 6 s: lift the limit after 0.5 s
    proxy.set_rate(50_000)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", get(url)))
    thread.start()
    time.sleep(0.5)
    got_so_far = proxy.requests("testbed-blob", wait=False)[-1].sent
    proxy.set_rate(None)
    thread.join(10)
    assert result["r"].body == blob
    assert 10_000 < got_so_far < 60_000, got_so_far
    assert result["r"].seconds < 1.5


def test_bandwidth_is_shared_by_connections(proxy: FaultProxy, blob: bytes) -> None:
    proxy.set_rate(600_000)
    url = proxy.url("streams/testbed-blob.bin")
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(url))) for _ in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    took = time.monotonic() - start
    assert all(r.body == blob for r in results) and len(results) == 2
    assert took > 0.8, took  # 600 kB through one 600 kB/s link: not 0.5 s each side by side
