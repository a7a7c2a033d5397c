"""``demo-video`` names the built-in Gaussian video wherever ``demo`` names the demo scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from holoscope import cli
from holoscope.assets.demo_video import demo_video_path
from holoscope.cli import main
from tests.video_reference import probe_video, read_video_frames


def test_render_demo_video(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["render", "demo-video", "-o", str(out), "--size", "64x48", "--frames", "0:6"]) == 0
    assert "6 frames of 64x48" in capsys.readouterr().out
    info = probe_video(out)
    assert (info["frames"], info["width"], info["height"]) == (6, 64, 48)
    frames = read_video_frames(out)
    assert frames[0].std() > 3, "the knot is in view"
    assert abs(frames[5].astype(int) - frames[0].astype(int)).mean() > 0.1, "and it moves"


def test_info_and_convert_take_demo_video(tmp_path, capsys):
    assert main(["info", "demo-video", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "splat-video" and info["frames"] == 60 and info["format"] == "gsv"
    assert Path(info["file"]).name == demo_video_path().name
    (tmp_path / "f").mkdir()
    assert main(["convert", "demo-video", str(tmp_path / "f" / "%02d.ply"), "--frames", "0:2", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["01.ply", "02.ply"]


def test_a_file_named_demo_video_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo-video").write_bytes(b"x")
    assert cli._resolve_input("demo-video") == Path("demo-video")
    assert cli._resolve_input("demo") != Path("demo")


def test_the_gui_entry_opens_the_demo_video(monkeypatch):
    """``holoscope demo-video``: run_gui hands the app the cached file (the app itself is
    tested in tests/app)."""
    opened: list[list[str]] = []
    import holoscope.app.main as app_main

    monkeypatch.setattr(app_main, "run_app", lambda paths: opened.append(paths) or 0)
    assert main(["demo-video"]) == 0
    assert opened == [[str(demo_video_path())]]


@pytest.mark.parametrize("command", ["render", "info", "convert"])
def test_help_names_the_demos(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping inside a name
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "'demo'" in text and "'demo-video'" in text
