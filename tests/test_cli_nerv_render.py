"""`holoscope render X.nerv`: a neural video's decoded frames to a video, an image or an image
sequence, at the source size or --size, its fps or --fps, --frames selecting frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from tests.video_reference import probe_video, read_image, read_video_frames

torch = pytest.importorskip("torch")

from tests.nerv_data import write_tiny_nerv  # noqa: E402

FRAMES, FPS, WIDTH, HEIGHT = 8, 24, 48, 32


@pytest.fixture(scope="module")
def tiny_nerv(tmp_path_factory) -> Path:
    """A small random HNeRV decoder and embeddings written as a .nerv (fast to decode)."""
    return write_tiny_nerv(tmp_path_factory.mktemp("nerv") / "tiny.nerv", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)


def own_frames(path: Path) -> list[np.ndarray]:
    from holoscope.codecs.inputs import open_input

    media = open_input(path, None)
    try:
        return [media.frame(i).planes[0].copy() for i in range(media.frame_count)]
    finally:
        media.release()


def test_renders_every_frame_to_mp4_at_the_source_size_and_fps(tiny_nerv, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["render", str(tiny_nerv), "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote ") and f"{FRAMES} frames of {WIDTH}x{HEIGHT} at {FPS} fps" in line
    info = probe_video(out)
    assert (info["frames"], info["width"], info["height"]) == (FRAMES, WIDTH, HEIGHT)
    assert info["fps"] == Fraction(FPS) and info["codec"] == "h264"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"], "no temporary file is left"


def test_ffv1_keeps_the_decoded_pixels_exactly(tiny_nerv, tmp_path):
    out = tmp_path / "out.mkv"
    assert main(["render", str(tiny_nerv), "-o", str(out), "--codec", "ffv1", "--fps", "12", "-q"]) == 0
    frames, own = read_video_frames(out), own_frames(tiny_nerv)
    assert len(frames) == FRAMES and probe_video(out)["fps"] == Fraction(12)
    assert frames[0].std() > 1, "the random decoder must draw something"
    for written, decoded in zip(frames, own):
        assert np.array_equal(written, decoded)


def test_image_sequence_size_and_frame_range(tiny_nerv, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    assert main(["render", str(tiny_nerv), "-o", str(folder / "%04d.png"), "-q"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == FRAMES
    assert read_image(folder / names[0]).shape == (HEIGHT, WIDTH, 3)

    resized = tmp_path / "resized.mp4"
    assert main(["render", str(tiny_nerv), "-o", str(resized), "--size", "64x40", "-q"]) == 0
    info = probe_video(resized)
    assert (info["frames"], info["width"], info["height"]) == (FRAMES, 64, 40)

    part = tmp_path / "part.mkv"
    assert main(["render", str(tiny_nerv), "-o", str(part), "--frames", "2:5", "--codec", "ffv1", "-q"]) == 0
    frames, own = read_video_frames(part), own_frames(tiny_nerv)
    assert len(frames) == 3
    assert all(np.array_equal(a, b) for a, b in zip(frames, own[2:5]))


def test_one_image_is_the_first_selected_frame(tiny_nerv, tmp_path):
    png = tmp_path / "still.png"
    assert main(["render", str(tiny_nerv), "-o", str(png), "--frames", "3:", "-q"]) == 0
    assert np.array_equal(read_image(png), own_frames(tiny_nerv)[3])


@pytest.mark.parametrize("extra", [["--orbit", "10"], ["--fov", "40"], ["--background", "1,1,1"], ["--up", "+z"]])
def test_camera_options_are_refused(tiny_nerv, tmp_path, capsys, extra):
    out = tmp_path / "out.mp4"
    assert main(["render", str(tiny_nerv), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert extra[0] in err and "do not apply to neural video" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir()), "nothing is written"


def test_a_bad_frame_range_is_refused(tiny_nerv, tmp_path, capsys):
    assert main(["render", str(tiny_nerv), "-o", str(tmp_path / "x.mp4"), "--frames", "5:2"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_a_damaged_chunk_holds_the_previous_frame(tiny_nerv, tmp_path, caplog):
    import logging

    from holoscope.codecs.nerv import stream
    from holoscope.core.sources import FileSource

    source = FileSource(tiny_nerv)
    header = stream.parse_header(source.head(stream.needed_bytes(source.head(stream.FIXED.size))), tiny_nerv)
    data = bytearray(tiny_nerv.read_bytes())
    chunk = header.chunks[1]  # frames 5..7
    data[chunk.offset + chunk.length // 2] ^= 0x40
    damaged = tmp_path / "damaged.nerv"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        assert main(["render", str(damaged), "-o", str(out), "--codec", "ffv1", "-q"]) == 0
    frames, own = read_video_frames(out), own_frames(tiny_nerv)
    assert len(frames) == FRAMES
    assert all(np.array_equal(frames[i], own[i]) for i in range(5))
    assert all(np.array_equal(frames[i], own[4]) for i in range(5, FRAMES)), "the last good frame is held"
    assert any("previous frame is held" in r.getMessage() for r in caplog.records)
