"""The command line's network edges that need no server: schemes other than http(s), file://
URLs, malformed URLs, the cache command and its size setting."""

from __future__ import annotations

import json

import pytest

from holoscope.cli import main


@pytest.mark.parametrize("url, says", [
    ("ftp://127.0.0.1/x.ply", "only http and https URLs are opened, not ftp://"),
    ("s3://bucket/key.ply", "only http and https URLs are opened, not s3://"),
    ("file://otherhost/x.ply", "on another machine"),
    ("http://[::1", "not a valid URL"),
    ("http://host:99999/x.ply", "not a valid URL"),
])  # fmt: skip
def test_urls_holoscope_will_not_open_are_one_line_errors(url, says, capsys):
    assert main(["info", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err and "Traceback" not in err


def test_a_file_url_opens_the_local_file(samples_dir, capsys):
    path = samples_dir / "splats" / "minimal.splat"
    assert main(["info", path.as_uri(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splats"] == 4


def test_the_cache_size_takes_units(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOLOSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOLOSCOPE_CACHE_BYTES", "64M")
    assert main(["cache", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["limit_bytes"] == 64 << 20 and report["bytes"] == 0
    assert main(["cache", "clear"]) == 0 and "0 bytes freed" in capsys.readouterr().out
