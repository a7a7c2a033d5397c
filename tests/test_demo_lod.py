"""The built-in streamed-LOD demo (``demo-lod``): the demo scene written as a PlayCanvas
streamed-LOD scene on first use, opened by every command (the app's menu: tests/app/test_lod_view.py)."""

from __future__ import annotations

import json

from holoscope.assets.demo import make_demo_cloud
from holoscope.assets.demo_lod import demo_lod_path
from holoscope.cli import main


def test_the_demo_is_a_streamed_lod_scene_of_the_demo_cloud(capsys):
    path = demo_lod_path()
    assert path.name == "lod-meta.json" and demo_lod_path() == path  # made once, then found
    assert main(["info", "demo-lod", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "lod" and info["splats"] == make_demo_cloud().count
    assert info["lod_levels"] > 2 and info["lod_chunks"] > 4 and info["lod_files"] > info["lod_levels"]


def test_render_and_convert_open_it(tmp_path, capsys):
    full, budget = tmp_path / "full.png", tmp_path / "budget.png"
    assert main(["render", "demo-lod", "-o", str(full), "--size", "64x48", "-q"]) == 0
    assert main(["render", "demo-lod", "-o", str(budget), "--size", "64x48", "--splat-budget", "3000", "-q"]) == 0
    assert full.stat().st_size > 0 and full.read_bytes() != budget.read_bytes()
    out = tmp_path / "demo.ply"
    assert main(["convert", "demo-lod", str(out), "-q"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splats"] == make_demo_cloud().count

