"""High-bit-depth video: 10-, 12- and 16-bit samples reach VideoFrame exactly as encoded.

Every clip is encoded here with PyAV by a lossless encoder (FFV1, x265 ``lossless=1``, x264
``qp=0``) from planes whose neighbouring samples differ by one code value, which 8 bits cannot
represent; the planes holoscope decodes must equal what the encoder received, bit for bit.
Hardware download formats (P010/P016, big-endian words) are built as PyAV frames directly.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

import holoscope.codecs.video.decode as decode
from holoscope.codecs.video.decode import copy_plane16, open_video
from holoscope.core.frames import frame_nbytes

FPS = 24


@pytest.fixture(autouse=True)
def _software(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "no")


def ramp(h: int, w: int, lo: int, hi: int, phase: int) -> np.ndarray:
    """uint16 [h, w] in lo..hi: +1 per column (+7 per row), shifted by ``phase``."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (lo + (xx + 7 * yy + phase) % (hi - lo + 1)).astype(np.uint16)


def source_planes(i: int, w: int, h: int, pix_fmt: str, depth: int) -> list[np.ndarray]:
    """Y, U, V for frame ``i`` inside the limited range of ``depth`` bits (16..235 / 16..240
    times 2^(depth-8)), so the same planes also make sense to a renderer."""
    step = 1 << (depth - 8)
    chroma = "444" if "444" in pix_fmt else "422" if "422" in pix_fmt else "420"
    cw, ch = {"420": ((w + 1) // 2, (h + 1) // 2), "422": ((w + 1) // 2, h), "444": (w, h)}[chroma]
    y = ramp(h, w, 16 * step, 235 * step, 3 * i)
    u = ramp(ch, cw, 16 * step, 240 * step, 5 * i + 11)
    v = ramp(ch, cw, 16 * step, 240 * step, 240 * step - 2 * i)
    if "gray" in pix_fmt:
        return [y]
    return [y, u, v]


def write_planes(frame: av.VideoFrame, planes: list[np.ndarray]) -> None:
    for plane, data in zip(frame.planes, planes):
        rows = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)
        rows[:] = 0xFFFF  # padding must never leak into the copy
        rows[:, : data.shape[1]] = data  # interleaved chroma: two words per sample


def make_clip(path: Path, codec: str, pix_fmt: str, depth: int, *, n: int = 4, w: int = 64, h: int = 48,
              options: dict[str, str] | None = None) -> tuple[Path, list[list[np.ndarray]]]:
    """Encode ``n`` frames of :func:`source_planes`; returns the file and the planes sent."""
    opts = dict(options or {})
    if codec == "libx265":
        opts.setdefault("x265-params", "log-level=error:lossless=1")
    sent = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.colorspace = 1  # BT.709
        stream.codec_context.color_range = 1  # limited
        for i in range(n):
            planes = source_planes(i, w, h, pix_fmt, depth)
            frame = av.VideoFrame(w, h, pix_fmt)
            write_planes(frame, planes)
            frame.pts = i
            sent.append(planes)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path, sent


def needs(codec: str) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")


# codec, input pix_fmt, bits, options, VideoFrame pixel format, (w, h)
LOSSLESS = [
    ("ffv1", "yuv420p10le", 10, {}, "yuv420p", (64, 48)),
    ("ffv1", "yuv420p10le", 10, {}, "yuv420p", (70, 38)),  # padded rows, odd chroma width
    ("ffv1", "yuv444p12le", 12, {}, "yuv444p", (61, 45)),
    ("ffv1", "yuv420p16le", 16, {}, "yuv420p", (64, 48)),
    ("ffv1", "yuv444p16le", 16, {}, "yuv444p", (32, 24)),
    ("libx265", "yuv420p10le", 10, {}, "yuv420p", (64, 48)),
    ("libx265", "yuv444p12le", 12, {}, "yuv444p", (64, 48)),
    ("libx264", "yuv420p10le", 10, {"qp": "0", "preset": "ultrafast"}, "yuv420p", (64, 48)),
]


@pytest.mark.parametrize("codec,pix_fmt,depth,options,out,size", LOSSLESS,
                         ids=[f"{c}-{f}-{s[0]}x{s[1]}" for c, f, _, _, _, s in LOSSLESS])
def test_lossless_clips_decode_bit_exactly(tmp_path: Path, codec, pix_fmt, depth, options, out, size) -> None:
    needs(codec)
    w, h = size
    path, sent = make_clip(tmp_path / "clip.mkv", codec, pix_fmt, depth, w=w, h=h, options=options)
    media = open_video(path)
    assert media.info["decoded_format"] == pix_fmt and media.info["bit_depth"] == depth
    assert media.info["output_format"] == out
    envelopes = list(media.frames_from(0))
    frames = [f.payload for f in envelopes]
    assert len(frames) == len(sent)
    assert all(frame_nbytes(e) == frame_nbytes(e.payload) for e in envelopes)  # an envelope's bytes: its payload's
    for planes, frame in zip(sent, frames):
        assert (frame.pixel_format, frame.bit_depth, frame.color_range, frame.color_matrix) == (
            out, depth, "limited", "bt709")
        assert len(frame.planes) == 3
        for ours, theirs in zip(frame.planes, planes):
            assert ours.dtype == np.uint16 and not ours.flags.writeable and ours.flags.c_contiguous
            assert np.array_equal(ours, theirs)  # exactly what the encoder received
        y = frame.planes[0]
        assert int(y.max()) > 255 and np.any(y & ((1 << (depth - 8)) - 1))  # not 8-bit values
        assert frame_nbytes(frame) == sum(p.size * 2 for p in planes)
    assert np.array_equal(media.frame(2).planes[1], sent[2][1])  # random access too
    media.release()


def test_grey_10_bit_gets_neutral_chroma(tmp_path: Path) -> None:
    needs("libx265")
    path, sent = make_clip(tmp_path / "grey.mkv", "libx265", "gray10le", 10, n=2)
    media = open_video(path)
    frame = media.frame(1)
    assert (frame.pixel_format, frame.bit_depth) == ("yuv420p", 10)
    assert np.array_equal(frame.planes[0], sent[1][0])
    assert frame.planes[1].shape == (24, 32) and (frame.planes[1] == 512).all() and (frame.planes[2] == 512).all()
    media.release()


def test_422_10_bit_is_upsampled_at_10_bits(tmp_path: Path) -> None:
    needs("ffv1")
    path, sent = make_clip(tmp_path / "c422.mkv", "ffv1", "yuv422p10le", 10, n=2)
    frame = open_video(path).frame(1)
    assert (frame.pixel_format, frame.bit_depth) == ("yuv444p", 10)
    assert all(p.dtype == np.uint16 and p.shape == (48, 64) for p in frame.planes)
    assert np.array_equal(frame.planes[0], sent[1][0])  # luma copied
    # chroma: each 4:2:2 sample reappears at its even column, at 10 bits
    assert np.abs(frame.planes[1][:, ::2].astype(int) - sent[1][1]).max() <= 1
    assert np.any(frame.planes[1] & 3)


def test_8_bit_clips_stay_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "eight.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((72, 64), np.uint8), format="yuv420p")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    media = open_video(path)
    frame = media.frame(0)
    assert frame.bit_depth == 8 and media.info["bit_depth"] == 8
    assert all(p.dtype == np.uint8 for p in frame.planes)


# ---- hardware download formats and byte order (PyAV frames built here) --------------------------------


def test_p010_keeps_the_high_10_bits_of_each_word() -> None:
    # P010: every 10-bit sample sits in the HIGH bits of a little-endian 16-bit word.
    frame = av.VideoFrame(70, 38, "p010le")
    y = ramp(38, 70, 64, 940, 0)
    u, v = ramp(19, 35, 64, 960, 3), ramp(19, 35, 64, 960, 500)
    uv = np.stack([u, v], -1).reshape(19, 70)
    write_planes(frame, [y << 6, uv << 6])
    fmt, planes, full, depth = decode._planes_of(frame)
    assert (fmt, full, depth) == ("yuv420p", False, 10)
    for ours, expected in zip(planes, (y, u, v)):
        assert ours.dtype == np.uint16 and np.array_equal(ours, expected)
    assert decode._output_format(frame.format) == "yuv420p"


@pytest.mark.parametrize("name,depth,shift", [("p016le", 16, 0), ("p016be", 16, 0), ("p010be", 10, 6)])
def test_other_semi_planar_words(name: str, depth: int, shift: int) -> None:
    frame = av.VideoFrame(64, 48, name)
    y = ramp(48, 64, 0, (1 << depth) - 1, 9)
    u, v = ramp(24, 32, 0, (1 << depth) - 1, 1000), ramp(24, 32, 0, (1 << depth) - 1, 77)
    words = [y << shift, np.stack([u, v], -1).reshape(24, 64) << shift]
    if name.endswith("be"):
        words = [w.byteswap() for w in words]
    write_planes(frame, words)
    fmt, planes, full, got = decode._planes_of(frame)
    assert (fmt, got) == ("yuv420p", depth)
    for ours, expected in zip(planes, (y, u, v)):
        assert np.array_equal(ours, expected)


def test_big_endian_planar_words_are_swapped() -> None:
    frame = av.VideoFrame(70, 38, "yuv420p10be")
    planes = source_planes(0, 70, 38, "yuv420p10be", 10)
    write_planes(frame, [p.byteswap() for p in planes])
    fmt, ours, _, depth = decode._planes_of(frame)
    assert (fmt, depth) == ("yuv420p", 10)
    assert all(np.array_equal(a, b) and a.dtype == np.uint16 for a, b in zip(ours, planes))


def test_copy_plane16_skips_line_padding() -> None:
    frame = av.VideoFrame(70, 38, "yuv444p12le")
    planes = [ramp(38, 70, 0, 4095, k * 100) for k in range(3)]
    write_planes(frame, planes)  # padding words are 0xFFFF
    assert frame.planes[0].line_size > 70 * 2
    for plane, expected in zip(frame.planes, planes):
        copied = copy_plane16(plane)
        assert copied.dtype == np.uint16 and np.array_equal(copied, expected)


def test_the_budget_counts_16_bit_samples() -> None:
    assert decode._picture_bytes("yuv420p10le", 1920, 1080) == (1920 * 1080 * 3, 1920 * 1080 * 3)
    assert decode._picture_bytes("p010le", 64, 64) == (64 * 64 * 3, 64 * 64 * 3)
    assert decode._picture_bytes("yuv444p12le", 64, 64) == (64 * 64 * 6, 64 * 64 * 6)
    assert decode._picture_bytes("yuv420p", 64, 64) == (64 * 64 * 3 // 2,) * 2



def test_10_bit_hevc_on_the_gpu_equals_software_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NVDEC downloads 10-bit HEVC as P010 (samples in the high bits); after the shift the planes
    # must equal the software decoder's yuv420p10le sample for sample. Runs where CUDA decodes.
    needs("libx265")
    try:
        devices = av.codec.hwaccel.hwdevices_available()
    except Exception:
        devices = []
    if "cuda" not in devices:
        pytest.skip("no CUDA hardware decoding in this FFmpeg build")
    path, _ = make_clip(tmp_path / "hevc10.mkv", "libx265", "yuv420p10le", 10, n=6, w=256, h=144,
                        options={"x265-params": "log-level=error:crf=20"})
    reference = open_video(path)
    software = [f.payload for f in reference.frames_from(0)]
    reference.release()
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "cuda")
    media = open_video(path)
    if media.info["decode_path"] != "hardware (cuda)":
        pytest.skip(f"CUDA did not decode here: {media.info.get('hwdec_fallback')}")
    assert media.info["bit_depth"] == 10
    for soft, hard in zip(software, (f.payload for f in media.frames_from(0))):
        assert hard.bit_depth == soft.bit_depth == 10
        assert all(np.array_equal(a, b) for a, b in zip(hard.planes, soft.planes))
    media.release()
