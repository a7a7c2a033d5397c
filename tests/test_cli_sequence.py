"""Splat sequences through the command line: info, render (frame counts and time alignment with
camera paths) and convert, on the real wave flipbook and on test-made sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from holoscope.cli import main
from holoscope.codecs.formats.ply_inria import read_ply, write_ply
from tests.video_reference import probe_video
from tests.codecs.helpers import blob_cloud
from holoscope.core.camera import OrbitController
from holoscope.core.camera_path import CameraPath, orbit_path, write_camera_path


@pytest.fixture
def sequence(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(6):
        write_ply(blob_cloud(i * 0.2 - 0.5, 100 + 20 * i, i, sh_degree=1, dc=None), folder / f"frame_{i + 1}.ply")
    return folder


def camera_file(tmp_path, n: int, fps: float) -> str:
    cams = orbit_path(OrbitController(np.zeros(3), 4.0), n, width=64, height=48, fov_y=50.0, fps=fps)
    path = tmp_path / f"cams{n}.json"
    write_camera_path(CameraPath(cams.cameras, fps), path)
    return str(path)


def test_info_reports_counts_per_frame(sequence, capsys):
    assert main(["info", str(sequence), "--json", "--fps", "12"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "splat-sequence" and info["frames"] == 6 and info["fps"] == 12
    assert (info["splats_min"], info["splats_median"], info["splats_max"]) == (100, 150, 200)
    assert info["sh_degree"] == 1 and info["file_bytes"] > 0 and info["unreadable_frames"] == []


def test_render_one_frame_per_sequence_frame_and_ranges(sequence, tmp_path):
    out = tmp_path / "out.mp4"
    assert main(["render", str(sequence), "-o", str(out), "--size", "64x48", "--fps", "12", "-q"]) == 0
    info = probe_video(out)
    assert info["frames"] == 6 and abs(float(info["fps"]) - 12) < 1e-6
    part = tmp_path / "part.mp4"
    assert main(["render", str(sequence), "-o", str(part), "--size", "64x48", "--frames", "2:5", "-q"]) == 0
    assert probe_video(part)["frames"] == 3
    frames = tmp_path / "frames"
    frames.mkdir()
    assert main(["render", str(sequence), "-o", str(frames / "%04d.png"), "--size", "64x48", "-q"]) == 0
    assert sorted(p.name for p in frames.iterdir()) == [f"{i:04d}.png" for i in range(6)]


def test_camera_paths_align_in_time(sequence, tmp_path):
    fixed = tmp_path / "fixed.mp4"
    assert main(["render", str(sequence), "-o", str(fixed), "--camera-path", camera_file(tmp_path, 1, 30),
                 "--fps", "6", "-q"]) == 0  # fmt: skip
    assert probe_video(fixed)["frames"] == 6  # a fixed view lasts as long as the sequence
    longer = tmp_path / "longer.mp4"  # 2 s of camera against 1 s of sequence at 6 fps
    assert main(["render", str(sequence), "-o", str(longer), "--camera-path", camera_file(tmp_path, 24, 12),
                 "--fps", "6", "-q"]) == 0  # fmt: skip
    assert probe_video(longer)["frames"] == 12
    assert main(["render", str(sequence), "-o", str(tmp_path / "loop.mp4"), "--orbit", "18", "--fps", "6",
                 "--loop", "--size", "64x48", "-q"]) == 0  # fmt: skip
    assert probe_video(tmp_path / "loop.mp4")["frames"] == 18


def test_convert_writes_every_frame_numbered_from_one(sequence, tmp_path, capsys):
    (sequence / "frame_3.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\nend_header\n")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["convert", str(sequence), str(out / "%04d.spz")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0001.spz", "0002.spz", "0004.spz", "0005.spz", "0006.spz"]
    assert "frame 3 skipped" in capsys.readouterr().err
    plys = tmp_path / "plys"
    plys.mkdir()
    assert main(["convert", str(sequence / "frame_*.ply"), str(plys / "f%d.ply"), "--frames", "3:6", "-q"]) == 0
    assert sorted(p.name for p in plys.iterdir()) == ["f4.ply", "f5.ply", "f6.ply"]
    np.testing.assert_array_equal(read_ply(plys / "f6.ply").means, read_ply(sequence / "frame_6.ply").means)


def test_sequence_errors_are_one_line(sequence, tmp_path, capsys):
    assert main(["convert", str(sequence), str(tmp_path / "single.ply")]) == 2
    assert "numbered" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "none-*.ply"), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "matches no splat frame files" in capsys.readouterr().err
    assert main(["render", str(sequence), "-o", str(tmp_path / "x.mp4"), "--frames", "9:3"]) == 2
    assert list(tmp_path.glob("x.mp4")) == [] and list(tmp_path.glob(".*partial*")) == []


def test_wave_flipbook_renders(samples_dir, tmp_path):
    wave = samples_dir / "splat-sequences" / "wave"
    if not wave.is_dir():
        pytest.skip("the wave sample sequence is not in the samples folder")
    out = tmp_path / "wave.mp4"
    assert main(["render", str(wave), "-o", str(out), "--size", "96x64", "--frames", "0:20", "-q"]) == 0
    assert probe_video(out)["frames"] == 20
