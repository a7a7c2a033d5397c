"""Real PyAV encode/decode tests for holoscope.codecs.video.decode (plain video as a timed medium).

Every clip is generated here with PyAV: a moving stripe pattern with the frame number written
into the top rows as 8 big black/white blocks (bit b of the number in block b), so whichever
frame the decoder hands back can be read off its Y plane.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange

import holoscope.codecs.video.decode as decode
from holoscope.codecs.video.decode import VideoDecoder, copy_plane, hwdec_devices, open_video
from tests import video_reference
from holoscope.core.errors import (
    CorruptStream,
    FormatNotRecognized,
    HoloscopeError,
)
from holoscope.core.frames import VideoFrame
from holoscope.core.media import MediaKind
from holoscope.core.registry import open_media, resolve

W, H = 64, 48
N, FPS = 24, 24


def frame_planes(i: int, width: int = W, height: int = H, chroma: str = "420") -> list[np.ndarray]:
    """Y, U, V for frame ``i``: moving stripes below, the frame number in 8 blocks on top."""
    _, xx = np.mgrid[0:height, 0:width]
    y = (60 + 100 * ((xx + 3 * i) % 32 >= 16)).astype(np.uint8)
    for b in range(8):
        y[0:16, b * 8:(b + 1) * 8] = 220 if (i >> b) & 1 else 30
    cw, ch = {"420": ((width + 1) // 2, (height + 1) // 2), "422": ((width + 1) // 2, height),
              "444": (width, height)}[chroma]
    u = np.full((ch, cw), 128 + (i % 8) * 4, np.uint8)
    v = np.full((ch, cw), 128 - (i % 8) * 4, np.uint8)
    return [y, u, v]


def frame_number(y: np.ndarray) -> int:
    """Read the number back from a Y plane (block means, so lossy coding does not matter)."""
    return sum(int(y[0:16, b * 8:(b + 1) * 8].mean() > 128) << b for b in range(8))


def make_video(
    path: Path,
    codec: str,
    pix_fmt: str = "yuv420p",
    *,
    n: int = N,
    fps: int = FPS,
    width: int = W,
    height: int = H,
    gop: int = 8,
    colorspace: int | None = 1,
    color_range: int | None = None,
    first_pts: int = 0,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``n`` numbered frames with PyAV (``first_pts`` shifts every timestamp)."""
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner otherwise
    opts = dict(options or {})
    if codec == "libx265":
        opts.setdefault("x265-params", "log-level=error")
    if codec == "libsvtav1":
        opts.setdefault("preset", "10")
    if codec == "libvpx-vp9":
        opts.setdefault("deadline", "realtime")
        opts.setdefault("cpu-used", "8")
    chroma = "444" if "444" in pix_fmt else "422" if "422" in pix_fmt else "420"
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        cc = stream.codec_context
        cc.gop_size = gop
        if colorspace is not None:
            cc.colorspace = colorspace
        if color_range is not None:
            cc.color_range = color_range
        for i in range(n):
            planes = frame_planes(i, width, height, chroma)
            if pix_fmt in ("rgb24", "bgr24", "gbrp"):  # grey RGB carrying the same luma pattern
                rgb = np.repeat(planes[0][..., None], 3, axis=-1)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            else:
                frame = av.VideoFrame(width, height, pix_fmt)
                wide = pix_fmt.endswith("10le")  # 10-bit samples in 16-bit words
                for plane, data in zip(frame.planes, planes):
                    dtype = np.uint16 if wide else np.uint8
                    rows = np.frombuffer(plane, dtype).reshape(plane.height, -1)
                    rows[:, : plane.width] = data.astype(dtype) << 2 if wide else data
            frame.pts = first_pts + i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# name -> (file name, encoder, pixel format, extra make_video arguments)
CLIPS = {
    "h264-mp4": ("h264.mp4", "libx264", "yuv420p", {}),
    "hevc-mkv": ("hevc.mkv", "libx265", "yuv420p", {}),
    "av1-webm": ("av1.webm", "libsvtav1", "yuv420p", {}),
    "vp9-webm": ("vp9.webm", "libvpx-vp9", "yuv420p", {}),
    "h264-full-range": ("full.mp4", "libx264", "yuvj420p", {"color_range": 2, "colorspace": 5}),
    "h264-444-mov": ("chroma444.mov", "libx264", "yuv444p", {}),
    "h264-padded-rows": ("padded.mp4", "libx264", "yuv420p", {"width": 70, "height": 38}),
}
EXPECTED = {  # clip -> (codec, VideoFrame pixel format, color range, color matrix)
    "h264-mp4": ("h264", "yuv420p", "limited", "bt709"),
    "hevc-mkv": ("hevc", "yuv420p", "limited", "bt709"),
    "av1-webm": ("av1", "yuv420p", "limited", "bt709"),
    "vp9-webm": ("vp9", "yuv420p", "limited", "bt709"),
    "h264-full-range": ("h264", "yuv420p", "full", "bt601"),
    "h264-444-mov": ("h264", "yuv444p", "limited", "bt709"),
    "h264-padded-rows": ("h264", "yuv420p", "limited", "bt709"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {name: make_video(folder / fname, codec, fmt, **extra)
            for name, (fname, codec, fmt, extra) in CLIPS.items()}


@pytest.fixture(autouse=True)
def _software_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite is deterministic on any machine; hardware tests set the variable themselves.
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "no")


def size_of(name: str) -> tuple[int, int]:
    extra = CLIPS[name][3]
    return extra.get("width", W), extra.get("height", H)


# ---- opening ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLIPS))
def test_open_media_gives_a_timed_video(clips: dict[str, Path], name: str) -> None:
    media = open_media(clips[name])
    try:
        width, height = size_of(name)
        codec, pixel_format, color_range, matrix = EXPECTED[name]
        assert media.kind is MediaKind.VIDEO
        assert (media.format, media.reader) == ("video", "holoscope.pyav")
        assert (media.frame_count, media.fps) == (N, FPS)
        assert media.duration == pytest.approx(1.0)
        assert not media.is_static
        info = media.info
        assert (info["width"], info["height"], info["codec"]) == (width, height, codec)
        assert info["display_aspect"] == pytest.approx(width / height, abs=1e-3)
        assert info["bitrate"] > 0 and info["duration"] == pytest.approx(1.0, abs=0.05)
        assert info["decode_path"] == "software"
        assert (info["color_range"], info["color_matrix"], info["output_format"]) == (color_range, matrix, pixel_format)
        frame = media.frame(0)
        assert isinstance(frame, VideoFrame)
        assert (frame.width, frame.height, frame.pixel_format) == (width, height, pixel_format)
        assert (frame.color_range, frame.color_matrix, frame.sample_aspect) == (color_range, matrix, Fraction(1))
        assert frame.planes[0].shape == (height, width) and frame.planes[0].dtype == np.uint8
        assert frame.bit_depth == info["bit_depth"] == 8  # 8-bit streams stay 8-bit
        cw, ch = (width, height) if pixel_format == "yuv444p" else ((width + 1) // 2, (height + 1) // 2)
        assert frame.planes[1].shape == frame.planes[2].shape == (ch, cw)
    finally:
        media.release()
        media.release()  # twice is fine


def test_matroska_frame_count_is_counted_from_packets(clips: dict[str, Path]) -> None:
    media = open_video(clips["vp9-webm"])
    assert media.frame_count == N and media.info["frame_count_source"] == "counted packets"
    assert open_video(clips["h264-mp4"]).info["frame_count_source"] == "container"


# ---- which frame comes back --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLIPS))
def test_sequential_random_and_from_start(clips: dict[str, Path], name: str) -> None:
    media = open_media(clips[name])
    try:
        frames = list(media.frames_from(0))  # Frame envelopes around VideoFrames
        assert [f.index for f in frames] == list(range(N))
        assert [f.payload.index for f in frames] == list(range(N))  # one source of truth
        assert all(f.device == "cpu" and f.duration == pytest.approx(1 / FPS) for f in frames)
        assert [frame_number(f.payload.planes[0]) for f in frames] == list(range(N))
        assert [f.pts for f in frames] == pytest.approx([i / FPS for i in range(N)], abs=1e-3)
        assert [f.pts for f in frames] == [f.payload.pts for f in frames]

        order = list(range(N)) * 2
        random.Random(name).shuffle(order)
        for i in order:
            frame = media.frame(i)
            assert (frame.index, frame_number(frame.planes[0])) == (i, i)

        for start in (0, 5, 13, N - 1):
            got = list(media.frames_from(start))
            assert [f.index for f in got] == list(range(start, N))
            assert [frame_number(f.payload.planes[0]) for f in got] == list(range(start, N))
    finally:
        media.release()


def test_consecutive_frames_do_not_seek(clips: dict[str, Path]) -> None:
    decoder = VideoDecoder(clips["h264-mp4"])
    try:
        decoder.frame(10)
        seeks = decoder.seek_count
        for i in range(11, N):
            assert frame_number(decoder.frame(i).planes[0]) == i
        assert decoder.seek_count == seeks
        decoder.frame(3)  # backwards needs a seek
        assert decoder.seek_count == seeks + 1
        assert decoder.frame(3) is decoder.frame(3)  # a repeated request is served from the cache
        assert decoder.seek_count == seeks + 1
        list(decoder.frames_from(4))
        assert decoder.seek_count == seeks + 1  # frames_from continued where frame(3) stood
    finally:
        decoder.close()


def test_b_frames_and_a_non_zero_start_time(tmp_path: Path) -> None:
    # x264 uses B-frames by default; every timestamp starts 10 frames late.
    path = make_video(tmp_path / "late.mkv", "libx264", first_pts=10)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.has_b_frames
    media = open_video(path)
    assert media.frame_count == N and media.info["b_frames"]
    assert media.frame(0).pts == 0.0
    assert [frame_number(f.payload.planes[0]) for f in media.frames_from(0)] == list(range(N))
    for i in (17, 2, 9, 23, 0):
        assert frame_number(media.frame(i).planes[0]) == i


def test_out_of_range_and_released(clips: dict[str, Path]) -> None:
    media = open_video(clips["h264-mp4"])
    with pytest.raises(IndexError):
        media.frame(N)
    with pytest.raises(IndexError):
        next(media.frames_from(-1))
    media.release()
    with pytest.raises(HoloscopeError, match="closed"):
        media.frame(1)


# ---- pixels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["h264-mp4", "h264-full-range", "h264-444-mov", "h264-padded-rows", "av1-webm"])
def test_planes_equal_what_pyav_decodes(clips: dict[str, Path], name: str) -> None:
    with av.open(str(clips[name])) as container:
        reference = list(container.decode(video=0))
    if name == "h264-padded-rows":  # the copy really has row padding to skip
        assert any(p.line_size > p.width for p in reference[0].planes)
    media = open_video(clips[name])
    for ref, frame in zip(reference, (f.payload for f in media.frames_from(0))):
        # PyAV's raw copy of the same picture (no conversion for these formats), plane by plane.
        flat = ref.to_ndarray().ravel()
        offset = 0
        for plane, ours in zip(ref.planes, frame.planes):
            size = plane.width * plane.height
            assert np.array_equal(ours, flat[offset:offset + size].reshape(plane.height, plane.width))
            offset += size
        rows = np.frombuffer(ref.planes[0], np.uint8).reshape(-1, ref.planes[0].line_size)
        assert np.array_equal(frame.planes[0], rows[: ref.height, : ref.width])  # Y as stored
        assert all(not p.flags.writeable and p.flags.c_contiguous for p in frame.planes)


def test_copy_plane_skips_line_padding() -> None:
    frame = av.VideoFrame(70, 38, "yuv420p")
    for k, plane in enumerate(frame.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        rows[:] = 255  # padding bytes
        rows[:, : plane.width] = (np.arange(plane.width)[None, :] + k * 7 + np.arange(plane.height)[:, None]) % 200
    for k, plane in enumerate(frame.planes):
        expected = (np.arange(plane.width)[None, :] + k * 7 + np.arange(plane.height)[:, None]) % 200
        assert np.array_equal(copy_plane(plane), expected.astype(np.uint8))


def test_other_source_formats_are_converted_once(tmp_path: Path) -> None:
    # 4:2:2 -> yuv444p through swscale at the same matrix and range: luma unchanged.
    media = open_video(make_video(tmp_path / "c422.mp4", "libx264", "yuv422p", n=6, colorspace=None))
    frame = media.frame(4)
    assert frame.pixel_format == "yuv444p" and frame_number(frame.planes[0]) == 4
    assert (frame.color_range, media.info["color_matrix_source"], frame.color_matrix) == ("limited", "guessed", "bt601")
    with av.open(str(tmp_path / "c422.mp4")) as container:
        ref = list(container.decode(video=0))[4]
    rows = np.frombuffer(ref.planes[0], np.uint8).reshape(-1, ref.planes[0].line_size)
    assert np.array_equal(frame.planes[0], rows[:H, :W])
    # 10-bit 4:2:0 stays 10-bit (uint16 code values, see test_video_high_depth.py), tags unchanged.
    media = open_video(make_video(tmp_path / "ten.mkv", "libx265", "yuv420p10le", n=6))
    frame = media.frame(5)
    assert (frame.pixel_format, frame.color_matrix, frame.color_range) == ("yuv420p", "bt709", "limited")
    assert (frame.bit_depth, frame.planes[0].dtype) == (10, np.uint16)
    assert media.info["decoded_format"] == "yuv420p10le" and frame_number(frame.planes[0] >> 2) == 5
    # RGB (H.264 RGB via libx264rgb) -> rgb24, no matrix.
    media = open_video(make_video(tmp_path / "rgb.mkv", "libx264rgb", "bgr24", n=6, colorspace=None,
                                  options={"qp": "0"}))
    frame = media.frame(3)
    assert frame.pixel_format == "rgb24" and frame.planes[0].shape == (H, W, 3)
    assert frame_number(frame.planes[0][..., 0]) == 3
    assert media.info["color_matrix"] == "rgb" and frame.color_range == "full"


def test_nv12_from_a_hardware_download_is_deinterleaved_exactly() -> None:
    frame = av.VideoFrame(70, 38, "nv12")
    y = np.frombuffer(frame.planes[0], np.uint8).reshape(38, -1)
    uv = np.frombuffer(frame.planes[1], np.uint8).reshape(19, -1)
    y[:, :70] = np.arange(70)[None, :]
    uv[:, :70:2], uv[:, 1:70:2] = 10, 200
    fmt, planes, full, depth = decode._planes_of(frame)
    assert fmt == "yuv420p" and not full and depth == 8
    assert np.array_equal(planes[0], y[:, :70])
    assert (planes[1] == 10).all() and (planes[2] == 200).all() and planes[1].shape == (19, 35)


def test_colour_tags_come_from_the_stream(tmp_path: Path, clips: dict[str, Path]) -> None:
    bt2020 = open_video(make_video(tmp_path / "b2020.mkv", "libx265", n=4, colorspace=9))
    assert (bt2020.info["color_matrix"], bt2020.frame(1).color_matrix) == ("bt2020", "bt2020")
    full = open_video(clips["h264-full-range"])
    assert full.info["pixel_format"] == "yuvj420p" and full.frame(2).color_range == "full"
    untagged = open_video(make_video(tmp_path / "plain.mp4", "libx264", n=4, colorspace=None))
    assert untagged.info["color_matrix_source"] == "guessed"
    assert untagged.frame(0).color_matrix == "bt601"  # SD size: what players assume


def _tagged_yuv444(planes: np.ndarray, colorspace: int, full: bool) -> av.VideoFrame:
    _, h, w = planes.shape
    frame = av.VideoFrame(w, h, "yuv444p")
    for plane, data in zip(frame.planes, planes):
        plane.update(np.pad(data, ((0, 0), (0, plane.line_size - w))).tobytes())
    frame.colorspace = colorspace
    frame.color_range = ColorRange.JPEG if full else ColorRange.MPEG
    return frame


def test_one_colour_matrix_table_for_the_player_and_the_reference_conversion() -> None:
    """Every stream tag converts to the same RGB through the GL renderer's matrix (what the
    player shows) and through read_video_frames' swscale conversion (the reference)."""
    from holoscope.render.gl.video_renderer import LUMA_COEFFICIENTS, yuv_to_rgb_matrix

    assert set(decode._FRAME_MATRIX.values()) == set(LUMA_COEFFICIENTS) == set(decode._MATRIX_TO_SWS)
    rng = np.random.default_rng(7)
    h, w = 16, 64
    for tag, name in sorted(decode._FRAME_MATRIX.items()):
        for full in (False, True):
            planes = rng.integers(0, 256, (3, h, w)).astype(np.uint8)
            if not full:  # inside the legal limited range, where nothing clips
                planes[0] = rng.integers(16, 236, (h, w))
                planes[1:] = rng.integers(16, 241, (2, h, w))
            frame = _tagged_yuv444(planes, tag, full)
            assert video_reference._reference_matrix(frame) == name
            reference = video_reference._to_rgb(frame).astype(np.float64)
            matrix, offset = yuv_to_rgb_matrix(name, "full" if full else "limited")
            shown = np.clip(matrix @ (planes.reshape(3, -1) / 255.0) + offset[:, None], 0, 1) * 255
            diff = np.abs(reference - shown.T.reshape(h, w, 3))
            assert diff.max() <= 1.0, (tag, name, full, diff.max())  # rounding only
    # The check tells the matrices apart: BT.601 numbers are far from a BT.709 conversion.
    planes = np.stack([np.full((h, w), 120), np.full((h, w), 60), np.full((h, w), 200)]).astype(np.uint8)
    reference = video_reference._to_rgb(_tagged_yuv444(planes, 1, False)).astype(np.float64)
    matrix, offset = yuv_to_rgb_matrix("bt601", "limited")
    other = np.clip(matrix @ (planes.reshape(3, -1) / 255.0) + offset[:, None], 0, 1) * 255
    assert np.abs(reference - other.T.reshape(h, w, 3)).max() > 10


# ---- damaged and unusual files ---------------------------------------------------------------------------


def _exercise(path: Path) -> str:
    """Open and decode everything (sequentially and at random); only holoscope errors may escape."""
    try:
        media = open_media(path)
        count = sum(1 for _ in media.frames_from(0))
        for i in random.Random(str(path)).sample(range(media.frame_count), min(8, media.frame_count)):
            media.frame(i)
        media.release()
        return f"ok {count}"
    except HoloscopeError as exc:
        return type(exc).__name__


def test_truncated_files_raise_holoscope_errors(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mp4", "libx264", n=48, container_options={"movflags": "+faststart"})
    data = whole.read_bytes()
    results = []
    for fraction in (0.1, 0.3, 0.5, 0.8, 0.95):
        cut = tmp_path / f"cut{int(fraction * 100)}.mp4"
        cut.write_bytes(data[: int(len(data) * fraction)])
        results.append(_exercise(cut))
    assert all(not r.startswith("ok") for r in results), results
    # The index survives a cut near the end: early frames play, missing ones raise CorruptStream.
    cut = tmp_path / "cut80.mp4"
    media = open_video(cut)
    assert frame_number(media.frame(1).planes[0]) == 1
    with pytest.raises(CorruptStream, match="truncated"):
        media.frame(media.frame_count - 1)
    mkv = make_video(tmp_path / "whole.mkv", "libx265", n=48).read_bytes()
    for fraction in (0.2, 0.6, 0.9):
        cut = tmp_path / f"cut{int(fraction * 100)}.mkv"
        cut.write_bytes(mkv[: int(len(mkv) * fraction)])
        outcome = _exercise(cut)  # a holoscope error or a shorter clip, never a bare av exception
        if outcome.startswith("ok "):
            assert int(outcome.split()[1]) < 48, (fraction, outcome)  # frames past the cut cannot play
        else:
            assert outcome in ("CorruptStream", "EmptyMedia", "FormatNotRecognized"), (fraction, outcome)


@pytest.mark.parametrize("name", ["h264-mp4", "hevc-mkv", "vp9-webm", "av1-webm"])
def test_bit_flips_never_escape_as_bare_av_errors(clips: dict[str, Path], name: str, tmp_path: Path) -> None:
    data = clips[name].read_bytes()
    rng = np.random.default_rng(sum(map(ord, name)))
    outcomes = []
    for k in range(25):
        damaged = bytearray(data)
        for pos in rng.integers(0, len(damaged), 4):
            damaged[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{k}{clips[name].suffix}"
        path.write_bytes(bytes(damaged))
        outcomes.append(_exercise(path))  # any other exception fails the test
    assert outcomes


def test_garbage_after_a_valid_magic_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "fake.mkv"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 4)
    with pytest.raises(CorruptStream):
        open_media(path)


def test_a_file_without_video_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(FormatNotRecognized, match="no video stream.*audio"):
        open_media(path)


# ---- registry --------------------------------------------------------------------------------------------


def test_registry_picks_the_video_reader_by_magic(clips: dict[str, Path], tmp_path: Path) -> None:
    for name in ("h264-mp4", "vp9-webm", "h264-444-mov"):
        renamed = tmp_path / f"{name}.bin"
        shutil.copyfile(clips[name], renamed)
        assert resolve(renamed).name == "video"
        media = open_media(renamed)
        assert media.reader == "holoscope.pyav" and frame_number(media.frame(7).planes[0]) == 7
    swapped = tmp_path / "really_matroska.mp4"
    shutil.copyfile(clips["hevc-mkv"], swapped)
    assert open_media(swapped).info["codec"] == "hevc"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all, just text\n" * 10)
    with pytest.raises(FormatNotRecognized, match="video"):
        open_media(text)


# ---- hardware selection ----------------------------------------------------------------------------------


def _patch_open(monkeypatch: pytest.MonkeyPatch, on_device) -> list[str]:  # noqa: ANN001
    """Replace the hardware branch of _open_container; returns the devices it was asked for."""
    original = decode._open_container
    asked: list[str] = []

    def fake(path: Path, device: str | None = None, **kwargs):  # noqa: ANN202, ANN003
        if device is None:
            return original(path, **kwargs)
        asked.append(device)
        return on_device(path, device)

    monkeypatch.setattr(decode, "_open_container", fake)
    return asked


def test_hwdec_no_means_software(clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "no")
    monkeypatch.setattr(av.codec.hwaccel, "hwdevices_available", lambda: ["cuda"])
    asked = _patch_open(monkeypatch, lambda path, device: pytest.fail("hardware tried with HOLOSCOPE_HWDEC=no"))
    assert hwdec_devices() == []
    media = open_video(clips["h264-mp4"])
    assert media.info["decode_path"] == "software" and asked == []
    assert "hwdec_fallback" not in media.info


def test_hwdec_device_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(av.codec.hwaccel, "hwdevices_available", lambda: ["drm", "vaapi", "cuda"])
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "auto")
    assert hwdec_devices() == ["cuda", "vaapi", "drm"]
    monkeypatch.delenv("HOLOSCOPE_HWDEC")
    assert hwdec_devices()[0] == "cuda"
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "vaapi, cuda")
    assert hwdec_devices() == ["vaapi", "cuda"]
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "videotoolbox")
    assert hwdec_devices() == []


def test_decode_path_names_what_is_in_use(clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever this machine has: "software" or "hardware (<device>)", and the frames are right.
    # (On an H100 this is "hardware (cuda)" for H.264; without a GPU, CUDA fails and it is
    # "software", silently.)
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "auto")
    for name in ("h264-mp4", "hevc-mkv", "vp9-webm", "av1-webm", "h264-444-mov"):
        media = open_video(clips[name])
        assert re.fullmatch(r"software|hardware \([a-z0-9_]+\)", media.info["decode_path"])
        assert [frame_number(f.payload.planes[0]) for f in media.frames_from(0)] == list(range(N))
        assert frame_number(media.frame(13).planes[0]) == 13
        assert media.load_frame.__self__.decode_errors == 0  # a failed attempt leaves no trace
        media.release()


def test_a_failing_device_falls_back_silently(clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "cuda")
    monkeypatch.setattr(av.codec.hwaccel, "hwdevices_available", lambda: ["cuda"])

    def broken(path: Path, device: str) -> None:
        raise av.error.PermissionError(1, "no such device")

    asked = _patch_open(monkeypatch, broken)
    media = open_video(clips["hevc-mkv"])
    assert asked == ["cuda"] and media.info["decode_path"] == "software"
    assert media.info["hwdec_fallback"].startswith("cuda:")
    assert frame_number(media.frame(9).planes[0]) == 9


def test_av1_is_not_tried_on_hardware(clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "cuda")
    monkeypatch.setattr(av.codec.hwaccel, "hwdevices_available", lambda: ["cuda"])
    asked = _patch_open(monkeypatch, lambda path, device: pytest.fail("libdav1d has no hardware path"))
    assert open_video(clips["av1-webm"]).info["decode_path"] == "software" and asked == []


def test_a_device_that_decodes_in_software_is_not_called_hardware(clips: dict[str, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The device opened, but the stream came out of the software decoder (what FFmpeg does
    # with allow_software_fallback for a profile the device lacks, e.g. H.264 4:4:4 on NVDEC).
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "cuda")
    monkeypatch.setattr(av.codec.hwaccel, "hwdevices_available", lambda: ["cuda"])
    asked = _patch_open(monkeypatch, lambda path, device: av.open(str(path)))
    media = open_video(clips["h264-mp4"])
    assert asked == ["cuda"] and media.info["decode_path"] == "software"
    assert "software" in media.info["hwdec_fallback"]


@pytest.mark.parametrize("name", ["h264-mp4", "hevc-mkv", "vp9-webm"])
def test_the_hardware_branch_decodes_and_seeks(clips: dict[str, Path], name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Run the accepted-hardware branch with a software stand-in, so machines without a GPU
    # cover it too (on the H100 the same checks pass with real NVDEC decoding).
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "cuda")
    monkeypatch.setattr(av.codec.hwaccel, "hwdevices_available", lambda: ["cuda"])
    _patch_open(monkeypatch, lambda path, device: av.open(str(path)))
    monkeypatch.setattr(decode, "_decoded_on_device", lambda cc, device: True)
    media = open_video(clips[name])
    assert media.info["decode_path"] == "hardware (cuda)"
    assert [frame_number(f.payload.planes[0]) for f in media.frames_from(0)] == list(range(N))
    for i in (20, 3, 11, 4, 23, 0):
        assert frame_number(media.frame(i).planes[0]) == i


# ---- threads ---------------------------------------------------------------------------------------------


def test_one_media_from_several_threads(clips: dict[str, Path]) -> None:
    media = open_video(clips["hevc-mkv"])
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            rng = random.Random(seed)
            for _ in range(30):
                i = rng.randrange(N)
                assert frame_number(media.frame(i).planes[0]) == i
            assert [frame_number(f.payload.planes[0]) for f in media.frames_from(12)] == list(range(12, N))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    media.release()


def test_the_package_ships_no_test_helpers() -> None:
    from holoscope.codecs.video import output

    for name in ("read_video_frames", "read_image", "probe_video"):
        assert not hasattr(decode, name) and not hasattr(output, name), name
