"""Real PyAV encode/decode round trips for holoscope.codecs.video.output."""

from __future__ import annotations

import errno
import os
import stat
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import holoscope.codecs.video.output as output_module
from holoscope.codecs.video.output import (
    CODECS,
    ENCODER_BYTES_PER_PIXEL,
    check_output,
    classify_output,
    describe_output,
    encoder_bytes_per_pixel,
    exact_rate,
    open_output,
)
from holoscope.core.camera_path import MAX_FPS, MIN_FPS
from holoscope.core.errors import Cancelled, InvalidArgument, OutputError
from tests.video_reference import probe_video, read_image, read_video_frames

W, H = 64, 48


def gradient_frames(n: int = 5, width: int = W, height: int = H) -> list[np.ndarray]:
    """A smooth RGB gradient that drifts a little each frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        r = 40 + 150 * x / width + 3 * i
        g = 30 + 160 * y / height + 2 * i
        b = 200 - 120 * (x + y) / (width + height)
        frames.append(np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8))
    return frames


def noise_frames(n: int = 3, width: int = W, height: int = H) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def write_all(path: Path, frames: list[np.ndarray], **kwargs) -> None:
    h, w = frames[0].shape[:2]
    with open_output(path, width=w, height=h, fps=kwargs.pop("fps", 30), **kwargs) as sink:
        for frame in frames:
            sink.write(frame)
    assert sink.frames_written == (1 if classify_output(path) == "image" else len(frames))


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---- videos ----------------------------------------------------------------------------------------

VALID_PAIRS = [
    ("h264", "mp4"), ("hevc", "mp4"), ("av1", "mp4"),
    ("h264", "mov"), ("hevc", "mov"),
    ("h264", "mkv"), ("hevc", "mkv"), ("av1", "mkv"), ("ffv1", "mkv"),
    ("av1", "webm"),
]


@pytest.mark.parametrize(("codec", "ext"), VALID_PAIRS)
def test_video_round_trip(tmp_path: Path, codec: str, ext: str) -> None:
    frames = gradient_frames()
    out = tmp_path / f"clip.{ext}"
    write_all(out, frames, codec=codec)

    info = probe_video(out)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (5, W, H, codec)
    assert info["fps"] == 30
    decoded = read_video_frames(out)
    assert len(decoded) == 5 and all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in decoded)
    if codec == "ffv1":
        assert all(np.array_equal(a, b) for a, b in zip(decoded, frames))
    else:
        assert min(psnr(a, b) for a, b in zip(decoded, frames)) > 35
    assert names(tmp_path) == [out.name]  # no temporary left over


def test_ffv1_is_bit_exact_on_noise_and_odd_sizes(tmp_path: Path) -> None:
    frames = noise_frames(width=37, height=23)
    out = tmp_path / "lossless.mkv"
    write_all(out, frames, codec="ffv1", crf=99)  # crf is ignored for a lossless codec
    decoded = read_video_frames(out)
    assert len(decoded) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames))
    assert probe_video(out)["color_matrix"] == "rgb"


@pytest.mark.parametrize(("ext", "expected"), [("mp4", "h264"), ("mov", "h264"), ("mkv", "h264"),
                                               ("webm", "av1")])
def test_default_codec_per_container(tmp_path: Path, ext: str, expected: str) -> None:
    out = tmp_path / f"default.{ext}"
    write_all(out, gradient_frames(2))
    assert probe_video(out)["codec"] == expected


def test_yuv_is_tagged_bt709_limited_and_converted_with_that_matrix(tmp_path: Path) -> None:
    # Saturated patches are where a BT.601/709 mismatch shows (tens of levels off).
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [40, 200, 220],
                       [128, 128, 128]], dtype=np.uint8)
    frame = np.repeat(np.repeat(colors[None], 48, axis=0), 16, axis=1)  # 48 x 96
    out = tmp_path / "patches.mp4"
    write_all(out, [frame] * 2, codec="h264", crf=10)
    info = probe_video(out)
    assert (info["color_matrix"], info["color_range"], info["pix_fmt"]) == ("bt709", "limited", "yuv420p")
    decoded = read_video_frames(out)[0].astype(int)
    for k, color in enumerate(colors):
        patch = decoded[8:40, k * 16 + 4 : k * 16 + 12]  # away from chroma edges
        assert np.abs(patch - color).max() <= 4, (color, patch.mean(axis=(0, 1)))


@pytest.mark.parametrize(("fps", "expected"), [(30, Fraction(30)), (29.97, Fraction(30000, 1001)),
                                               (Fraction(24000, 1001), Fraction(24000, 1001)),
                                               (12.5, Fraction(25, 2))])
def test_fps_is_stored_as_an_exact_rational(tmp_path: Path, fps, expected: Fraction) -> None:
    out = tmp_path / "rate.mp4"
    write_all(out, gradient_frames(3), fps=fps)
    assert probe_video(out)["fps"] == expected


def test_existing_output_is_replaced_only_on_close(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old")
    sink = open_output(out, width=W, height=H, fps=30)
    sink.write(gradient_frames(1)[0])
    assert out.read_bytes() == b"old"
    sink.close()
    assert probe_video(out)["frames"] == 1
    assert names(tmp_path) == ["clip.mp4"]


# ---- images and sequences -----------------------------------------------------------------------


def test_png_round_trips_exactly_and_keeps_only_the_first_frame(tmp_path: Path) -> None:
    frames = noise_frames(3, width=33, height=17)  # odd sizes are fine for PNG
    out = tmp_path / "still.png"
    write_all(out, frames)
    assert np.array_equal(read_image(out), frames[0])
    assert names(tmp_path) == ["still.png"]


def test_jpeg_is_close(tmp_path: Path) -> None:
    frame = gradient_frames(1)[0]
    out = tmp_path / "still.jpg"
    write_all(out, [frame])
    assert psnr(read_image(out), frame) > 35


def test_sequence_writes_numbered_files(tmp_path: Path) -> None:
    frames = noise_frames(4)
    write_all(tmp_path / "frame_%04d.png", frames)
    assert names(tmp_path) == [f"frame_{i:04d}.png" for i in range(4)]
    for i, frame in enumerate(frames):
        assert np.array_equal(read_image(tmp_path / f"frame_{i:04d}.png"), frame)


def test_sequence_start_number_and_plain_percent_d(tmp_path: Path) -> None:
    with open_output(tmp_path / "f%d.png", width=W, height=H, fps=30, start_number=9) as sink:
        for frame in gradient_frames(2):
            sink.write(frame)
    assert names(tmp_path) == ["f10.png", "f9.png"]


@pytest.mark.parametrize(("path", "kind"), [
    ("out.mp4", "video"), ("a/b/OUT.MKV", "video"), ("x.webm", "video"), ("x.mov", "video"),
    ("still.png", "image"), ("still.jpg", "image"), ("100%.png", "image"),
    ("f_%04d.png", "sequence"), ("f_%d.png", "sequence"), ("100%%_%03d.png", "sequence"),
])
def test_classify_output(path: str, kind: str) -> None:
    assert classify_output(path) == kind


def test_classify_output_rejects_unknown_extension() -> None:
    with pytest.raises(InvalidArgument, match=r"\.mp4"):
        classify_output("out.avi")


# ---- option and folder errors -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("x.mp4", {"codec": "vp9"}, "h264, hevc, av1, ffv1"),
    ("x.webm", {"codec": "h264"}, "only av1"),
    ("x.mp4", {"codec": "ffv1"}, r"\.mkv"),
    ("x.mov", {"codec": "av1"}, "h264, hevc"),
    ("x.mp4", {"codec": "h264", "width": 63}, "even.*62x48"),
    ("x.webm", {"height": 47}, "even"),
    ("x.mp4", {"crf": 52}, "0..51"),
    ("x.webm", {"crf": 64}, "0..63"),
    ("x.mp4", {"crf": 18.5}, "integer"),
    ("x.mp4", {"fps": 0}, "fps"),
    ("x.mp4", {"width": 0}, "width"),
    ("x.png", {"codec": "h264"}, "video outputs only"),
    ("x_%04d_%d.png", {}, "exactly one"),
])
def test_bad_options_raise_invalid_argument(tmp_path: Path, name: str, kwargs: dict, match: str) -> None:
    args = {"width": W, "height": H, "fps": 30} | kwargs
    with pytest.raises(InvalidArgument, match=match):
        open_output(tmp_path / name, **args)
    assert names(tmp_path) == []


def test_av1_accepts_crf_up_to_63(tmp_path: Path) -> None:
    write_all(tmp_path / "a.webm", gradient_frames(2), crf=63)
    assert probe_video(tmp_path / "a.webm")["frames"] == 2


def test_missing_parent_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        open_output(tmp_path / "nope" / "out.mp4", width=W, height=H, fps=30)


def test_read_only_parent_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only mode does not stop writes here")
        for name in ("out.mp4", "out.png", "f_%04d.png"):
            with pytest.raises(OutputError, match="not writable"):
                open_output(folder / name, width=W, height=H, fps=30)
    finally:
        folder.chmod(stat.S_IRWXU)


def test_wrong_frame_shape_or_dtype(tmp_path: Path) -> None:
    with open_output(tmp_path / "x.mp4", width=W, height=H, fps=30) as sink:
        for bad in (np.zeros((H, W, 4), np.uint8), np.zeros((W, H, 3), np.uint8),
                    np.zeros((H, W, 3), np.float32), [[0, 0, 0]]):
            with pytest.raises(InvalidArgument, match="uint8"):
                sink.write(bad)  # type: ignore[arg-type]
        sink.write(gradient_frames(1)[0])
    assert probe_video(tmp_path / "x.mp4")["frames"] == 1


# ---- nothing half-written is left behind -------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv", "clip.webm", "still.png", "f_%04d.png"])
@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_exception_in_with_block_leaves_nothing(tmp_path: Path, name: str, exc_type: type) -> None:
    with pytest.raises(exc_type):
        with open_output(tmp_path / name, width=W, height=H, fps=30) as sink:
            for frame in gradient_frames(3):
                sink.write(frame)
            raise exc_type("render failed")
    assert names(tmp_path) == []


def test_aborted_sequence_removes_its_frames_but_not_other_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("unrelated")
    sink = open_output(tmp_path / "f_%04d.png", width=W, height=H, fps=30)
    for frame in gradient_frames(3):
        sink.write(frame)
    assert names(tmp_path) == ["f_0000.png", "f_0001.png", "f_0002.png", "keep.txt"]
    sink.abort()
    assert names(tmp_path) == ["keep.txt"]


def test_abort_keeps_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous render")
    with pytest.raises(RuntimeError):
        with open_output(out, width=W, height=H, fps=30) as sink:
            sink.write(gradient_frames(1)[0])
            raise RuntimeError
    assert out.read_bytes() == b"previous render"
    assert names(tmp_path) == ["clip.mp4"]


def test_write_or_close_after_abort_raises_cancelled(tmp_path: Path) -> None:
    sink = open_output(tmp_path / "clip.mp4", width=W, height=H, fps=30)
    sink.write(gradient_frames(1)[0])
    sink.abort()
    sink.abort()  # idempotent
    with pytest.raises(Cancelled):
        sink.write(gradient_frames(1)[0])
    with pytest.raises(Cancelled):
        sink.close()
    assert names(tmp_path) == []


def test_closing_without_frames_saves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frames"):
        with open_output(tmp_path / "clip.mp4", width=W, height=H, fps=30):
            pass
    assert names(tmp_path) == []


def test_codec_table_names_pyav_encoders() -> None:
    assert {k: v.encoder for k, v in CODECS.items()} == {
        "h264": "libx264", "hevc": "libx265", "av1": "libsvtav1", "ffv1": "ffv1"}
    assert {v.pix_fmt for k, v in CODECS.items() if k != "ffv1"} == {"yuv420p"}


# ---- frame rates: the supported range, stored exactly ------------------------------------------

RATES = [MIN_FPS, 0.0001234, 1 / 60, 1 / 3, 0.7, 12.5, 23.976, 29.97, 47.952, 59.94, 100.5, 239.76,
         Fraction(24000, 1001), 999.999, MAX_FPS]  # fmt: skip


def decoded_rate(path: Path) -> tuple[Fraction, list[float]]:
    """The rate PyAV reports and the decoded frame times in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
        return Fraction(stream.average_rate or stream.guessed_rate), times


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv", "webm"])
def test_every_accepted_rate_comes_back_from_the_file(tmp_path: Path, ext: str) -> None:
    for fps in RATES:
        if ext == "webm" and fps > CODECS["av1"].max_fps:
            continue
        out = tmp_path / f"rate.{ext}"
        write_all(out, gradient_frames(3), fps=fps)
        stored, times = decoded_rate(out)
        expected = exact_rate(fps)
        assert float(expected) == pytest.approx(float(fps), rel=2e-5)  # only NTSC rates move (1e-6)
        # MP4/MOV store the rational itself; Matroska stores nanosecond frame durations, which
        # FFmpeg reduces to a fraction with a numerator <= 30000.
        if ext in ("mp4", "mov"):
            assert stored == expected, fps
        else:
            assert float(stored) == pytest.approx(float(expected), rel=1e-5), fps
        assert len(times) == 3
        steps = np.diff(times)
        tick = 1e-3 if ext in ("mkv", "webm") else 1e-9  # Matroska timestamps are milliseconds
        assert np.all(np.abs(steps - 1 / float(expected)) <= tick + 1e-9 / float(expected)), (fps, times)
    assert names(tmp_path) == [f"rate.{ext}"]


def test_tiny_rate_is_not_collapsed(tmp_path: Path) -> None:
    assert exact_rate(0.0001) == Fraction(1, 10000)  # was written as 24 fps
    assert exact_rate(1 / 3) == Fraction(1, 3)
    assert exact_rate(29.97) == Fraction(30000, 1001)
    assert exact_rate(29.971) == Fraction(29971, 1000)
    assert exact_rate(1.996) == Fraction(499, 250)  # not taken for an NTSC rate
    assert exact_rate(999.999) == Fraction(999999, 1000)  # nor this one for 1001000/1001 = 1000
    assert exact_rate(0.0001234) == pytest.approx(0.0001234, rel=1e-7)


@pytest.mark.parametrize("fps", [0, -30, MIN_FPS * 0.99, 1000.5, 1e300, float("nan"), float("inf"), "30", True])
@pytest.mark.parametrize("name", ["x.mp4", "x.mkv", "x.png", "x_%04d.png"])
def test_out_of_range_rates_are_refused(tmp_path: Path, fps, name: str) -> None:
    with pytest.raises(InvalidArgument, match="fps"):
        open_output(tmp_path / name, width=W, height=H, fps=fps)
    with pytest.raises(InvalidArgument, match="fps"):
        check_output(tmp_path / name, width=W, height=H, fps=fps)
    assert names(tmp_path) == []


def test_av1_rate_limit_is_an_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="av1 encodes at most 240 fps, got 241; use h264, hevc, ffv1"):
        open_output(tmp_path / "x.webm", width=W, height=H, fps=241)
    write_all(tmp_path / "x.mp4", gradient_frames(2), fps=241)  # h264 takes it
    assert names(tmp_path) == ["x.mp4"]


# ---- output names and OS failures --------------------------------------------------------------


def test_check_output_validates_without_creating_anything(tmp_path: Path) -> None:
    assert check_output(tmp_path / "x.mp4", width=W, height=H, fps=30) == "video"
    assert check_output(tmp_path / "f_%03d.png", width=W, height=H, fps=30) == "sequence"
    with pytest.raises(InvalidArgument, match="even"):
        check_output(tmp_path / "x.mp4", width=W + 1, height=H, fps=30)
    assert names(tmp_path) == []


@pytest.mark.parametrize("ext", ["mp4", "png", "%04d.png"])
def test_name_too_long_is_an_output_error(tmp_path: Path, ext: str) -> None:
    out = tmp_path / ("n" * 300 + "." + ext)
    with pytest.raises(OutputError, match="file name too long") as info:
        open_output(out, width=W, height=H, fps=30)
    assert "\n" not in str(info.value) and "nnnn" in str(info.value)
    assert names(tmp_path) == []


@pytest.mark.parametrize("ext", [".mp4", ".png"])
def test_name_at_the_255_byte_limit_works(tmp_path: Path, ext: str) -> None:
    out = tmp_path / ("m" * (255 - len(ext)) + ext)
    write_all(out, gradient_frames(2))
    assert names(tmp_path) == [out.name]


@pytest.mark.parametrize("name", [b"clip\xff.mp4", b"clip\xff.mkv", b"still\xfe.png", b"seq\xff_%02d.png"])
def test_non_utf8_output_names(tmp_path: Path, name: bytes) -> None:
    out = tmp_path / os.fsdecode(name)
    write_all(out, gradient_frames(2))
    written = sorted(os.listdir(os.fsencode(tmp_path)))
    expected = [name % i for i in range(2)] if b"%" in name else [name]
    assert written == expected
    if out.suffix == ".mp4":
        assert probe_video(out)["frames"] == 2


def test_non_utf8_name_in_errors_is_printable(tmp_path: Path) -> None:
    out = tmp_path / os.fsdecode(b"missing\xff") / "x.mp4"
    with pytest.raises(OutputError) as info:
        open_output(out, width=W, height=H, fps=30)
    assert "missing\\xff" in str(info.value)
    str(info.value).encode("utf-8")  # no lone surrogates left to crash a print


@pytest.mark.parametrize(("setup", "match"), [
    (lambda d: (d / "x.mp4").mkdir(), "is a folder"),
    (lambda d: (d / "file").write_text(""), "not a folder"),
    (lambda d: (d / "loop").symlink_to(d / "loop"), "symlink loop"),
])
def test_unusable_output_paths(tmp_path: Path, setup, match: str) -> None:
    setup(tmp_path)
    before = names(tmp_path)
    target = {"is a folder": "x.mp4", "not a folder": "file/x.mp4", "symlink loop": "loop/x.mp4"}[match]
    with pytest.raises(OutputError, match=match):
        open_output(tmp_path / target, width=W, height=H, fps=30)
    assert names(tmp_path) == before


def test_temporary_names_are_short_and_hidden(tmp_path: Path) -> None:
    out = tmp_path / ("long" * 60 + ".mp4")
    sink = open_output(out, width=W, height=H, fps=30)
    try:
        (temp,) = names(tmp_path)
        assert temp.startswith(".") and len(temp) < 32
    finally:
        sink.abort()
    assert names(tmp_path) == []


@pytest.mark.parametrize(("err", "match"), [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"),
                                            (errno.EIO, "Input/output error")])
@pytest.mark.parametrize("name", ["clip.mp4", "still.png", "f_%04d.png"])
def test_os_errors_while_publishing_are_output_errors(tmp_path: Path, monkeypatch, name: str, err: int,
                                                     match: str) -> None:  # fmt: skip
    def failing_replace(src, dst):
        raise OSError(err, os.strerror(err), str(src))

    monkeypatch.setattr(output_module.os, "replace", failing_replace)
    with pytest.raises(OutputError, match=match) as info:
        write_all(tmp_path / name, gradient_frames(2))
    assert ".partial" not in str(info.value), "the message names the output, not the temporary"
    assert names(tmp_path) == []


class Terminated(KeyboardInterrupt):
    """What the CLI raises on SIGTERM."""


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv", "still.png", "f_%04d.png"])
@pytest.mark.parametrize("when", ["write", "close"])
def test_interrupt_inside_the_sink_leaves_nothing(tmp_path: Path, monkeypatch, name: str, when: str) -> None:
    sink = open_output(tmp_path / name, width=W, height=H, fps=30)
    sink.write(gradient_frames(1)[0])
    hook = "_write_frame" if when == "write" else "_finish"

    def interrupted(*args):
        raise Terminated()

    monkeypatch.setattr(sink, hook, interrupted)
    with pytest.raises(Terminated):
        sink.write(gradient_frames(1)[0]) if when == "write" else sink.close()
    assert names(tmp_path) == []
    with pytest.raises(Cancelled):
        sink.close()


def test_interrupt_while_opening_the_encoder_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(output_module.av, "open", interrupted)
    with pytest.raises(Terminated):
        open_output(tmp_path / "clip.mp4", width=W, height=H, fps=30)
    assert names(tmp_path) == []


def test_encoder_refusal_while_opening_is_an_output_error(tmp_path: Path, monkeypatch) -> None:
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", args[0])

    monkeypatch.setattr(output_module.av, "open", refused)
    with pytest.raises(OutputError, match="clip.mp4: cannot open libx264 in mp4: permission denied"):
        open_output(tmp_path / "clip.mp4", width=W, height=H, fps=30)
    assert names(tmp_path) == []


def test_failed_sequence_frame_does_not_delete_a_file_it_did_not_replace(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "f_0001.png").write_bytes(b"from an earlier render")
    sink = open_output(tmp_path / "f_%04d.png", width=W, height=H, fps=30)
    sink.write(gradient_frames(1)[0])
    real_replace = os.replace

    def fail_second(src, dst):
        if str(dst).endswith("f_0001.png"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(output_module.os, "replace", fail_second)
    with pytest.raises(OutputError, match="no space left"):
        sink.write(gradient_frames(1)[0])
    assert names(tmp_path) == ["f_0001.png"]  # frame 0 removed, the old frame 1 untouched
    assert (tmp_path / "f_0001.png").read_bytes() == b"from an earlier render"


def test_encoder_memory_estimates_cover_every_codec() -> None:
    assert set(ENCODER_BYTES_PER_PIXEL) == set(CODECS)
    fixed, per_core = ENCODER_BYTES_PER_PIXEL["av1"]
    assert encoder_bytes_per_pixel("x.webm", cores=16) == fixed + 16 * per_core
    assert encoder_bytes_per_pixel("x.mkv", "ffv1", cores=2) < encoder_bytes_per_pixel("x.mkv", cores=2)
    assert encoder_bytes_per_pixel("x.png") == encoder_bytes_per_pixel("f_%04d.jpg") > 0


@pytest.mark.parametrize(("name", "codec", "expected"), [("x.mp4", None, "h264"), ("x.webm", None, "av1"),
                                                          ("x.mkv", "ffv1", "ffv1"), ("x.png", None, "png"),
                                                          ("f_%04d.JPG", None, "jpg sequence")])
def test_describe_output(name: str, codec: str | None, expected: str) -> None:
    assert describe_output(name, codec) == expected
