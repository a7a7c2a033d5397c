"""A flaky or hostile server through the real HTTP source: dropped connections mid-body and 503s
are retried (the proxy's log shows the retries) and the result equals the local file's; a 404,
a server that keeps failing, a redirect loop or chain too long, an https->http downgrade, an
untrusted certificate and a manifest naming another host each end in one clear line (exit 2),
never a traceback or a hang."""

from __future__ import annotations

import json
import shutil
import time
import zlib
from pathlib import Path

import pytest

from holoscope.cli import main
from tests.net.faultproxy import FaultProxy
from tests.net.nginx import NginxServer
from tests.net.streams import write_gsv

SAMPLE = "splats/guitar.compressed.ply"  # 1.48 MB: several 256 KiB parts


def _info(target: str, capsys, *extra: str) -> tuple[int, dict | None, str]:
    rc = main(["info", target, "--json", *extra])
    captured = capsys.readouterr()
    return rc, (json.loads(captured.out) if rc == 0 else None), captured.err


def _one_line_error(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("holoscope: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def local_info(samples_dir: Path) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", str(samples_dir / SAMPLE), "--json"]) == 0
    info = json.loads(out.getvalue())
    info.pop("file")
    return info


NETWORK_KEYS = {"downloaded_bytes", "http_requests", "http_retries", "cache_hit_bytes"}  # info of a URL only


def _same(info: dict, local_info: dict) -> bool:
    info = {k: v for k, v in info.items() if k not in NETWORK_KEYS}
    info.pop("file")
    return info == local_info


# -- recovery --------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_dropped_connections_mid_body_are_retried(reset, proxy: FaultProxy, local_info, capsys) -> None:
    proxy.drop_after(r"guitar", 100_000, times=2, reset=reset)
    rc, info, err = _info(proxy.url(f"samples/{SAMPLE}"), capsys)
    assert rc == 0, err
    assert _same(info, local_info)
    log = proxy.requests("guitar")
    dropped = [r for r in log if r.fault.startswith("drop")]
    assert len(dropped) == 2
    # every dropped request's range was asked for again, from where it stopped or from its start
    after = log[log.index(dropped[-1]) + 1:]
    assert after and all(r.status in (200, 206) for r in after)


def test_503_is_retried_after_retry_after(proxy: FaultProxy, local_info, capsys) -> None:
    proxy.fail(r"guitar", 503, times=2, retry_after=1)
    rc, info, err = _info(proxy.url(f"samples/{SAMPLE}"), capsys)
    assert rc == 0, err
    assert _same(info, local_info)
    log = proxy.requests("guitar")
    assert [r.status for r in log[:3]] == [503, 503, log[2].status] and log[2].status in (200, 206)
    assert log[1].start - log[0].end >= 0.9  # Retry-After: 1 honoured
    assert log[2].start - log[1].end >= 0.9


def test_a_server_that_keeps_failing_is_one_error(proxy: FaultProxy, capsys) -> None:
    from holoscope.core.http import configure

    configure(backoff=0.02, max_backoff=0.1)  # the same retries, without the seconds of waiting
    proxy.fail(r"guitar", 503, times=None)
    start = time.monotonic()
    rc, _, err = _info(proxy.url(f"samples/{SAMPLE}"), capsys)
    took = time.monotonic() - start
    assert rc == 2
    _one_line_error(err, "503")
    tries = proxy.requests("guitar")
    assert 2 <= len(tries) <= 10, len(tries)  # retried, and bounded
    assert took < 30


def test_a_missing_file_is_one_line_exit_2(proxy: FaultProxy, capsys) -> None:
    url = proxy.url("samples/splats/no-such-scene.ply")
    rc, _, err = _info(url, capsys)
    assert rc == 2
    _one_line_error(err, url)
    assert len(proxy.requests("no-such-scene")) == 1  # a 404 is not retried


def test_a_404_from_the_proxy_is_one_line_exit_2(proxy: FaultProxy, capsys, tmp_path: Path) -> None:
    proxy.fail(r"guitar", 404, times=None)
    url = proxy.url(f"samples/{SAMPLE}")
    assert main(["render", url, "-o", str(tmp_path / "x.png"), "-q"]) == 2
    _one_line_error(capsys.readouterr().err, url)
    assert not (tmp_path / "x.png").exists()


def test_slow_headers_within_the_timeout_still_open(proxy: FaultProxy, local_info, capsys) -> None:
    proxy.delay(r"guitar", headers=1.0, times=1)
    rc, info, err = _info(proxy.url(f"samples/{SAMPLE}"), capsys)
    assert rc == 0, err
    assert _same(info, local_info)


# -- redirects -------------------------------------------------------------------------------------


def test_a_short_redirect_chain_is_followed(proxy: FaultProxy, local_info, capsys) -> None:
    rc, info, err = _info(proxy.url(f"hop/3/samples/{SAMPLE}"), capsys)
    assert rc == 0, err
    assert _same(info, local_info)


@pytest.mark.parametrize("path", ["loop/samples/" + SAMPLE, "hop/12/samples/" + SAMPLE], ids=["loop", "too-many"])
def test_redirect_loops_and_long_chains_are_one_error(path, proxy: FaultProxy, capsys) -> None:
    rc, _, err = _info(proxy.url(path), capsys)
    assert rc == 2
    _one_line_error(err, "redirect")
    assert len(proxy.requests(r"^/(loop|hop)/")) <= 12


def test_a_redirect_of_the_given_url_to_another_host_is_followed(proxy: FaultProxy, local_info, capsys) -> None:
    """The URL the user gave may move (a CDN); only names a manifest gives are held to its origin."""
    rc, info, err = _info(proxy.url(f"offhost/samples/{SAMPLE}"), capsys)
    assert rc == 0, err
    assert _same(info, local_info)


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def trusted(nginx: NginxServer, monkeypatch: pytest.MonkeyPatch) -> NginxServer:
    """The test server's certificate trusted the way OpenSSL lets a user add one."""
    if not nginx.tls_port:
        pytest.skip("openssl is not installed: no TLS server")
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.ca_file))
    return nginx


def test_https_with_a_trusted_certificate(trusted: NginxServer, local_info, capsys) -> None:
    rc, info, err = _info(trusted.https_url(f"samples/{SAMPLE}"), capsys)
    assert rc == 0, err
    assert _same(info, local_info)


def test_an_untrusted_certificate_is_refused(nginx: NginxServer, capsys) -> None:
    if not nginx.tls_port:
        pytest.skip("openssl is not installed: no TLS server")
    rc, _, err = _info(nginx.https_url(f"samples/{SAMPLE}"), capsys)
    assert rc == 2
    _one_line_error(err, "certificate")


def test_an_https_to_http_downgrade_is_refused(trusted: NginxServer, capsys) -> None:
    rc, _, err = _info(trusted.https_url(f"downgrade/samples/{SAMPLE}"), capsys)
    assert rc == 2
    _one_line_error(err, "http")
    assert "127.0.0.1" in err


# -- a manifest naming another host ---------------------------------------------------------------


def _rewrite_manifest(path: Path, edit) -> None:
    body = json.loads(path.read_text())
    body.pop("crc32")
    edit(body)
    body["crc32"] = zlib.crc32(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    path.write_text(json.dumps(body, indent=1))


@pytest.fixture(scope="module")
def offhost_manifest(streams_dir: Path, fault_proxy: FaultProxy) -> str:
    """A segmented .gsv whose second group's segment is named by an absolute URL on another
    host name (localhost instead of 127.0.0.1, through the proxy so its log would show a
    fetch): the served path of its manifest."""
    folder = streams_dir / "offhost"
    folder.mkdir(exist_ok=True)
    write_gsv(folder, segments=True)
    manifest = folder / "clip-segments" / "manifest.json"

    def edit(body):
        group = body["levels"][0]["header"]["groups"][1]
        group["uri"] = f"http://localhost:{fault_proxy.port}/streams/offhost/clip-segments/{group['uri']}"

    _rewrite_manifest(manifest, edit)
    shutil.rmtree(folder / "clip-plys")
    return "streams/offhost/clip-segments/manifest.json"


def test_a_manifest_naming_another_host_is_refused(offhost_manifest: str, proxy: FaultProxy, tmp_path: Path,
                                                   capsys) -> None:  # fmt: skip
    out = tmp_path / "frames"
    out.mkdir()
    rc = main(["convert", proxy.url(offhost_manifest), str(out / "%04d.ply"), "-q"])
    err = capsys.readouterr().err
    # refused outright, or the group skipped with a warning naming the refusal: never fetched
    assert "localhost" in err and "Traceback" not in err
    assert rc == 2 or len(list(out.iterdir())) == 4
    assert not any("localhost" in r.headers.get("Host", "") for r in proxy.log)


def test_a_manifest_naming_another_host_with_consent(offhost_manifest: str, proxy: FaultProxy, tmp_path: Path,
                                                     capsys) -> None:  # fmt: skip
    out = tmp_path / "frames"
    out.mkdir()
    rc = main(["convert", proxy.url(offhost_manifest), str(out / "%04d.ply"), "-q", "--allow-cross-origin"])
    assert rc == 0, capsys.readouterr().err
    assert len(list(out.iterdir())) == 8


# -- as a real process ------------------------------------------------------------------------------


def _run(*argv: str, env_extra: dict[str, str] | None = None, timeout: float = 60):
    import os
    import subprocess
    import sys

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "holoscope", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


@pytest.mark.parametrize("fault", ["none", "404", "drop-always"])
def test_the_command_exits_promptly_whatever_the_server_does(fault, proxy: FaultProxy, local_info) -> None:
    """In a process of its own (no worker thread may keep it alive): a result, or one line and exit 2."""
    if fault == "404":
        proxy.fail(r"guitar", 404, times=None)
    elif fault == "drop-always":
        proxy.drop_after(r"guitar", 1000, times=None)
    start = time.monotonic()
    done = _run("info", proxy.url(f"samples/{SAMPLE}"), "--json")
    assert time.monotonic() - start < 40
    if fault == "none":
        assert done.returncode == 0, done.stderr
        assert _same(json.loads(done.stdout), local_info)
    else:
        assert done.returncode == 2
        _one_line_error(done.stderr, proxy.url(f"samples/{SAMPLE}"))
