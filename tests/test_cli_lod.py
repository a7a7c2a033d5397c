"""The command line with streamed-LOD scenes: convert PLY -> lod-meta.json, info, render (full
detail by default, --splat-budget for speed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from tests.test_cli import lod4_path, psnr, single_camera_file
from tests.video_reference import read_image


@pytest.fixture(scope="module")
def converted(samples_dir, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-lod")
    ply = samples_dir / "splats" / "lod4.ply"
    out = folder / "scene" / "lod-meta.json"
    assert main(["convert", str(ply), str(out), "-q"]) == 0
    return ply, out


def test_convert_writes_a_scene_info_describes(converted, capsys):
    ply, out = converted
    assert sorted(p.name for p in out.parent.iterdir()) == ["0_0", "1_0", "lod-meta.json"]
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    meta = json.loads(out.read_text())
    assert info["format"] == "lod" and info["splats"] == meta["counts"][0] == 489
    assert info["lod_levels"] == meta["lodLevels"] == 2
    assert info["lod_counts"] == meta["counts"] == [489, 245]
    assert info["lod_files"] == 2 and info["lod_chunks"] == 1
    # the index and the chunk files of the full-detail scene (level 0: the files of 0_0/)
    finest = sum(p.stat().st_size for p in (out.parent / "0_0").iterdir()) + out.stat().st_size
    assert info["file_bytes"] == finest
    assert info["lod_bounds_min"] == [round(v, 6) for v in meta["tree"]["bound"]["min"]]
    # The plain text form names the same things.
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lod levels" in text and "(489, 245)" in text


def test_render_equals_the_full_detail_scene(converted, tmp_path):
    _, out = converted
    # The same splats as a float PLY (holoscope decodes the full-detail scene and writes it).
    same = tmp_path / "same.ply"
    assert main(["convert", str(out), str(same), "-q"]) == 0
    path_file, cams = lod4_path(tmp_path, n=3)
    for i in range(3):
        cam = single_camera_file(tmp_path, cams, i)
        a, b = tmp_path / f"lod{i}.png", tmp_path / f"ply{i}.png"
        assert main(["render", str(out), "-o", str(a), "--camera-path", str(cam), "-q"]) == 0
        assert main(["render", str(same), "-o", str(b), "--camera-path", str(cam), "-q"]) == 0
        assert psnr(read_image(a), read_image(b)) >= 60.0


def test_render_close_to_the_original_ply(converted, tmp_path):
    ply, out = converted
    path_file, cams = lod4_path(tmp_path, n=1)
    cam = single_camera_file(tmp_path, cams, 0)
    a, b = tmp_path / "lod.png", tmp_path / "ply.png"
    assert main(["render", str(out), "-o", str(a), "--camera-path", str(cam), "-q"]) == 0
    assert main(["render", str(ply), "-o", str(b), "--camera-path", str(cam), "-q"]) == 0
    assert psnr(read_image(a), read_image(b)) >= 30.0  # SOG's quantisation only


def test_splat_budget_trades_detail(converted, tmp_path):
    _, out = converted
    path_file, cams = lod4_path(tmp_path, n=1)
    cam = single_camera_file(tmp_path, cams, 0)
    full, cheap, generous = tmp_path / "full.png", tmp_path / "cheap.png", tmp_path / "generous.png"
    assert main(["render", str(out), "-o", str(full), "--camera-path", str(cam), "-q"]) == 0
    assert main(["render", str(out), "-o", str(cheap), "--camera-path", str(cam), "--splat-budget", "300", "-q"]) == 0
    assert main(["render", str(out), "-o", str(generous), "--camera-path", str(cam), "--splat-budget", "100000",
                 "-q"]) == 0  # fmt: skip
    a, b, c = read_image(full), read_image(cheap), read_image(generous)
    assert np.array_equal(a, c)  # a budget above the scene changes nothing
    assert not np.array_equal(a, b) and psnr(a, b) > 15.0  # coarser, but the same scene


def test_budgeted_orbit_video(converted, tmp_path):
    _, out = converted
    video = tmp_path / "orbit.mkv"
    assert main(["render", str(out), "-o", str(video), "--orbit", "3", "--size", "96x64", "--codec", "ffv1",
                 "--splat-budget", "250", "-q"]) == 0  # fmt: skip
    assert video.stat().st_size > 0


@pytest.mark.parametrize("budget", ["0", "-3"])
def test_bad_budget_is_one_line(converted, tmp_path, capsys, budget):
    _, out = converted
    assert main(["render", str(out), "-o", str(tmp_path / "x.png"), "--splat-budget", budget]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--splat-budget" in err[0]
    assert not (tmp_path / "x.png").exists()


def test_budget_on_a_scene_without_levels_is_refused(samples_dir, tmp_path, capsys):
    ply = samples_dir / "splats" / "lod4.ply"
    assert main(["render", str(ply), "-o", str(tmp_path / "x.png"), "--splat-budget", "100"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "streamed-LOD" in err[0]


def test_missing_chunk_is_one_line(converted, tmp_path, capsys):
    import shutil

    _, out = converted
    copy = tmp_path / "copy"
    shutil.copytree(out.parent, copy)
    shutil.rmtree(copy / "0_0")
    assert main(["info", str(copy / "lod-meta.json")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0_0/meta.json" in err[0] and "missing" in err[0]


def test_convert_into_a_missing_folder_tree_fails_cleanly(samples_dir, tmp_path, capsys):
    ply = samples_dir / "splats" / "lod4.ply"
    assert main(["convert", str(ply), str(tmp_path / "a" / "b" / "lod-meta.json")]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
