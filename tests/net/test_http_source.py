"""holoscope's HTTP source (holoscope/core/http.py) against a real nginx, through the fault proxy:
range reads and their parts, the on-disk cache and its validators, retries, redirects, the
origin rules and the size checks."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest

from holoscope.core.errors import CorruptStream, NetworkError, SourceNotFound, SourceUnreadable, UnsafeLocation
from holoscope.core.http import PROBE_BYTES, HttpPolicy, HttpSession, HttpSource
from holoscope.core.http_cache import BLOCK, PartCache

FAST = HttpPolicy(backoff=0.01, max_backoff=0.05, read_timeout=5.0, connect_timeout=2.0)


@pytest.fixture
def blob(streams_dir):
    """A 1.3 MB file of known bytes served as /streams/blob-<n>.bin (a fresh name per test:
    nginx and the sessions must never see an older file of the same name)."""
    name = f"blob-{time.monotonic_ns()}.bin"
    data = np.random.default_rng(7).integers(0, 256, 1_300_001, dtype=np.uint8).tobytes()
    (streams_dir / name).write_bytes(data)
    yield f"streams/{name}", data
    (streams_dir / name).unlink(missing_ok=True)


def session(tmp_path, policy: HttpPolicy = FAST, limit: int | None = None) -> HttpSession:
    return HttpSession(policy, PartCache(tmp_path / "cache", limit))


def test_ranges_equal_the_file_and_come_in_parts(proxy, blob, tmp_path):
    path, data = blob
    src = HttpSource(proxy.url(path), session(tmp_path))
    assert src.size == len(data)
    for offset, length in [(0, 10), (BLOCK - 5, 10), (3 * BLOCK + 7, 2 * BLOCK), (len(data) - 3, 100),
                           (len(data), 10), (0, len(data))]:  # fmt: skip
        assert src.read_range(offset, length) == data[offset : offset + length]
    # every byte was fetched once (each missing run once), but for the probe's first 16 KiB
    assert proxy.body_bytes(path) == len(data) + PROBE_BYTES
    with src.open() as fh:
        fh.seek(-5, io.SEEK_END)
        assert fh.read() == data[-5:]
        fh.seek(1000)
        assert fh.read(20) == data[1000:1020]


def test_a_replay_reads_the_disk_cache_with_one_bodiless_request(proxy, blob, tmp_path):
    path, data = blob
    assert HttpSource(proxy.url(path), session(tmp_path)).read_range(0, len(data)) == data
    proxy.reset()
    again = session(tmp_path)  # a new program run: same cache folder, empty memory
    src = HttpSource(proxy.url(path), again)
    assert src.read_range(0, len(data)) == data
    log = proxy.requests(path)
    assert [r.status for r in log] == [304]  # "still this version?" and nothing else
    assert proxy.body_bytes(path) == 0
    assert again.stats()["cache_hits"] >= len(data) // BLOCK


def test_a_changed_file_is_never_served_from_the_cache(proxy, blob, tmp_path, streams_dir):
    path, data = blob
    HttpSource(proxy.url(path), session(tmp_path)).read_range(0, len(data))
    new = bytes(reversed(data))
    target = streams_dir / path.split("/", 1)[1]
    target.write_bytes(new)
    os.utime(target, (time.time() + 5, time.time() + 5))  # a new Last-Modified, so a new ETag
    assert HttpSource(proxy.url(path), session(tmp_path)).read_range(0, len(new)) == new


def test_a_file_changed_while_read_is_an_error_not_a_mix(proxy, blob, tmp_path, streams_dir):
    path, data = blob
    src = HttpSource(proxy.url(path), session(tmp_path))
    src.read_range(0, 10)
    target = streams_dir / path.split("/", 1)[1]
    target.write_bytes(bytes(reversed(data)))
    os.utime(target, (time.time() + 5, time.time() + 5))
    with pytest.raises(CorruptStream, match="changed on the server"):
        src.read_range(2 * BLOCK, 100)


def test_dropped_connections_and_503s_are_retried(proxy, blob, tmp_path):
    path, data = blob
    sess = session(tmp_path)
    src = HttpSource(proxy.url(path), sess)
    assert src.size == len(data)
    proxy.drop_after(path, 100_000, times=2)
    proxy.fail(path, 503, times=1, retry_after=0)
    assert src.read_range(0, len(data)) == data
    assert sess.stats()["retries"] == 1  # the 503; a cut-off body that brought data resumes at once
    assert len([r for r in proxy.requests(path) if r.fault]) == 3
    # a cut-off body is resumed, not fetched again: little more than the file came down
    assert proxy.body_bytes(path) < len(data) + 250_000


def test_a_server_that_keeps_failing_is_a_network_error(proxy, blob, tmp_path):
    path, _ = blob
    proxy.fail(path, 503, times=None)
    with pytest.raises(NetworkError, match=r"503.*gave up after 5 tries"):
        HttpSource(proxy.url(path), session(tmp_path)).read_range(0, 10)


def test_missing_files_are_not_found_at_once(proxy, tmp_path):
    src = HttpSource(proxy.url("streams/nothing-here.bin"), session(tmp_path))
    assert not src.exists()
    with pytest.raises(SourceNotFound, match="404"):
        src.read_range(0, 1)
    assert len(proxy.requests("nothing-here")) == 1  # no retries for a 404, and exists() answered the read


def test_redirects_are_followed_and_limited(nginx, blob, tmp_path):
    path, data = blob
    assert HttpSource(nginx.url("hop/3/" + path), session(tmp_path)).read_range(5, 5) == data[5:10]
    with pytest.raises(SourceUnreadable, match="too many redirects"):
        HttpSource(nginx.url("loop/" + path), session(tmp_path)).size


def test_relative_names_keep_to_the_origin(nginx, tmp_path):
    src = HttpSource(nginx.url("streams/a/manifest.json"), session(tmp_path))
    assert src.relative("seg/1.bin").url == nginx.url("streams/a/seg/1.bin")
    assert src.relative("../b.bin").url == nginx.url("streams/b.bin")
    with pytest.raises(UnsafeLocation, match="another host"):
        src.relative("http://localhost:1/x.bin")
    with pytest.raises(UnsafeLocation, match="only http and https"):
        src.relative("file:///etc/passwd")
    allowed = HttpSource(nginx.url("streams/a/manifest.json"),
                         session(tmp_path, HttpPolicy(allow_cross_origin=True)))  # fmt: skip
    assert allowed.relative("http://localhost:1/x.bin").url == "http://localhost:1/x.bin"


def test_a_folder_url_reaches_its_files(nginx, blob, tmp_path):
    path, data = blob
    folder, name = path.split("/")
    src = HttpSource(nginx.url(folder + "/"), session(tmp_path))
    assert src.is_folder
    assert src.relative(name).read_range(0, 4) == data[:4]


def test_read_limited_refuses_by_content_length_before_downloading(proxy, blob, tmp_path):
    path, data = blob
    with pytest.raises(CorruptStream, match="larger than"):
        HttpSource(proxy.url(path), session(tmp_path)).read_limited(1000, what="the manifest")
    assert proxy.body_bytes(path) <= PROBE_BYTES  # the probe's first bytes at most


def test_iter_chunks_streams_in_order_and_resumes_after_a_drop(proxy, blob, tmp_path):
    path, data = blob
    proxy.drop_after(path, 400_000, times=2)
    sess = session(tmp_path)
    src = HttpSource(proxy.url(path), sess)
    pieces = list(src.iter_chunks(64 << 10))
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) <= 64 << 10
    # every whole part went to the cache on the way: a second pass downloads nothing
    proxy.reset()
    assert b"".join(HttpSource(proxy.url(path), session(tmp_path)).iter_chunks()) == data
    assert proxy.body_bytes(path) == 0


def test_a_reader_that_stops_early_leaves_the_session_usable(proxy, blob, tmp_path):
    path, data = blob
    sess = session(tmp_path)
    src = HttpSource(proxy.url(path), sess)
    stream = src.iter_chunks(1 << 10, start=BLOCK + 3)
    first = next(stream) + next(stream)
    assert first == data[BLOCK + 3 : BLOCK + 3 + len(first)]
    stream.close()
    assert src.read_range(len(data) - 10, 10) == data[-10:]


def test_the_cache_keeps_within_its_limit_dropping_the_least_recently_used(tmp_path):
    cache = PartCache(tmp_path / "c", limit=10 * 1000)
    for i in range(8):
        cache.put("aa" + "0" * 38, i, bytes(2000))
        time.sleep(0.01)
    assert cache.size() <= 10 * 1000
    assert cache.get("aa" + "0" * 38, 7) is not None  # the newest stays
    assert cache.get("aa" + "0" * 38, 0) is None  # the oldest went first
    assert cache.clear() > 0 and cache.size() == 0


def test_a_server_that_stops_answering_times_out_and_is_retried(proxy, blob, tmp_path):
    path, data = blob
    proxy.delay(path, headers=1.5, times=2)  # longer than the read timeout, twice
    policy = HttpPolicy(backoff=0.01, max_backoff=0.05, read_timeout=0.4, connect_timeout=1.0)
    sess = session(tmp_path, policy)
    began = time.monotonic()
    assert HttpSource(proxy.url(path), sess).read_range(0, 100) == data[:100]
    assert sess.stats()["retries"] == 2
    assert time.monotonic() - began < 5
    proxy.delay(path, headers=1.5, times=None)
    with pytest.raises(NetworkError, match="timed out"):
        HttpSource(proxy.url(path), session(tmp_path / "other", HttpPolicy(retries=1, read_timeout=0.3))).size


def test_a_folder_url_without_its_slash_opens_as_the_folder(proxy, streams_dir):
    from holoscope.codecs.builtin import register_builtin_formats
    from holoscope.codecs.gsvideo.v3 import write_v3
    from holoscope.codecs.inputs import open_input
    from tests.codecs.helpers import blob_cloud

    register_builtin_formats()
    folder = streams_dir / "plain-v3"
    if not folder.exists():
        write_v3([blob_cloud(0.1 * i, n=100, seed=i) for i in range(2)], folder, group_size=2)
    media = open_input(proxy.url("streams/plain-v3"))  # nginx answers 301 to "plain-v3/"
    try:
        assert media.format == open_input(folder).format and media.frame_count == 2
        assert media.frame(1).count == 100
    finally:
        media.release()


def test_a_body_sent_compressed_against_the_request_is_refused(tmp_path):
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = gzip.compress(b"ply\n" * 100)

    class Gzipping(BaseHTTPRequestHandler):
        def do_GET(self):  # ignores Accept-Encoding: identity, as a misconfigured server might
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gzipping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = HttpSource(f"http://127.0.0.1:{server.server_address[1]}/x.ply", session(tmp_path))
        with pytest.raises(SourceUnreadable, match="gzip-encoded"):
            src.head(4)
    finally:
        server.shutdown()
        server.server_close()


# Servers that bend the rules: ranges capped, weak ETags, no Range at all, a body cut short ------


class _Quirky:
    """A loopback server of one file with a quirk: ``cap`` (the most bytes one range answer
    holds, as some CDNs do), ``etag`` (sent as is, weak or strong; If-Range compared strongly,
    as nginx does), ``ranges`` (False: every answer is 200 with the whole file), ``cut`` (close
    after that many body bytes, once)."""

    def __init__(self, data: bytes, *, cap=None, etag='"v1"', ranges=True, cut=None, trickle=False):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        quirky = self
        self.data, self.cap, self.etag, self.ranges, self.cut = data, cap, etag, ranges, cut
        self.trickle = trickle
        self.requests = []
        self.paths = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                quirky.requests.append(self.headers.get("Range"))
                quirky.paths.append(self.path)
                data, rng = quirky.data, self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if if_range is not None and (if_range.startswith("W/") or if_range != quirky.etag):
                    rng = None  # a failed (or weak) If-Range: the whole file
                if rng and quirky.ranges:
                    lo, _, hi = rng.split("=")[1].partition("-")
                    lo, hi = int(lo), min(int(hi) if hi else len(data) - 1, len(data) - 1)
                    if quirky.cap:
                        hi = min(hi, lo + quirky.cap - 1)
                    body = data[lo : hi + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", quirky.etag)
                self.end_headers()
                if quirky.trickle and rng and not rng.startswith("bytes=0-"):
                    # after the first request: ten bytes every 50 ms, each well within any read timeout
                    try:
                        for i in range(0, len(body), 10):
                            self.wfile.write(body[i : i + 10])
                            self.wfile.flush()
                            time.sleep(0.05)
                    except OSError:
                        pass
                    return
                if quirky.cut is not None:
                    cut, quirky.cut = quirky.cut, None
                    self.wfile.write(body[:cut])
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scene%20one.bin"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def quirky():
    made = []

    def make(data, **kw):
        made.append(_Quirky(data, **kw))
        return made[-1]

    yield make
    for server in made:
        server.close()


DATA = np.random.default_rng(3).integers(0, 256, 700_001, dtype=np.uint8).tobytes()


def test_ranges_capped_by_the_server_still_read_right(quirky, tmp_path):
    server = quirky(DATA, cap=65536)
    src = HttpSource(server.url, session(tmp_path))
    assert src.read_range(0, 2 * BLOCK) == DATA[: 2 * BLOCK]
    assert src.read_range(BLOCK + 5, 300_000) == DATA[BLOCK + 5 : BLOCK + 300_005]
    assert b"".join(HttpSource(server.url, session(tmp_path / "b")).iter_chunks(50_000)) == DATA


def test_a_weak_etag_does_not_break_range_reads(quirky, tmp_path):
    server = quirky(DATA, etag='W/"v1"')
    src = HttpSource(server.url, session(tmp_path))
    assert src.read_range(3 * BLOCK, 100) == DATA[3 * BLOCK : 3 * BLOCK + 100]
    assert all(r is not None for r in server.requests)  # every request a range request, answered so


def test_a_server_without_ranges_is_read_whole_and_kept(quirky, tmp_path):
    server = quirky(DATA, ranges=False)
    src = HttpSource(server.url, session(tmp_path, HttpPolicy(use_cache=False, backoff=0.01)))
    assert src.read_range(600_000, 10) == DATA[600_000:600_010]
    assert b"".join(src.iter_chunks(100_000, start=5)) == DATA[5:]
    assert len(server.requests) == 1


def test_a_cut_off_body_from_a_server_without_ranges_is_not_the_file(quirky, tmp_path):
    server = quirky(DATA, ranges=False, cut=40_000)
    src = HttpSource(server.url, session(tmp_path))
    assert src.size == len(DATA)  # the second answer, whole
    assert src.read_range(0, len(DATA)) == DATA


def test_names_are_sent_percent_encoded(quirky, tmp_path):
    server = quirky(DATA)
    url = server.url.replace("%20", " ")  # as typed, or dropped from a browser decoded
    assert HttpSource(url, session(tmp_path)).read_range(0, 4) == DATA[:4]
    assert HttpSource(url.replace("scene one", "sc\u00e8ne \u20ac"), session(tmp_path)).size == len(DATA)
    assert server.paths[0] == "/scene%20one.bin" and server.paths[-1] == "/sc%C3%A8ne%20%E2%82%AC.bin"


def test_a_url_reopened_later_sees_the_new_version(quirky, tmp_path, monkeypatch):
    import holoscope.core.http as http_module

    server = quirky(DATA)
    sess = session(tmp_path)
    assert HttpSource(server.url, sess).read_range(0, 8) == DATA[:8]
    server.data, server.etag = bytes(reversed(DATA)), '"v2"'
    monkeypatch.setattr(http_module, "REVALIDATE_S", 0.0)
    assert HttpSource(server.url, sess).read_range(0, 8) == bytes(reversed(DATA))[:8]


def test_an_empty_file_is_empty_not_a_server_error(nginx, streams_dir, tmp_path):
    (streams_dir / "empty.ply").write_bytes(b"")
    src = HttpSource(nginx.url("streams/empty.ply"), session(tmp_path))
    assert src.size == 0 and src.head(16) == b""


def test_clearing_the_cache_removes_only_what_it_wrote(tmp_path):
    root = tmp_path / "shared-folder"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "keep.txt").write_text("mine")
    cache = PartCache(root, limit=1 << 20)
    cache.put("ab" + "1" * 38, 0, b"x" * 100)
    cache.remember("http://h/x", {"etag": '"1"'})
    assert cache.size() == 100
    assert cache.clear() == 100
    assert (root / "notes" / "keep.txt").read_text() == "mine"
    assert cache.size() == 0 and cache.remembered("http://h/x") is None


def test_a_host_that_does_not_resolve_fails_at_once(tmp_path):
    sess = session(tmp_path)
    began = time.monotonic()
    with pytest.raises(NetworkError):
        HttpSource("http://no-such-host.invalid/x.ply", sess).size
    assert sess.stats()["retries"] == 0 and time.monotonic() - began < 10


def test_https_to_a_plain_http_port_fails_at_once(nginx, tmp_path):
    sess = session(tmp_path)
    with pytest.raises(SourceUnreadable, match="TLS handshake failed"):
        HttpSource(f"https://127.0.0.1:{nginx.port}/samples/splats/lod5.ply", sess).size
    assert sess.stats()["retries"] == 0


def test_info_never_prints_a_password(nginx, capsys):
    from holoscope.cli import main

    url = nginx.url("samples/splats/lod5.ply").replace("http://", "http://ann:secret@")
    assert main(["info", url, "--json"]) == 0
    out = capsys.readouterr().out
    assert "secret" not in out and json.loads(out)["file"] == nginx.url("samples/splats/lod5.ply")


def test_readers_in_several_threads_download_each_part_once(proxy, blob, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path, data = blob
    src = HttpSource(proxy.url(path), session(tmp_path))
    assert src.size == len(data)
    proxy.set_rate(2_000_000)  # slow enough that the threads overlap
    rng = np.random.default_rng(1)
    reads = [(int(o), int(n)) for o, n in zip(rng.integers(0, len(data), 64), rng.integers(1, 300_000, 64))]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda r: src.read_range(*r), reads))
    assert all(g == data[o : o + n] for g, (o, n) in zip(got, reads))
    assert proxy.body_bytes(path) <= len(data) + PROBE_BYTES  # no part twice


def test_a_body_that_trickles_is_given_up_not_waited_for_for_ever(quirky, tmp_path):
    server = quirky(DATA, trickle=True)
    policy = HttpPolicy(backoff=0.01, max_backoff=0.05, read_timeout=0.3, retries=2)
    began = time.monotonic()
    with pytest.raises(NetworkError, match="sends too slowly"):
        HttpSource(server.url, session(tmp_path, policy)).read_range(300_000, 100_000)  # by parts
    with pytest.raises(NetworkError, match="sends too slowly"):
        b"".join(HttpSource(server.url, session(tmp_path / "b", policy)).iter_chunks())  # streamed
    assert time.monotonic() - began < 15
