"""Playing a .nerv stream (issue 10): the `nerv` format, its NEURAL_VIDEO Media of rgb24
VideoFrames, damage handling and `holoscope info`."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.nerv import stream
from holoscope.core.errors import CorruptStream
from holoscope.core.frames import FailedFrame, VideoFrame
from holoscope.core.media import MediaKind

torch = pytest.importorskip("torch")

PUBLISHED_PSNR_8BIT = 32.884  # frame 1 against rows 40..679 of bunny-0001.png, output rounded to 8 bits


@pytest.fixture(scope="module")
def bunny_nerv(bunny: Path, tmp_path_factory) -> Path:
    from holoscope.codecs.nerv.neural.importer import import_checkpoint

    out = tmp_path_factory.mktemp("nerv") / "bunny.nerv"
    import_checkpoint(bunny, out)
    return out


@pytest.fixture(scope="module")
def bunny_media(bunny_nerv: Path):
    from holoscope.codecs.builtin import register_builtin_formats
    from holoscope.codecs.inputs import open_input

    register_builtin_formats()
    media = open_input(bunny_nerv, None)
    yield media
    media.release()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()))


def test_bunny_plays_at_the_published_psnr(bunny_media, samples_dir: Path):
    from PIL import Image

    media = bunny_media
    assert media.kind is MediaKind.NEURAL_VIDEO and media.format == "nerv" and media.reader == "holoscope.nerv"
    assert media.frame_count == 132 and media.fps == 30.0
    assert media.info["parameters"] == 1_488_276 and media.info["output_size"] == "1280x640"
    frame = media.frame(0)
    assert isinstance(frame, VideoFrame) and frame.pixel_format == "rgb24"
    assert (frame.width, frame.height, frame.index) == (1280, 640, 0)
    rgb = frame.planes[0]
    assert rgb.shape == (640, 1280, 3) and rgb.dtype == np.uint8
    reference = np.asarray(Image.open(samples_dir / "nerv" / "bunny-0001.png").convert("RGB"))[40:680]
    assert psnr(rgb, reference) == pytest.approx(PUBLISHED_PSNR_8BIT, abs=0.05)


def test_seeking_gives_the_same_picture(bunny_media):
    direct = bunny_media.frame(60)
    first = next(iter(bunny_media.frames_from(60)))
    assert first.index == 60 and first.pts == pytest.approx(2.0)
    assert np.array_equal(first.payload.planes[0], direct.planes[0])


def test_a_damaged_chunk_skips_its_frames_only(bunny_nerv: Path, tmp_path: Path, caplog):
    from holoscope.codecs.nerv.reader import open_nerv
    from holoscope.core.sources import FileSource

    source = FileSource(bunny_nerv)
    header = stream.parse_header(source.head(stream.needed_bytes(source.head(stream.FIXED.size))), bunny_nerv)
    data = bytearray(bunny_nerv.read_bytes())
    data[header.chunks[1].offset + header.chunks[1].length // 2] ^= 0x40
    damaged = tmp_path / "damaged.nerv"
    damaged.write_bytes(bytes(data))
    media = open_nerv(damaged)
    with pytest.raises(CorruptStream, match="embedding chunk 2"):
        media.frame(30)
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        frames = media.frames_from(30)
        failed = [next(frames) for _ in range(30)]
        frames.close()
    assert [f.index for f in failed] == list(range(30, 60))
    assert all(f.failed and isinstance(f.payload, FailedFrame) for f in failed)
    assert len([r for r in caplog.records if "embedding chunk 2" in r.getMessage()]) == 1
    assert media.frame(0).planes[0].shape == (640, 1280, 3)
    assert media.frame(61).index == 61


def test_truncated_or_corrupt_streams_fail_at_open(bunny_nerv: Path, tmp_path: Path):
    from holoscope.codecs.nerv.reader import open_nerv

    data = bunny_nerv.read_bytes()
    cut = tmp_path / "cut.nerv"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(CorruptStream, match="truncated"):
        open_nerv(cut)
    header = stream.parse_header(data[: stream.needed_bytes(data)], cut)
    weights = bytearray(data)
    weights[header.weights.offset + 1000] ^= 1
    bad = tmp_path / "bad.nerv"
    bad.write_bytes(bytes(weights))
    with pytest.raises(CorruptStream, match="weights chunk is damaged"):
        open_nerv(bad)
    bad.write_bytes(data[:10])
    with pytest.raises(CorruptStream):
        open_nerv(bad)
    bad.write_bytes(data[:200])
    with pytest.raises(CorruptStream):
        open_nerv(bad)


def test_holoscope_info_reports_the_stream(bunny_nerv: Path, capsys):
    from holoscope.cli import main

    assert main(["info", str(bunny_nerv)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line.split("  ", 1)[1].strip() for line in out.splitlines() if "  " in line}
    assert lines["format"] == "nerv" and lines["kind"] == "neural-video" and lines["frames"] == "132"
    assert '"family":"hnerv"' in lines["config"] and '"strides":[5,4,4,2,2]' in lines["config"]
    assert lines["parameters"] == "1488276"
    size = bunny_nerv.stat().st_size
    assert float(lines["bits per parameter"]) == pytest.approx(8 * size / 1_488_276, abs=1e-3)
    assert float(lines["bpp"]) == pytest.approx(8 * size / (1280 * 640 * 132), rel=1e-4)
    parts = [int(lines[f"{p} bytes"]) for p in ("header", "weights", "embeddings")]
    assert sum(parts) == size


def test_info_and_registration_import_no_torch(bunny_nerv: Path):
    code = ("import sys, holoscope.cli; from holoscope.codecs.builtin import register_builtin_formats; "
            "register_builtin_formats(); from holoscope.cli import describe; from pathlib import Path; "
            f"describe(Path({str(bunny_nerv)!r})); print('torch' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
