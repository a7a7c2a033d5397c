"""Write rendered RGB frames to a video file, a single image or a numbered image sequence.

Frames are numpy ``[H, W, 3] uint8`` RGB, row 0 at the top. Nothing appears under the final
name until it is complete: videos and images are written to a hidden temporary file in the
same folder and renamed into place by :meth:`FrameSink.close`; a sequence renames each frame as
it is finished and deletes every frame it wrote if it is aborted.

YUV outputs are tagged BT.709, limited range, and the RGB->YUV conversion uses that matrix;
the tests' reference decoder (tests/video_reference.py) converts back with the matrix a file is
tagged with.
"""

from __future__ import annotations

import errno
import numbers
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from holoscope.core.camera_path import MAX_FPS, check_fps
from holoscope.core.errors import (
    Cancelled,
    HoloscopeError,
    InvalidArgument,
    OutputError,
    display_path,
)


@dataclass(frozen=True)
class CodecSpec:
    encoder: str  # PyAV/FFmpeg encoder name
    pix_fmt: str
    default_crf: int | None  # None: lossless, crf is ignored
    max_crf: int | None
    options: dict[str, str] = field(default_factory=dict)
    mp4_tag: str | None = None  # codec tag for mp4/mov
    max_fps: float = MAX_FPS  # what the encoder accepts, when below what the containers store

    @property
    def subsampled(self) -> bool:
        return self.pix_fmt == "yuv420p"


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec("libx264", "yuv420p", 18, 51, {"preset": "medium"}),
    # x265 'medium' runs at a few frames/s at 1080p on 2 cores; 'fast' costs little size.
    "hevc": CodecSpec(
        "libx265", "yuv420p", 22, 51, {"preset": "fast", "x265-params": "log-level=error"}, "hvc1"
    ),
    "av1": CodecSpec("libsvtav1", "yuv420p", 30, 63, {"preset": "8"}, max_fps=240),  # SVT-AV1's limit
    # ffv1 has no 8-bit planar RGB; bgr0 is packed RGB, so rendered pixels round-trip exactly.
    "ffv1": CodecSpec("ffv1", "bgr0", None, None, {"level": "3"}),
}

# extension -> (FFmpeg muxer, codecs it accepts; the first is the default)
CONTAINERS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".mp4": ("mp4", ("h264", "hevc", "av1")),
    ".mov": ("mov", ("h264", "hevc")),  # FFmpeg's mov muxer refuses AV1 (only mp4 mode has av01)
    ".mkv": ("matroska", ("h264", "hevc", "av1", "ffv1")),
    ".webm": ("webm", ("av1",)),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# A printf integer conversion for frame numbers: %d, %04d ... (a literal percent is %%).
_FRAME_PATTERN = re.compile(r"%\d*d")

# What YUV streams are tagged with; swscale is given the same matrix and range.
_YUV_MATRIX, _YUV_RANGE = Colorspace.ITU709, ColorRange.MPEG
_RGB_COLORSPACE = 0  # AVCOL_SPC_RGB: no matrix, the samples are R, G, B


def classify_output(path: str | os.PathLike[str]) -> str:
    """``"video"``, ``"image"`` (one file, first frame only) or ``"sequence"`` (``%04d.png``)."""
    name = Path(path).name
    ext = Path(name).suffix.lower()
    if ext in CONTAINERS:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "sequence" if _FRAME_PATTERN.search(name.replace("%%", "")) else "image"
    choices = ", ".join((*CONTAINERS, *IMAGE_EXTENSIONS))
    raise InvalidArgument(f"unsupported output extension {ext or '(none)'!r}; use one of {choices}",
                          path=path)


# Peak bytes per frame pixel an encoder holds (frames in flight: lookahead, references, threads;
# packets), as (fixed, per CPU core): encoders start one thread per core and each brings frames.
# Fitted above the peak RSS of demo renders minus the render's own share (render/export.py),
# 60 frames at 1024x1024 and 2048x2048, whole-render peaks per pixel:
#   h264 (x264 medium, 40 frames of lookahead): 278 at 1 thread, 285 at 4, 315 at 16, 296 at 32
#   hevc (x265 fast): 255 on 2 cores, 479 with 16 pools and 16 frame threads
#   av1 (SVT-AV1 preset 8): 390 on 2 cores, 952 with lp=16 (246 at 2048x2048)
#   ffv1: 136 (131 at 2048x2048); PNG/JPEG files 44, PNG sequences 58 (2048x2048 and 4096x4096)
ENCODER_BYTES_PER_PIXEL: dict[str, tuple[int, int]] = {
    "h264": (270, 3), "hevc": (200, 16), "av1": (300, 40), "ffv1": (100, 2)}  # fmt: skip
IMAGE_BYTES_PER_PIXEL = 16  # the uint8 frame, the encoder's copy and the compressed image


def describe_output(path: str | os.PathLike[str], codec: str | None = None) -> str:
    """What ``path`` will hold, for messages: "h264", "av1", "png", "png sequence" ..."""
    target = Path(path)
    kind = classify_output(target)
    if kind == "video":
        return _resolve_codec(target, codec)[0]
    ext = target.suffix.lower().lstrip(".")
    return f"{ext} sequence" if kind == "sequence" else ext


def encoder_bytes_per_pixel(path: str | os.PathLike[str], codec: str | None = None,
                            cores: int | None = None) -> int:  # fmt: skip
    """Upper bound of the bytes per frame pixel that writing ``path`` holds while encoding,
    on a machine with ``cores`` CPU cores (default: this one's)."""
    target = Path(path)
    if classify_output(target) != "video":
        return IMAGE_BYTES_PER_PIXEL
    fixed, per_core = ENCODER_BYTES_PER_PIXEL[_resolve_codec(target, codec)[0]]
    return fixed + per_core * (cores or os.cpu_count() or 1)


def check_output(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: float | Fraction,
    codec: str | None = None,
    crf: int | None = None,
    start_number: int = 0,
) -> str:
    """Make every check :func:`open_output` makes (options, name, folder) without opening an
    encoder, so a caller can refuse bad options before long work. Returns the output kind."""
    return _plan(path, width, height, fps, codec, crf, start_number).kind


def open_output(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: float | Fraction,
    codec: str | None = None,
    crf: int | None = None,
    start_number: int = 0,
) -> FrameSink:
    """Validate every option and the output folder, then return a sink ready for frames.

    ``crf`` is ignored by lossless outputs (ffv1, PNG). ``start_number`` numbers the first frame
    of a sequence. Raises :class:`InvalidArgument` or :class:`OutputError` before any rendering.
    """
    p = _plan(path, width, height, fps, codec, crf, start_number)
    if p.kind == "video":
        assert p.codec is not None
        return _VideoSink(p.target, p.width, p.height, CODECS[p.codec], p.muxer, p.rate, p.crf)
    if p.kind == "image":
        return _ImageSink(p.target, p.width, p.height)
    return _SequenceSink(p.target, p.width, p.height, p.start_number)


@dataclass(frozen=True)
class _Plan:
    """An output with every option checked and resolved."""

    kind: str
    target: Path
    width: int
    height: int
    codec: str | None = None
    muxer: str = ""
    rate: Fraction = Fraction(30)
    crf: int | None = None
    start_number: int = 0


def _plan(path: str | os.PathLike[str], width: Any, height: Any, fps: Any, codec: str | None,
          crf: Any, start_number: Any) -> _Plan:  # fmt: skip
    target = Path(path)
    kind = classify_output(target)
    width, height = _positive_int("width", width), _positive_int("height", height)
    if kind == "video":
        name, muxer = _resolve_codec(target, codec)
        spec = CODECS[name]
        if spec.subsampled and (width % 2 or height % 2):
            raise InvalidArgument(
                f"{name} stores 4:2:0 colour and needs an even width and height, "
                f"got {width}x{height}; try {width - width % 2}x{height - height % 2}"
            )
        rate, crf = exact_rate(fps, name), _check_crf(name, crf)
        _check_folder(target)
        return _Plan(kind, target, width, height, name, muxer, rate, crf)
    if codec is not None:
        raise InvalidArgument(f"codec {codec!r} applies to video outputs only, not {target.suffix} images")
    exact_rate(fps)  # unused by images, but a bad rate is still a mistake worth reporting
    if kind == "image":
        _check_folder(target)
        return _Plan(kind, target, width, height)
    start_number = _positive_int("start_number", start_number, minimum=0)
    _check_folder(_sequence_name(target, start_number))  # fails now on a malformed pattern
    return _Plan(kind, target, width, height, start_number=start_number)


class FrameSink:
    """Receives frames; :meth:`close` publishes the output, :meth:`abort` removes all of it.

    As a context manager it closes on success and aborts on any exception (KeyboardInterrupt
    included), letting the exception propagate. :meth:`abort` may be called from another thread
    to cancel: it waits for the frame being written, then the next :meth:`write` or :meth:`close`
    raises :class:`Cancelled`.
    """

    def __init__(self, target: Path, width: int, height: int) -> None:
        self.path = target
        self.width = width
        self.height = height
        self.frames_written = 0  # frames actually stored (an image keeps only the first)
        self._state = "open"  # -> "closed" | "aborted"
        self._lock = threading.Lock()

    def write(self, rgb: np.ndarray) -> None:
        """Append one ``[height, width, 3] uint8`` RGB frame."""
        expected = (self.height, self.width, 3)
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != expected:
            got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise InvalidArgument(f"frame must be uint8 {list(expected)} RGB, got {got}")
        with self._lock:
            self._check_open()
            self._guarded(self._write_frame, np.ascontiguousarray(rgb))

    def close(self) -> None:
        """Flush and publish the output under its final name. Idempotent once closed."""
        with self._lock:
            if self._state == "closed":
                return
            self._check_open()
            if self.frames_written == 0:
                self._abort_locked()
                raise OutputError("no frames were written; nothing saved", path=self.path)
            self._guarded(self._finish)
            self._state = "closed"

    def abort(self) -> None:
        """Delete everything written so far (never raises). Idempotent."""
        with self._lock:
            self._abort_locked()

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # A sink dropped without close() must not leave hidden temporaries behind.
        if getattr(self, "_state", None) == "open":
            try:
                self._abort_locked()
            except Exception:
                pass

    def _check_open(self) -> None:
        if self._state == "aborted":
            raise Cancelled("output was aborted; partial output has been removed", path=self.path)
        if self._state == "closed":
            raise OutputError("output is already closed", path=self.path)

    def _guarded(self, step: Any, *args: Any) -> None:
        # Any failure, KeyboardInterrupt included, removes the partial output before it is
        # reported; I/O and FFmpeg failures become one OutputError naming the final file.
        try:
            step(*args)
        except BaseException as exc:
            self._abort_locked()
            if isinstance(exc, (OSError, av.FFmpegError)) and not isinstance(exc, HoloscopeError):
                raise _output_error(exc, self.path, "writing failed") from exc
            raise

    def _abort_locked(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._discard()

    # Subclass hooks; called with the lock held.
    def _write_frame(self, rgb: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError


class _VideoSink(FrameSink):
    def __init__(self, target: Path, width: int, height: int, spec: CodecSpec, muxer: str,
                 rate: Fraction, crf: int | None) -> None:
        super().__init__(target, width, height)
        self.rate = rate
        self._spec = spec
        self._temp = _reserve_temp(target)
        try:
            # faststart moves the index to the front so players can start before the download ends.
            opts = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
            self._container = av.open(str(self._temp), "w", format=muxer, options=opts)
            options = dict(spec.options)
            if crf is not None:
                options["crf"] = str(crf)
            if spec.encoder == "libsvtav1":
                os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its config banner otherwise
            self._stream = self._container.add_stream(spec.encoder, rate=rate, options=options)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, spec.pix_fmt
            cc = self._stream.codec_context
            if spec.mp4_tag and muxer in ("mp4", "mov"):
                cc.codec_tag = spec.mp4_tag  # 'hvc1' is what Apple players require for HEVC
            cc.color_primaries = ColorPrimaries.BT709
            if spec.subsampled:
                cc.colorspace, cc.color_range = _YUV_MATRIX, _YUV_RANGE
                cc.color_trc = ColorTrc.BT709
            else:  # RGB samples: no matrix, full range, sRGB transfer as rendered
                cc.colorspace, cc.color_range = _RGB_COLORSPACE, ColorRange.JPEG
                cc.color_trc = ColorTrc.IEC61966_2_1
            # Open encoder and muxer now so a refused combination fails before any rendering.
            self._container.start_encoding()
        except BaseException as exc:
            self._abort_locked()  # the temporary file goes, whatever stopped us
            if isinstance(exc, (OSError, av.FFmpegError)) and not isinstance(exc, HoloscopeError):
                raise _output_error(exc, target, f"cannot open {spec.encoder} in {muxer}") from exc
            raise

    def _write_frame(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if self._spec.subsampled:
            # Convert with the matrix and range the stream is tagged with (swscale defaults to 601).
            frame = frame.reformat(
                format=self._spec.pix_fmt,
                src_colorspace=_YUV_MATRIX, dst_colorspace=_YUV_MATRIX,
                src_color_range=ColorRange.JPEG, dst_color_range=_YUV_RANGE,
            )
        else:
            frame = frame.reformat(format=self._spec.pix_fmt)
        frame.pts = self.frames_written
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()
        _publish(self._temp, self.path)

    def _discard(self) -> None:
        try:
            if hasattr(self, "_container"):
                self._container.close()
        except Exception:
            pass  # the file is deleted next; a failing trailer write does not matter
        _unlink(self._temp)


class _ImageSink(FrameSink):
    def __init__(self, target: Path, width: int, height: int) -> None:
        super().__init__(target, width, height)
        self._temp: Path | None = None

    def _write_frame(self, rgb: np.ndarray) -> None:
        if self.frames_written:
            return  # a single image keeps the first frame
        self._temp = _reserve_temp(self.path)
        self._temp.write_bytes(_encode_image(rgb, self.path.suffix.lower()))
        self.frames_written = 1

    def _finish(self) -> None:
        assert self._temp is not None
        _publish(self._temp, self.path)

    def _discard(self) -> None:
        if self._temp is not None:
            _unlink(self._temp)


class _SequenceSink(FrameSink):
    def __init__(self, target: Path, width: int, height: int, start_number: int) -> None:
        super().__init__(target, width, height)
        self.start_number = start_number
        self.files: list[Path] = []  # finished frames, deleted again by abort()
        self._temp: Path | None = None

    def _write_frame(self, rgb: np.ndarray) -> None:
        final = _sequence_name(self.path, self.start_number + self.frames_written)
        self._temp = _reserve_temp(final)
        self._temp.write_bytes(_encode_image(rgb, final.suffix.lower()))
        self.files.append(final)  # tracked before the rename so abort() covers a half-done one
        try:
            _publish(self._temp, final)
        except BaseException:
            if os.path.lexists(self._temp):  # not renamed: the final name is not ours to delete
                self.files.pop()
            raise
        self._temp = None
        self.frames_written += 1

    def _finish(self) -> None:
        pass  # every frame is already in place

    def _discard(self) -> None:
        for path in (*self.files, self._temp):
            if path is not None:
                _unlink(path)
        self.files.clear()


# ---- helpers -------------------------------------------------------------------------------------


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidArgument(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _resolve_codec(target: Path, codec: str | None) -> tuple[str, str]:
    """(codec name, FFmpeg muxer) for ``target``'s container; ``None`` picks its default codec."""
    ext = target.suffix.lower()
    muxer, allowed = CONTAINERS[ext]
    name = allowed[0] if codec is None else str(codec).lower()
    if name not in CODECS:
        raise InvalidArgument(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if name not in allowed:
        only = "only " if len(allowed) == 1 else ""
        homes = " or ".join(e for e, (_, codecs) in CONTAINERS.items() if name in codecs)
        raise InvalidArgument(f"{ext} accepts {only}{', '.join(allowed)}, not {name}; use {homes} for {name}")
    return name, muxer


def _check_crf(codec: str, crf: Any) -> int | None:
    spec = CODECS[codec]
    if crf is None or spec.max_crf is None:  # lossless codecs ignore crf
        return spec.default_crf
    if isinstance(crf, bool) or not isinstance(crf, numbers.Integral) or not 0 <= crf <= spec.max_crf:
        raise InvalidArgument(f"crf for {codec} must be an integer 0..{spec.max_crf}, "
                              f"got {crf!r}")
    return int(crf)


# Rates are stored as num/den; den <= 1e6 keeps num <= MAX_FPS * 1e6 within 32-bit time scales
# (MP4, x264, SVT-AV1) while holding any rate >= MIN_FPS to 1e-8 relative or better.
_MAX_RATE_DENOMINATOR = 1_000_000


def exact_rate(fps: float | Fraction, codec: str | None = None) -> Fraction:
    """The exact rational rate a file will store for ``fps`` (refusing rates outside
    MIN_FPS..MAX_FPS, or above what ``codec`` accepts).

    29.97, 23.976, 59.94 ... mean the NTSC rates N*1000/1001 (1e-6 away). Any other rate is kept
    to 1e-8 or better. MP4 and MOV store the rational exactly; Matroska and WebM store a frame
    duration in nanoseconds, which FFmpeg reads back as a fraction with a numerator of at most
    30000: within 1e-5 (1e-7 for common rates), and timestamps in milliseconds.
    """
    value = check_fps(fps)
    if isinstance(fps, numbers.Rational):
        rate = Fraction(fps.numerator, fps.denominator)
    else:
        ntsc = round(value * 1.001)
        # NTSC rates are typed rounded (29.97): within 1e-5 of N/1.001 means N*1000/1001
        # (unless that is a whole number: 999.999 is not 1001000/1001 = 1000).
        if ntsc >= 10 and ntsc % 1001 and value != ntsc and abs(value * 1.001 / ntsc - 1) < 1e-5:
            rate = Fraction(ntsc * 1000, 1001)
        else:
            rate = Fraction(value)
    rate = rate.limit_denominator(_MAX_RATE_DENOMINATOR)
    if codec is not None and rate > CODECS[codec].max_fps:
        faster = ", ".join(name for name, spec in CODECS.items() if spec.max_fps >= rate)
        raise InvalidArgument(f"{codec} encodes at most {CODECS[codec].max_fps:g} fps, got {value:g}; "
                              f"use {faster} for faster rates")
    return rate


def _sequence_name(pattern: Path, number: int) -> Path:
    try:
        return pattern.with_name(pattern.name % number)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument("a sequence name needs exactly one %d or %04d; write a literal "
                              "percent sign as %%", path=pattern) from exc


# Why an OSError stopped the output, in words (strerror is "File name too long" and so on).
_REASONS = {
    errno.ENOENT: "a folder in the path does not exist",
    errno.ENOTDIR: "a folder in the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop)",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for this file system",
}


def _output_error(exc: BaseException, path: Path, action: str = "cannot write") -> OutputError:
    """One OutputError naming the final output (never the hidden temporary) for any OS failure."""
    code = getattr(exc, "errno", None)
    reason = _REASONS.get(code) if isinstance(code, int) else None
    if reason is None:
        reason = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"{action}: {reason}", path=path)


def _check_folder(target: Path) -> None:
    """Refuse before any work an output whose folder or name cannot be written."""
    folder = target.parent
    where = f"'{display_path(folder)}'"
    if "\0" in str(target):
        raise OutputError("invalid file name (it contains a NUL byte)", path=target)
    try:
        folder_st = os.stat(folder)
    except FileNotFoundError:
        raise OutputError(f"output folder {where} does not exist", path=target) from None
    except OSError as exc:
        raise _output_error(exc, target) from None
    if not stat.S_ISDIR(folder_st.st_mode):
        raise OutputError(f"output folder {where} is not a folder", path=target)
    try:
        target_mode = os.stat(target).st_mode
    except FileNotFoundError:
        target_mode = 0
    except OSError as exc:  # the final name itself: too long, a symlink loop ...
        raise _output_error(exc, target) from None
    if stat.S_ISDIR(target_mode):
        raise OutputError("output path is a folder", path=target)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {where} is not writable", path=target)
    _unlink(_reserve_temp(target))  # os.access can be wrong (root, network mounts): really try


def _reserve_temp(target: Path) -> Path:
    """Create a new empty hidden file in ``target``'s folder.

    The name is short and fixed-length, whatever the final name: a final name near the file
    system's 255-byte limit must not fail only because of its temporary.
    """
    for _ in range(16):
        temp = target.with_name(f".holoscope-{secrets.token_hex(4)}.partial")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
            return temp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _output_error(exc, target, f"cannot write in '{display_path(target.parent)}'") from exc
    raise OutputError("cannot create a temporary file", path=target)


def _publish(temp: Path, final: Path) -> None:
    os.replace(temp, final)  # atomic on one filesystem: readers see the old file or the new one


# Public names for other writers that publish a file only when it is complete.
reserve_temp = _reserve_temp
publish_file = _publish


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _encode_image(rgb: np.ndarray, ext: str) -> bytes:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if ext == ".png":
        cc = av.CodecContext.create("png", "w")
        cc.pix_fmt = "rgb24"
    else:  # JPEG/JFIF is full-range BT.601 by definition; keep full chroma for renders
        cc = av.CodecContext.create("mjpeg", "w")
        cc.pix_fmt, cc.color_range, cc.colorspace = "yuvj444p", ColorRange.JPEG, 5
        cc.time_base = Fraction(1, 1)
        cc.qmin = cc.qmax = 2
        frame = frame.reformat(format="yuvj444p", src_colorspace=Colorspace.ITU601,
                               dst_colorspace=Colorspace.ITU601, src_color_range=ColorRange.JPEG,
                               dst_color_range=ColorRange.JPEG)
    cc.width, cc.height = frame.width, frame.height
    return b"".join(bytes(p) for p in (*cc.encode(frame), *cc.encode(None)))
