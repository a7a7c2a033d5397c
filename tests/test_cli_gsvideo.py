"""Gaussian video through the command line: ``encode gsvideo`` (from a folder of PLYs, a V^3
folder or another .gsv; its report), then ``info``, ``convert`` and ``render`` on the .gsv, and
bad options refused in one line with nothing left behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from holoscope.codecs.formats.ply_inria import read_ply
from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.gsv import open_gsv
from holoscope.codecs.gsvideo.v3 import write_v3
from tests.codecs.helpers import random_cloud
from tests.gsvideo_data import coherent_sequence, write_ply_sequence
from tests.video_reference import probe_video

FRAMES = 8
SPLATS = 1500


@pytest.fixture(scope="module")
def clip():
    return coherent_sequence(FRAMES, source=random_cloud(SPLATS, 1, seed=2, profile="sog"), seed=5)


@pytest.fixture(scope="module")
def plys(tmp_path_factory, clip) -> Path:
    folder = tmp_path_factory.mktemp("plys") / "seq"
    write_ply_sequence(clip, folder)
    return folder


@pytest.fixture(scope="module")
def gsv(tmp_path_factory, plys) -> Path:
    """The sequence encoded once with the default preset (no PSNR: that needs GL)."""
    out = tmp_path_factory.mktemp("gsv") / "out.gsv"
    assert main(["encode", "gsvideo", str(plys), "-o", str(out), "--gof", "4", "--no-psnr", "-q"]) == 0
    return out


def report_of(text: str) -> dict[str, str]:
    """The report's lines by their first words."""
    lines = text.splitlines()
    assert lines[0].startswith("wrote "), lines
    return {"wrote": lines[0], **{line.strip().split(":")[0].split(" (")[0]: line.strip() for line in lines[1:]}}


def assert_report(text: str, path: Path, frames: int, groups: int, *, fps: int = 30, sh: bool = True) -> dict[str, str]:
    report = report_of(text)
    plural = "group" if groups == 1 else "groups"
    assert f"{frames} frames in {groups} {plural}" in report["wrote"] and str(path) in report["wrote"]
    size = path.stat().st_size
    bytes_line = next(v for k, v in report.items() if k.replace(",", "").isdigit() or k.endswith("bytes"))
    assert bytes_line.startswith(f"{size:,} bytes: {size / frames / 1e3:,.1f} kB/frame, ")
    assert re.search(rf"\d+\.\d\d Mbit/s at {fps} fps", bytes_line)
    assert "bytes per attribute" in report
    for attr in ("position", "color", "opacity", "scale", "rotation") + (("sh",) if sh else ()):
        assert re.search(rf"\b{attr} [0-9.e+-]+ kB/frame", report["bytes per attribute"]), attr
        assert re.search(rf"\b{attr} [0-9.e+-]+/[0-9.e+-]+", report["error"]), attr
    return report


def test_encode_prints_its_report(plys, tmp_path, capsys):
    out = tmp_path / "x.gsv"
    assert main(["encode", "gsvideo", str(plys), "-o", str(out), "--gof", "4", "--no-psnr"]) == 0
    report = assert_report(capsys.readouterr().out, out, FRAMES, 2)
    assert "rendered PSNR" not in report
    assert "2 index" in report["groups"]
    media = open_gsv(out)
    assert media.frame_count == FRAMES and media.info["group_frames"] == [4, 4] and media.fps == 30


@pytest.mark.gl
def test_encode_measures_rendered_psnr(plys, tmp_path, capsys):
    out = tmp_path / "x.gsv"
    assert main(["encode", "gsvideo", str(plys), "-o", str(out), "--gof", "4", "--preset", "high",
                 "--frames", "2:6"]) == 0  # fmt: skip
    report = assert_report(capsys.readouterr().out, out, 4, 1)
    line = report["rendered PSNR against the input"]
    psnr = float(re.search(r"rendered PSNR against the input: ([0-9.]+) dB \(4 fixed cameras, 320x240\)", line)[1])
    assert psnr > 45, psnr  # measured 55-58 dB (the plan is being tuned)
    # the same measurement made here, on what the file plays, against the frames as read
    from holoscope.render.compare import rendered_psnr

    media = open_gsv(out)
    assert media.info["default_up"] == "-y"  # a PLY sequence's, kept in the file
    reference = [read_ply(plys / f"{i + 1:04d}.ply") for i in range(2, 6)]
    decoded = [f.payload for f in media.frames_from(0)]
    again = rendered_psnr(reference, decoded, size=(320, 240), count=4, up="-y")["psnr"]
    assert again == pytest.approx(psnr, abs=0.006)


def test_info_describes_the_file(gsv, capsys):
    assert main(["info", str(gsv), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    header = container.read_header(gsv.read_bytes(), gsv.stat().st_size, "x")[0]
    assert (info["format"], info["kind"], info["frames"], info["fps"]) == ("gsv", "splat-video", FRAMES, 30)
    assert (info["preset"], info["codec"], info["groups"], info["group_frames"]) == ("medium", "h264", 2, [4, 4])
    assert info["sh_degree"] == 1 and info["splats_min"] == info["splats_max"] == SPLATS
    assert len(info["streams"]) == len(header.streams)
    for text, spec in zip(info["streams"], header.streams):
        assert text.startswith(f"{spec.name} ({spec.codec} {spec.pix_fmt} qp {spec.qp}: "), text
    assert info["file_bytes"] == gsv.stat().st_size
    assert info["bytes_per_frame"] == pytest.approx(gsv.stat().st_size / FRAMES, abs=0.1)
    per_attribute = info["attribute_bytes_per_frame"]
    assert set(per_attribute) == {"position", "color", "opacity", "scale", "rotation", "sh"}
    assert sum(per_attribute.values()) == pytest.approx(sum(info["stream_bytes"].values()) / FRAMES, rel=1e-3)
    assert info["orders"] == {"index": 2, "matched": 0} and info["missing_groups"] == []
    assert info["decode_path"] == "software" and info["layout"] == "file"
    assert main(["info", str(gsv)]) == 0
    text = capsys.readouterr().out
    for label in ("preset", "groups", "streams", "codec", "bytes per frame", "attribute bytes per frame"):
        assert re.search(rf"^{label}\s{{2,}}\S", text, re.MULTILINE), label
    assert re.search(r"^preset\s+medium$", text, re.MULTILINE)


def test_convert_writes_every_frame(gsv, tmp_path, clip):
    out = tmp_path / "frames"
    out.mkdir()
    assert main(["convert", str(gsv), str(out / "%04d.ply"), "-q"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i + 1:04d}.ply" for i in range(FRAMES)]
    played = [f.payload for f in open_gsv(gsv).frames_from(0)]
    for name, cloud, original in zip(names, played, clip):
        ply = read_ply(out / name)
        assert ply.count == SPLATS and ply.sh_degree == 1
        np.testing.assert_allclose(ply.means, cloud.means, rtol=1e-6, atol=1e-6)
        lo, hi = original.means.min(axis=0), original.means.max(axis=0)
        margin = 1e-2 * (hi - lo)  # the decoded Gaussians stay where the input's were
        assert (ply.means.min(axis=0) >= lo - margin).all() and (ply.means.max(axis=0) <= hi + margin).all()


@pytest.mark.gl
def test_render_writes_a_frame_per_video_frame(gsv, tmp_path, capsys):
    out = tmp_path / "x.mp4"
    assert main(["render", str(gsv), "-o", str(out), "--size", "64x48"]) == 0
    assert f"{FRAMES} frames of 64x48 at 30 fps" in capsys.readouterr().out
    info = probe_video(out)
    assert info["frames"] == FRAMES and (info["width"], info["height"]) == (64, 48)


def test_encode_from_a_v3_folder_and_from_a_gsv(clip, gsv, tmp_path, capsys):
    v3 = tmp_path / "v3"
    write_v3(clip, v3, group_size=5, qp=25)
    out = tmp_path / "from-v3.gsv"
    assert main(["encode", "gsvideo", str(v3), "-o", str(out), "--gof", "3", "--no-psnr"]) == 0
    report = assert_report(capsys.readouterr().out, out, FRAMES, 3, sh=False)  # V^3 keeps no SH bands
    assert "sh" not in report["bytes per attribute"] and "SH 0" in report["wrote"]
    media = open_gsv(out)
    assert media.frame_count == FRAMES and media.info["group_frames"] == [3, 3, 2]
    assert media.frame(0).count == SPLATS
    again = tmp_path / "again.gsv"
    segments = tmp_path / "segs"
    assert main(["encode", "gsvideo", str(gsv), "-o", str(again), "--preset", "low", "--segments", str(segments),
                 "--levels", "medium", "--no-psnr"]) == 0  # fmt: skip
    report = assert_report(capsys.readouterr().out, again, FRAMES, 1)
    assert "levels: low " in report["levels"] and "medium" in report["levels"]
    assert str(segments) in report["wrote"]
    media = open_gsv(again)
    assert media.info["preset"] == "low" and media.info["sh_degree"] == 1 and media.frame(7).count == SPLATS
    assert open_gsv(segments).info["levels"][0].startswith("medium")  # the best level first


def test_fps_and_frame_range_of_a_sequence(plys, tmp_path, capsys):
    out = tmp_path / "x.gsv"
    assert main(["encode", "gsvideo", str(plys), "-o", str(out), "--fps", "24", "--frames", "1:6", "--gof", "4",
                 "--no-psnr"]) == 0  # fmt: skip
    assert_report(capsys.readouterr().out, out, 5, 2, fps=24)
    media = open_gsv(out)
    assert media.fps == 24 and media.frame_count == 5 and media.info["group_frames"] == [4, 1]


def test_fps_of_a_v3_input(clip, tmp_path):
    v3 = tmp_path / "v3"
    write_v3(clip[:3], v3, group_size=3, qp=25)
    assert main(["encode", "gsvideo", str(v3), "-o", str(tmp_path / "x.gsv"), "--fps", "24", "--no-psnr", "-q"]) == 0
    assert open_gsv(tmp_path / "x.gsv").fps == 24


BAD = {
    "an unknown preset": (["--preset", "ultra"], "invalid choice: 'ultra'"),
    "no frames per group": (["--gof", "0"], "--gof takes 1..300 frames, got 0"),
    "too many frames per group": (["--gof", "301"], "--gof takes 1..300 frames"),
    "an output that is not .gsv": (["-o", "{tmp}/out.mp4"], "must end in .gsv"),
    "an unknown codec": (["--codec", "vp9"], "invalid choice: 'vp9'"),
    "an unknown level": (["--segments", "{tmp}/segs", "--levels", "ultra"], "unknown preset 'ultra'"),
    "a bad frame range": (["--frames", "6:2"], "frame"),
    "a bad frame rate": (["--fps", "0"], "fps"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_options_are_one_line_and_leave_nothing(name, plys, tmp_path, capsys):
    options, message = BAD[name]
    options = [o.format(tmp=tmp_path) for o in options]
    if "-o" not in options and "--segments" not in options:
        options = ["-o", str(tmp_path / "out.gsv"), *options]
    assert main(["encode", "gsvideo", str(plys), *options]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("holoscope: error: ") and message in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_missing_output_and_inputs_that_are_no_sequence(plys, tmp_path, capsys):
    for argv, message in (([str(plys)], "name the output"),
                          ([str(tmp_path / "none"), "-o", str(tmp_path / "x.gsv")], "none"),
                          ([str(plys / "0001.ply"), "-o", str(tmp_path / "x.gsv")], "not a splat sequence")):  # fmt: skip
        assert main(["encode", "gsvideo", *argv]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("holoscope: error: ") and message in lines[0], lines
        assert list(tmp_path.iterdir()) == []
