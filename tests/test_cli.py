"""The command line end to end: real files in, real encoded files out, clean errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from tests.video_reference import probe_video, read_image, read_video_frames
from holoscope.core.camera import look_at
from holoscope.core.camera_path import CameraPath, write_camera_path
from holoscope.core.camera import Camera


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def lod4_path(tmp_path: Path, n: int = 5, size=(160, 120)) -> tuple[Path, CameraPath]:
    """A nerfstudio camera path circling lod4's centre (COLMAP scene: up is -Y)."""
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = np.array([2.0 + 4.5 * math.cos(a), 2.0 - 1.5, 4.6 + 4.5 * math.sin(a)])
        cams.append(Camera(size[0], size[1], 50.0, look_at(eye, np.array([2.0, 2.0, 4.6]), np.array([0, -1.0, 0]))))
    cam_path = CameraPath(tuple(cams), fps=10.0)
    path = tmp_path / "camera_path.json"
    write_camera_path(cam_path, path)
    return path, cam_path


def single_camera_file(tmp_path: Path, cam_path: CameraPath, i: int) -> Path:
    path = tmp_path / f"cam{i}.json"
    write_camera_path(CameraPath((cam_path.cameras[i],), cam_path.fps), path)
    return path


def test_render_camera_path_to_video_matches_single_images(samples_dir, tmp_path, capsys):
    ply = samples_dir / "splats" / "lod4.ply"
    path_file, cam_path = lod4_path(tmp_path)
    stills = []
    for i in range(len(cam_path)):
        png = tmp_path / f"still{i}.png"
        assert main(["render", str(ply), "-o", str(png), "--camera-path", str(single_camera_file(tmp_path, cam_path, i))]) == 0
        stills.append(read_image(png))
    assert stills[0].shape == (120, 160, 3) and stills[0].std() > 5, "the camera must see the scene"

    lossless = tmp_path / "out.mkv"
    assert main(["render", str(ply), "-o", str(lossless), "--camera-path", str(path_file), "--codec", "ffv1"]) == 0
    frames = read_video_frames(lossless)
    assert len(frames) == len(cam_path)
    for frame, still in zip(frames, stills):
        assert frame.shape == (120, 160, 3)
        np.testing.assert_array_equal(frame, still)

    h264 = tmp_path / "out.mp4"
    assert main(["render", str(ply), "-o", str(h264), "--camera-path", str(path_file), "--crf", "12"]) == 0
    info = probe_video(h264)
    assert info["frames"] == len(cam_path) and (info["width"], info["height"]) == (160, 120)
    assert abs(float(info["fps"]) - 10.0) < 1e-6
    for frame, still in zip(read_video_frames(h264), stills):
        assert psnr(frame, still) > 30.0
    out = capsys.readouterr()
    assert "Traceback" not in out.err


def test_size_override_sequence_and_orbit(samples_dir, tmp_path):
    ply = samples_dir / "splats" / "lod5.ply"
    path_file, _ = lod4_path(tmp_path, n=3)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    assert main(["render", str(ply), "-o", str(frames_dir / "%04d.png"), "--camera-path", str(path_file), "--size", "96x64"]) == 0
    written = sorted(p.name for p in frames_dir.iterdir())
    assert written == ["0001.png", "0002.png", "0003.png"] or written == ["0000.png", "0001.png", "0002.png"]
    assert read_image(frames_dir / written[0]).shape == (64, 96, 3)

    orbit = tmp_path / "orbit.webm"
    assert main(["render", str(ply), "-o", str(orbit), "--orbit", "4", "--size", "64x48", "--up", "-y", "--fps", "12"]) == 0
    info = probe_video(orbit)
    assert info["frames"] == 4 and info["codec"] in ("av1", "libdav1d", "libaom-av1")
    frames = read_video_frames(orbit)
    assert not np.array_equal(frames[0], frames[2]), "an orbit shows different views"


def test_demo_renders_without_input(tmp_path):
    out = tmp_path / "demo.png"
    assert main(["render", "-o", str(out), "--size", "128x72", "--background", "255,255,255"]) == 0
    img = read_image(out)
    assert img.shape == (72, 128, 3)
    assert (img[0, 0] == 255).all(), "corners show the white background"
    assert img.std() > 10, "the demo scene is visible"


def test_render_up_defaults_to_the_scene_default_and_the_option_wins(samples_dir, tmp_path, capsys):
    """Issue 8: lod4 (INRIA PLY of a COLMAP scene) renders upright with no --up (its default,
    -y, as in the app), and an explicit --up still decides."""
    lod4 = samples_dir / "splats" / "lod4.ply"
    images = {}
    for name, extra in (("default", []), ("-y", ["--up", "-y"]), ("+y", ["--up", "+y"]), ("+z", ["--up", "z"])):
        out = tmp_path / f"lod4{name}.png"
        assert main(["render", str(lod4), "-o", str(out), "--size", "64x48", "-q", *extra]) == 0
        images[name] = read_image(out)
    np.testing.assert_array_equal(images["default"], images["-y"])
    assert not np.array_equal(images["default"], images["+y"])
    assert not np.array_equal(images["+y"], images["+z"])
    # An invalid --up is refused before the scene is read, as before.
    assert main(["render", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "x.png"), "--up", "+w"]) == 2
    assert "up axis" in capsys.readouterr().err


def test_info_json(samples_dir, capsys):
    ply = samples_dir / "splats" / "lod4.ply"
    assert main(["info", str(ply), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "ply" and info["reader"] == "holoscope.ply_inria"
    assert info["splats"] == 489 and info["sh_degree"] == 3
    assert info["bytes_per_splat"] == pytest.approx(ply.stat().st_size / 489, abs=0.01)
    assert all(lo <= hi for lo, hi in zip(info["bounds_min"], info["bounds_max"]))


def _assert_clean_failure(capsys, argv, output: Path | None, needle: str) -> None:
    before = set(output.parent.iterdir()) if output is not None and output.parent.exists() else set()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("holoscope: error:"), err
    assert needle.lower() in err[0].lower()
    if output is not None and output.parent.exists():
        assert set(output.parent.iterdir()) == before, "no partial or temporary output may remain"


def test_bad_inputs_fail_with_one_line(samples_dir, tmp_path, capsys):
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    (tmp_path / "a-folder").mkdir()  # a folder holding no frames: not a scene, not a sequence
    good = samples_dir / "splats" / "lod4.ply"
    data = good.read_bytes()
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    wrong = tmp_path / "wrong.ply"
    wrong.write_bytes(b"GIF89a" + bytes(100))
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(data[: len(data) - 1000])
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:header_end].replace(b"element vertex 489", b"element vertex 999")
    overcount = tmp_path / "overcount.ply"
    overcount.write_bytes(header + data[header_end:])
    zero = tmp_path / "zero.ply"
    zero.write_bytes(data[:header_end].replace(b"element vertex 489", b"element vertex 0"))
    cases = [
        (["render", str(tmp_path / "missing.ply"), "-o", str(out)], "no such file"),
        (["render", str(tmp_path / "a-folder"), "-o", str(out)], "directory"),
        (["render", str(tmp_path), "-o", str(out)], "no frame of the sequence can be read"),  # damaged frames
        (["render", str(empty), "-o", str(out)], "empty"),
        (["render", str(wrong), "-o", str(out)], "supported formats"),
        (["render", str(truncated), "-o", str(out)], "truncated"),
        (["render", str(overcount), "-o", str(out)], "truncated"),
        (["render", str(zero), "-o", str(out)], "zero splats"),
        (["render", str(good), "-o", str(tmp_path / "nope" / "x.mp4")], "does not exist"),
        (["render", str(good), "-o", str(out), "--codec", "mpeg2"], "codec"),
        (["render", str(good), "-o", str(out), "--size", "12x"], "size"),
        (["render", str(good), "-o", str(out), "--size", "161x120"], "even"),
        (["render", str(good), "-o", str(out), "--crf", "99"], "crf"),
        (["render", str(good), "-o", str(out), "--background", "red"], "background"),
        (["render", str(good), "-o", str(out), "--up", "+w"], "up axis"),
        (["render", str(good), "-o", str(tmp_path / "out" / "x.avi")], "avi"),
        (["render", str(good), "-o", str(out), "--camera-path", str(wrong)], "json"),
        (["info", str(wrong)], "supported formats"),
        (["render", str(good), "-o", str(out), "--format", "nosuch"], "unknown format"),
    ]
    for argv, needle in cases:
        _assert_clean_failure(capsys, argv, out, needle)
    assert list(out.parent.iterdir()) == []


def test_nan_splats_are_dropped_with_a_warning(tmp_path, capsys):
    from holoscope.assets.demo import make_demo_cloud
    from holoscope.codecs.formats.ply_inria import write_ply

    cloud = make_demo_cloud()
    cloud.means[:10] = np.nan
    ply = tmp_path / "nan.ply"
    write_ply(cloud, ply)
    out = tmp_path / "nan.png"
    assert main(["render", str(ply), "-o", str(out), "--size", "64x48"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "dropped 10" in err
    assert out.is_file()


def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "holoscope", "--debug", "info", str(tmp_path / "missing.ply")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "SourceNotFound" in proc.stderr


def test_splat_commands_never_import_torch_or_qt(samples_dir, tmp_path):
    code = (
        "import sys\n"
        "from holoscope.cli import main\n"
        f"assert main(['info', {str(samples_dir / 'splats' / 'lod5.ply')!r}]) == 0\n"
        f"assert main(['render', {str(samples_dir / 'splats' / 'lod5.ply')!r}, '-o', {str(tmp_path / 'a.mp4')!r}, '--orbit', '2', '--size', '32x32']) == 0\n"
        "heavy = [m for m in ('torch', 'PySide6') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_formats_listing_and_gui_entry_errors(capsys, tmp_path):
    assert main(["--formats"]) == 0
    out = capsys.readouterr().out
    assert "ply" in out and "read/write" in out and "video" in out and ".mkv" in out
    assert main([str(tmp_path / "missing.ply")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("holoscope: error:") and "no such file" in err


def test_info_describes_a_video(tmp_path, capsys):
    import av

    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "video" and info["reader"] == "holoscope.pyav"
    assert info["frames"] == 10 and info["fps"] == 25 and (info["width"], info["height"]) == (64, 48)
    assert info["codec"] == "h264" and info["decode_path"] in ("software", "hardware (cuda)")
    assert main(["render", str(path), "-o", str(tmp_path / "x.png")]) == 2
    assert "cannot be rendered" in capsys.readouterr().err


@pytest.mark.parametrize("name, fmt", [("out.spz", "spz"), ("out.splat", "splat"), ("out.sog", "sog"), ("out.ply", "ply")])
def test_convert_writes_each_format_and_info_reads_it_back(samples_dir, tmp_path, capsys, name, fmt):
    src = samples_dir / "splats" / "sh3-64.compressed.ply"
    out = tmp_path / name
    assert main(["convert", str(src), str(out)]) == 0
    assert f"({fmt})" in capsys.readouterr().out
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == fmt and info["splats"] == 64


def test_convert_options_and_errors(samples_dir, tmp_path, capsys):
    from holoscope.core.registry import open_media

    src = samples_dir / "splats" / "sh3-64.compressed.ply"
    base = open_media(src).frame(0)
    out = tmp_path / "low.ply"
    assert main(["convert", str(src), str(out), "--sh-degree", "1", "--flip-axes", "y,z", "-q"]) == 0
    assert capsys.readouterr().out == ""
    cloud = open_media(out).frame(0)
    assert cloud.sh_degree == 1
    np.testing.assert_allclose(cloud.means, base.means * np.array([1, -1, -1], np.float32), atol=1e-6)
    v4 = tmp_path / "v4.spz"
    assert main(["convert", str(src), str(v4), "--spz-version", "4"]) == 0
    capsys.readouterr()
    assert main(["info", str(v4), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spz_version"] == 4
    for argv, needle in [
        (["convert", str(src), str(tmp_path / "x.compressed.ply")], "cannot write"),
        (["convert", str(src), str(tmp_path / "x.xyz")], "writable formats"),
        (["convert", str(src), str(tmp_path / "x.ply"), "--flip-axes", "y"], "even number"),
        (["convert", str(src), str(tmp_path / "x.ply"), "--flip-axes", "up"], "flip-axes"),
        (["convert", str(src), str(tmp_path / "x.ply"), "--spz-version", "4"], "spz"),
        (["convert", str(tmp_path / "missing.spz"), str(tmp_path / "x.ply")], "no such file"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("holoscope: error:") and needle in err.lower(), (argv, err)
    assert not (tmp_path / "x.ply").exists() and not (tmp_path / "x.compressed.ply").exists()
