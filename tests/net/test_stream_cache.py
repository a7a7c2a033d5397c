"""The on-disk cache of downloaded parts, seen from the server: a second ``info``/``render`` of a
URL (in a new session, as a new process starts) downloads no body bytes; ``--no-cache`` and
``HOLOSCOPE_NO_CACHE=1`` download again and write nothing; ``holoscope cache clear`` empties it;
a file changed on the server (a new ETag) is read anew, never served stale."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from tests.net.conftest import fresh_session
from tests.net.faultproxy import FaultProxy

SAMPLE = "splats/guitar.compressed.ply"


def _info(url: str, capsys, *extra: str) -> dict:
    assert main(["info", url, "--json", *extra]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _cached_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _body_gets(proxy: FaultProxy, pattern: str) -> list:
    return [r for r in proxy.requests(pattern) if r.method == "GET" and r.sent > 0]


def test_a_second_info_downloads_nothing(proxy: FaultProxy, http_cache: Path, monkeypatch, capsys) -> None:
    url = proxy.url(f"samples/{SAMPLE}")
    first = _info(url, capsys)
    downloaded = proxy.body_bytes("guitar")
    assert downloaded >= first["file_bytes"] and _cached_bytes(http_cache) >= first["file_bytes"]
    proxy.clear_log()
    fresh_session(monkeypatch)  # as a new process: nothing in memory
    second = _info(url, capsys)
    network = ("downloaded_bytes", "http_requests", "http_retries", "cache_hit_bytes")
    assert {k: v for k, v in second.items() if k not in network} == {k: v for k, v in first.items() if k not in network}
    assert first["downloaded_bytes"] >= first["file_bytes"] and first["cache_hit_bytes"] == 0
    assert second["downloaded_bytes"] == 0 and second["cache_hit_bytes"] >= first["file_bytes"]
    assert _body_gets(proxy, "guitar") == [], [(r.method, r.range, r.status) for r in proxy.log]
    from holoscope.core.http import default_session

    assert default_session().stats()["cache_hits"] > 0


@pytest.mark.gl
def test_a_second_render_downloads_nothing(proxy: FaultProxy, monkeypatch, tmp_path: Path, capsys) -> None:
    url = proxy.url("samples/splats/lod4.ply")
    assert main(["render", url, "-o", str(tmp_path / "a.png"), "--size", "64x48", "-q"]) == 0
    assert proxy.body_bytes("lod4") > 0
    proxy.clear_log()
    fresh_session(monkeypatch)
    assert main(["render", url, "-o", str(tmp_path / "b.png"), "--size", "64x48", "-q"]) == 0
    assert _body_gets(proxy, "lod4") == []
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_no_cache_downloads_again_and_writes_nothing(proxy: FaultProxy, http_cache: Path, monkeypatch,
                                                     capsys) -> None:  # fmt: skip
    url = proxy.url(f"samples/{SAMPLE}")
    _info(url, capsys, "--no-cache")
    assert proxy.body_bytes("guitar") > 0
    assert _cached_bytes(http_cache) == 0
    fresh_session(monkeypatch)
    _info(url, capsys)  # fills the cache
    proxy.clear_log()
    fresh_session(monkeypatch)
    _info(url, capsys, "--no-cache")  # ... which --no-cache does not read
    assert proxy.body_bytes("guitar") > 1_000_000
    proxy.clear_log()
    fresh_session(monkeypatch)
    monkeypatch.setenv("HOLOSCOPE_NO_CACHE", "1")
    _info(url, capsys)
    assert proxy.body_bytes("guitar") > 1_000_000


def test_cache_clear_empties_it(proxy: FaultProxy, http_cache: Path, monkeypatch, capsys) -> None:
    url = proxy.url(f"samples/{SAMPLE}")
    _info(url, capsys)
    held = _cached_bytes(http_cache)
    assert held > 1_000_000
    assert main(["cache", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bytes"] >= 1_000_000 and Path(report["folder"]) == http_cache
    assert main(["cache", "clear"]) == 0
    capsys.readouterr()
    assert _cached_bytes(http_cache) < 4096  # nothing but, at most, empty bookkeeping
    proxy.clear_log()
    fresh_session(monkeypatch)
    _info(url, capsys)
    assert proxy.body_bytes("guitar") > 1_000_000  # downloaded again


def _splats(scale: float, copies: int, samples_dir: Path) -> bytes:
    """minimal.splat (32-byte records: float32 xyz first) with positions scaled, repeated."""
    records = np.frombuffer((samples_dir / "splats" / "minimal.splat").read_bytes(), np.uint8).reshape(-1, 32).copy()
    xyz = records[:, :12].view(np.float32)
    xyz *= scale
    return np.tile(records, (copies, 1)).tobytes()


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "new-size"])
def test_a_changed_file_is_not_served_stale(same_size, proxy: FaultProxy, streams_dir: Path, samples_dir: Path,
                                            monkeypatch, capsys) -> None:  # fmt: skip
    path = streams_dir / f"changing-{same_size}.splat"
    path.write_bytes(_splats(1.0, 1, samples_dir))
    url = proxy.url(f"streams/{path.name}")
    before = _info(url, capsys)
    path.write_bytes(_splats(3.0, 1 if same_size else 2, samples_dir))
    later = time.time() + 10  # nginx's ETag is the mtime in seconds and the size
    os.utime(path, (later, later))
    proxy.clear_log()
    fresh_session(monkeypatch)
    after = _info(url, capsys)
    assert _body_gets(proxy, path.name), "the new version was downloaded"
    assert after["file_bytes"] == path.stat().st_size
    if not same_size:
        assert after["splats"] == 2 * before["splats"]
    bounds = [k for k in before if "bounds" in k and "robust" not in k]
    assert bounds and any(after[k] != before[k] for k in bounds)


def test_a_second_process_reads_the_cache(proxy: FaultProxy, http_cache: Path) -> None:
    """The cache outlives the process: a second ``holoscope info`` downloads no body bytes."""
    import subprocess
    import sys

    url = proxy.url(f"samples/{SAMPLE}")
    env = {**os.environ, "HOLOSCOPE_CACHE_DIR": str(http_cache)}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "holoscope", "info", url, "--json"], capture_output=True,
                              text=True, timeout=60, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs.append((json.loads(done.stdout), proxy.body_bytes("guitar")))
    (first, after_first), (second, after_second) = runs
    assert after_first >= first["file_bytes"]
    assert after_second == after_first  # nothing more came from the server
    assert second["splats"] == first["splats"]
