"""Read plain video files (.mp4 .m4v .mov .mkv .webm; H.264, HEVC, AV1, VP9 ...) with PyAV.

:func:`open_video` returns a timed :class:`~holoscope.core.media.Media` whose frames are
:class:`~holoscope.core.frames.VideoFrame`. ``media.frame(i)`` is random access (seek to the
keyframe before ``i``, decode forward; the decoder position is cached, so ``i, i+1, ...`` never
re-seeks); ``media.frames_from(start)`` seeks once and decodes forward, yielding
:class:`~holoscope.core.frames.Frame` envelopes whose index and pts are the VideoFrame's own
(the Media wraps them; ``VideoDecoder.frames_from`` itself yields bare VideoFrames).

Pixels, bit-exactly where possible (the planes are copied row by row from ``frame.planes``
honouring each plane's ``line_size``; no swscale, so no silent range conversion). Samples keep
their bit depth: 8-bit output is uint8, 9- to 16-bit output is uint16 holding the decoded code
values unchanged (10-bit: 0..1023), with ``VideoFrame.bit_depth`` saying how many bits:

=====================================  ==========  ============================================
decoder output                         VideoFrame  how
=====================================  ==========  ============================================
yuv420p, yuvj420p                      yuv420p     copied as stored
yuv444p, yuvj444p                      yuv444p     copied as stored
nv12, nv21 (hardware download)         yuv420p     Y copied, chroma de-interleaved (exact)
gray                                   yuv420p     Y copied, neutral chroma (128)
yuv420p9/10/12/14/16 (le or be),       yuv420p,    copied as stored into uint16 (big-endian
yuv444p9..16, yuva420p10 ...           yuv444p     words byte-swapped), ``bit_depth`` 9..16;
                                       n bits      alpha dropped
p010, p012, p016 (le or be; hardware   yuv420p     Y copied, chroma de-interleaved; P010 and
download of 10/12/16-bit 4:2:0)        n bits      P012 store each sample in the HIGH bits of
                                                   its 16-bit word (low 6 / 4 bits zero), so
                                                   they are shifted right to 0..1023 / 0..4095
gray9..16                              yuv420p     Y copied, neutral chroma (2^(n-1))
                                       n bits
other 4:2:0 (yuva420p ...)             yuv420p     ``frame.reformat`` to 8 bits; matrix and
                                                   range passed as both source and target, so
                                                   the tags stay true (only requantised)
other YUV (4:2:2, 4:1:1, 4:4:0)        yuv444p     ``frame.reformat``: chroma upsampled, same
                                       same bits   matrix and range as the source; a high
                                                   bit depth stays (yuv422p10le ->
                                                   yuv444p10le, luma unchanged)
RGB family (gbrp, rgb24, bgr0, pal8,   rgb24       ``to_ndarray("rgb24")``: no matrix involved;
gbrp10 ...)                            8 bits      ``color_range`` "full" (RGB is always 8-bit)
=====================================  ==========  ============================================

NVDEC delivers 4:4:4 10/12-bit HEVC as yuv444p16le with the samples in the high bits; that
is kept as 16-bit (``bit_depth`` 16), which means the same colours.

``color_matrix`` and ``color_range`` come from each decoded frame's tags. Untagged YUV gets
``color_range`` "limited" ("full" for the ``yuvj`` formats and gray) and the matrix players use
for untagged video (mpv's rule): BT.709 from 1280 wide or more than 576 lines, else BT.601;
``info["color_matrix_source"]`` then says "guessed".

Frame numbers come from timestamps: ``index = round((pts - first_pts) * time_base * fps)``, so
B-frame reordering and a non-zero start time do not matter. A frame missing inside the stream
(a packet that failed to decode, a timestamp gap) is filled by repeating the previous picture
under the missing number, so ``frames_from`` always yields consecutive indices. A stream that
ends well before its stated frame count (a truncated file) raises :class:`CorruptStream` for
the frames that are not there.

Hardware decoding: unless ``HOLOSCOPE_HWDEC=no``, each device type that both this FFmpeg build
(``av.codec.hwaccel.hwdevices_available()``, CUDA first) and the stream's decoder support is
tried with ``HWAccel(..., allow_software_fallback=True)``; the first that really decodes the
first picture on the device wins. ``HOLOSCOPE_HWDEC=cuda`` (or a comma list) limits the choice.
Any failure falls back silently to software; ``info["decode_path"]`` says which is in use
("hardware (cuda)" or "software") and ``info["hwdec_fallback"]`` why a device was not used.
Hardware frames arrive as nv12/p010 and are converted as the table says. Measured on an H100:
H.264, HEVC (8 and 10 bit) and VP9 decode on NVDEC; H.264 4:4:4 falls back to software (NVDEC
has no 4:4:4 H.264). AV1 decodes in software: FFmpeg picks ``libdav1d``, which has no hardware
path, and its native ``av1`` decoder failed on NVDEC there ("get_buffer() failed").

Threads: one decoder may be used from several threads (for example a decode-ahead worker and
the GUI); every use of the container and the codec context holds the decoder's lock.

Hostile files: the path must be a regular file (checked before FFmpeg opens it, so a FIFO never
blocks). Opening reads for at most ``_OPEN_TIMEOUT`` seconds and one demux read for at most
``_READ_TIMEOUT`` seconds (PyAV's interrupt callback): a few frames followed by a multi-GB
sparse tail would otherwise be scanned byte by byte (about 7 s per GB) in ``avformat_find_stream_info``,
when counting frames or when the decoder is flushed at the end; a read cut short ends the data
there, like a damaged tail. Frame counts come from the container (MP4), else from counting packets
for at most ``_COUNT_SECONDS`` (Matroska stores no count), else from duration x rate, flagged
``info["frames_estimated"]``; the whole file is never demuxed to open it. Before any picture is
decoded, the frames a playback holds (decoder references and threads, the prefetch queue) are
asked of the decode budget (:mod:`holoscope.core.budget`), and FFmpeg's ``max_pixels`` refuses
any picture larger than the budget allows, so a tiny file that declares 16384 x 16384 is refused
with one line instead of allocating.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from holoscope.core import budget
from holoscope.core.errors import (
    CorruptStream,
    DecoderUnavailable,
    EmptyMedia,
    FormatNotRecognized,
    HoloscopeError,
)
from holoscope.core.files import check_regular
from holoscope.core.frames import VideoFrame
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import Source, is_url, source_for

READER_NAME = "holoscope.pyav"
FORMAT_NAME = "video"
HWDEC_ENV = "HOLOSCOPE_HWDEC"

# Decoder output formats copied as stored: name -> (VideoFrame pixel format, implied full range).
_DIRECT = {
    "yuv420p": ("yuv420p", False),
    "yuvj420p": ("yuv420p", True),
    "yuv444p": ("yuv444p", False),
    "yuvj444p": ("yuv444p", True),
}
# The one colour-matrix table: AVCOL_SPC_* tag -> VideoFrame.color_matrix. The GL renderer
# converts with these names (render/gl/video_renderer.py: LUMA_COEFFICIENTS), and the tests'
# reference conversion (tests/video_reference.py) goes through :data:`_MATRIX_TO_SWS`, so both
# agree. FCC and SMPTE 170M are BT.601's matrix;
# SMPTE 240M is within 0.015 of BT.709's coefficients.
_FRAME_MATRIX = {1: "bt709", 4: "bt601", 5: "bt601", 6: "bt601", 7: "bt709", 9: "bt2020", 10: "bt2020"}
_MATRIX_TO_SWS = {"bt709": Colorspace.ITU709, "bt601": Colorspace.ITU601, "bt2020": Colorspace.BT2020}
# Hardware device types worth trying, best first; the rest of hwdevices_available() follow.
_HW_ORDER = ("cuda", "vaapi", "videotoolbox", "d3d12va", "d3d11va", "dxva2", "vdpau", "qsv", "vulkan")

_MIN_FORWARD_WINDOW = 16  # decode forward instead of seeking when the target is this close
_END_TOLERANCE = 2  # frames the stated count may exceed what a clean stream really holds
_MAX_CONSECUTIVE_ERRORS = 8  # undecodable packets in a row before the stream counts as broken

# Time limits on FFmpeg's reading (see the module doc). A local file never needs seconds for one
# packet; a sparse tail scans at ~150 MB/s. Worst case for `info` on a hostile file: probe open +
# count + decoder open + first-picture flush = 2 + 1 + 2 + 3 s (plus 5 s per hardware attempt).
_OPEN_TIMEOUT = 2.0
_READ_TIMEOUT = 3.0
# For other readers that open video streams with PyAV under the same limits.
OPEN_TIMEOUT, READ_TIMEOUT = _OPEN_TIMEOUT, _READ_TIMEOUT
_COUNT_SECONDS = 1.0  # counting Matroska packets; longer files get duration x rate (estimated)
# Frames a playback holds, for the decode budget. Measured peak RSS while playing through a
# FramePrefetcher, in frames (1080p and 4K H.264 with 16 reference frames): 28-35 with 1-3
# decoder threads, 39-56 with 16. The decoder: 16 references + the picture being decoded +
# reorder delay, plus one per frame thread; beside it 4 queued frames, the frame on screen and
# the decoder's held / peeked pictures.
_DECODER_FRAMES = 20
_HELD_FRAMES = 8


# ---- hardware selection ---------------------------------------------------------------------------


def hwdec_devices() -> list[str]:
    """Hardware device types to try, in order, from ``HOLOSCOPE_HWDEC`` and this FFmpeg build.

    Unset, empty or "auto": every available type (CUDA first). "no" (also "off", "0", "false",
    "software"): none. Otherwise a comma list of types, e.g. "cuda" or "vaapi,cuda".
    """
    setting = os.environ.get(HWDEC_ENV, "auto").strip().lower()
    if setting in ("no", "off", "0", "false", "none", "software", "sw"):
        return []
    try:
        available = list(av.codec.hwaccel.hwdevices_available())
    except Exception:  # an FFmpeg build without hwcontext support
        return []
    if setting in ("", "auto", "yes", "1", "true"):
        ordered = [d for d in _HW_ORDER if d in available]
        return ordered + [d for d in available if d not in ordered]
    wanted = [d.strip() for d in setting.split(",") if d.strip()]
    return [d for d in wanted if d in available]


# ---- opening --------------------------------------------------------------------------------------


def open_video(path: Source | str | os.PathLike[str] | bytes) -> Media:
    """Open a video (a :class:`~holoscope.core.sources.Source`, a local path or bytes) as a timed
    :class:`Media` of :class:`VideoFrame` (see the module doc). A local file is opened by FFmpeg
    by name; any other source through its file object (``av.open`` reads file objects)."""
    decoder = VideoDecoder(path)
    return Media(
        kind=MediaKind.VIDEO,
        format=FORMAT_NAME,
        reader=READER_NAME,
        frame_count=decoder.frame_count,
        fps=decoder.fps,
        load_frame=decoder.frame,
        path=str(decoder.path),
        info=decoder.info,
        iter_from=decoder.frames_from,
        close=decoder.close,
    )


@dataclasses.dataclass
class _Raw:
    """A decoded PyAV frame and the frame number its timestamp gives."""

    index: int
    frame: Any  # av.VideoFrame
    pts: float | None  # seconds from the first frame


class VideoDecoder:
    """One open video stream: metadata, random access and sequential decoding.

    ``frame(i)`` and ``frames_from(start)`` are what :func:`open_video` wires into the Media.
    Counters for tests and the info panel: ``seek_count`` (container seeks so far),
    ``frames_decoded`` (pictures out of the decoder), ``decode_errors`` (packets skipped).
    """

    def __init__(self, path: Source | str | os.PathLike[str] | bytes) -> None:
        self.source = source_for(path)
        self.path = self.source.label  # what messages name
        # What _open_container opens: a local file by name (FFmpeg reads it itself), an HLS
        # playlist's URL (FFmpeg fetches the playlist and its segments), else the source.
        self._target: Path | Source | str = (
            self.source.local_path if self.source.local_path is not None
            else self.source.uri if is_url(self.source.uri) and _is_playlist(self.source)
            else self.source
        )  # fmt: skip
        self._lock = threading.RLock()
        self._closed = False
        self.seek_count = 0
        self.frames_decoded = 0
        self.decode_errors = 0
        self._gop = 0  # longest keyframe distance seen
        self._end_index: int | None = None  # last decodable frame, once a run reached EOF early
        self._end_is_damage = False  # that early end is a truncation, not a count off by one
        self._first_pts: int | None = None  # timestamp of frame 0 (stream time base)
        self._last_error: av.FFmpegError | None = None  # the last packet the decoder refused
        self._reset_position()
        self._container: Any = None

        probe = _open_container(self._target, read_timeout=_COUNT_SECONDS)
        try:
            self._read_metadata(probe)
        except av.FFmpegError as exc:
            raise CorruptStream(f"cannot read the video stream: {exc}", path=self.path) from exc
        finally:
            _close_quietly(probe)

        self.decode_path = "software"
        self._hw_failures: list[str] = []  # "cuda: why" for each device that was tried and lost
        for device in self._hardware_candidates():
            if self._try_open(device):
                self.decode_path = f"hardware ({device})"
                break
        else:
            self._try_open(None)  # raises when nothing decodes
        self._finish_info()

    # -- metadata -------------------------------------------------------------------------------

    def _read_metadata(self, container: Any) -> None:
        stream = _video_stream(container, self.path)
        cc = stream.codec_context
        if cc is None:
            raise DecoderUnavailable("this FFmpeg build has no decoder for the file's video codec",
                                     path=self.path)
        self._stream_index = stream.index
        self._time_base = float(stream.time_base) if stream.time_base else None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = _container_duration(container, stream)
        count, source, estimated = int(stream.frames or 0), "container", False
        if count <= 0:  # Matroska/WebM store no frame count: count packets, briefly
            count, complete = _count_packets(container, stream)
            source = "counted packets" if complete else "counted packets (partial)"
            if not complete:
                estimated = True
                if rate and duration:
                    count, source = max(count, round(duration * float(rate))), "duration x rate"
        if not rate and count and duration:
            rate = Fraction(count / duration).limit_denominator(1001)
        if not rate or rate <= 0:
            raise CorruptStream("the video stream has no usable frame rate", path=self.path)
        if count <= 0:
            raise EmptyMedia("the video stream holds no frames", path=self.path)
        self.fps = float(rate)
        self.frame_count = count
        self._decoder_name = cc.codec.name
        size = self.source.size or 0
        bit_rate = int(container.bit_rate or 0)
        if not bit_rate and duration:
            bit_rate = int(size * 8 / duration)
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        self._sample_aspect = Fraction(sar) if sar and sar > 0 else Fraction(1)
        width, height = cc.width, cc.height
        if width > 0 and height > 0:
            _require_playback(width, height, cc.pix_fmt, self.path)
        self.info: dict[str, Any] = {
            "container": _container_name(container.format.name, Path(self.source.name)),
            "codec": cc.codec.canonical_name,  # "av1", not the decoder's name "libdav1d"
            "decoder": cc.codec.name,
            "profile": stream.profile,
            "width": width,
            "height": height,
            "sample_aspect": str(self._sample_aspect),
            "display_aspect": round(float(width * self._sample_aspect) / height, 4) if height else None,
            "fps": round(self.fps, 6),
            "frame_rate": str(Fraction(rate)),
            "frames": count,
            "frame_count_source": source,
            "frames_estimated": estimated,
            "duration": round(duration if duration else count / self.fps, 6),
            "bitrate": bit_rate,
            "file_bytes": size,
            "pixel_format": cc.pix_fmt,
            "b_frames": bool(cc.has_b_frames),
        }

    def _hardware_candidates(self) -> list[str]:
        devices = hwdec_devices()
        if not devices:
            return []
        # Only the decoder FFmpeg picks for the stream counts: libdav1d (AV1) has no hardware
        # path, and FFmpeg's native av1 decoder failed on NVDEC (H100: "get_buffer() failed").
        try:
            configs = av.Codec(self._decoder_name, "r").hardware_configs
        except Exception:
            return []
        supported = {c.device_type.name for c in configs if c.is_supported}
        return [d for d in devices if d in supported]

    def _finish_info(self) -> None:
        first = self._peeked
        assert first is not None
        output = _output_format(first.frame.format)
        self.info["decode_path"] = self.decode_path
        if self._hw_failures:
            self.info["hwdec_fallback"] = "; ".join(self._hw_failures)
        if output == "rgb24":  # RGB samples: no matrix, full range
            self.info["color_matrix"], guessed, self.info["color_range"] = "rgb", False, "full"
        else:
            self.info["color_matrix"], guessed = _matrix_of(first.frame)
            self.info["color_range"] = _range_of(first.frame)
        self.info["color_matrix_source"] = "guessed" if guessed else "stream"
        self.info["decoded_format"] = first.frame.format.name
        self.info["output_format"] = output
        self.info["bit_depth"] = _high_depth(first.frame.format) or 8  # of the delivered planes

    # -- opening the decoding container -------------------------------------------------------

    def _try_open(self, device: str | None) -> bool:
        """Open the container (decoding on ``device`` if given) and decode the first picture.

        A hardware attempt returns False on any failure (the caller falls back); the software
        attempt raises a holoscope error instead.
        """
        container = None
        self.seek_count = self.frames_decoded = self.decode_errors = self._gop = 0
        self._end_index, self._end_is_damage, self._first_pts = None, False, None
        try:
            container = _open_container(self._target, device)
            stream = container.streams[self._stream_index]
            cc = stream.codec_context
            if device is None:
                cc.thread_type = "AUTO"  # frame + slice threads; set before the codec opens
            # FFmpeg refuses a picture larger than the budget allows before allocating it (the
            # in-band size may differ from the container's).
            cc.options = {**(cc.options or {}), "max_pixels": str(max_pixels())}
            self._container, self._stream, self._cc = container, stream, cc
            self._reset_position()
            self._raw = self._decode_run()
            first = self._peek()
            if first is None:
                raise CorruptStream(f"no picture could be decoded{self._why_no_picture()}", path=self.path)
            _require_playback(first.frame.width, first.frame.height, first.frame.format.name, self.path)
            if device is not None and not _decoded_on_device(cc, device):
                raise _HardwareRefused("the stream decoded in software (profile not supported?)")
            return True
        except (av.FFmpegError, HoloscopeError, NotImplementedError, RuntimeError, ValueError) as exc:
            if container is not None:
                _close_quietly(container)
            self._container = None
            if device is not None:
                self._hw_failures.append(f"{device}: {exc}")
                return False
            if isinstance(exc, HoloscopeError):
                raise
            raise CorruptStream(f"cannot decode: {exc}", path=self.path) from exc

    def _why_no_picture(self) -> str:
        error = self._last_error
        if error is None:
            return ""
        if isinstance(error, av.ArgumentError):  # what FFmpeg's max_pixels refusal raises
            return (f" (the decoder refused it: {error.strerror}; pictures over {max_pixels():,} pixels "
                    "are refused under the memory budget)")
        return f" ({error.strerror or error})"

    # -- public access ----------------------------------------------------------------------------

    def frame(self, index: int) -> VideoFrame:
        """Frame ``index`` (random access; consecutive indices decode forward without a seek)."""
        with self._lock:
            self._check_open()
            if not 0 <= index < self.frame_count:
                raise IndexError(f"frame {index} out of range 0..{self.frame_count - 1}")
            if self._last is not None and self._last.index == index:
                return self._last
            try:
                result = self._frame_at(index)
            except HoloscopeError:
                self._raw = None  # position unknown: the next request seeks
                raise
            except av.FFmpegError as exc:
                self._raw = None
                raise CorruptStream(f"decoding frame {index} failed: {exc}", path=self.path) from exc
            self._last = result
            return result

    def frames_from(self, start: int = 0) -> Iterator[VideoFrame]:
        """Frames ``start, start+1, ...`` to the end: one seek, then forward decoding.

        Safe to interleave with other users of the decoder: each step holds the lock, and a
        step that finds the decoder moved elsewhere seeks back transparently.
        """
        if not 0 <= start < self.frame_count:
            raise IndexError(f"frame {start} out of range 0..{self.frame_count - 1}")
        for index in range(start, self.frame_count):
            yield self.frame(index)

    def close(self) -> None:
        """Close the container; safe to call twice. Later frame requests raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._reset_position()
            if self._container is not None:
                _close_quietly(self._container)
                self._container = None

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- positioning --------------------------------------------------------------------------

    def _reset_position(self) -> None:
        old = getattr(self, "_raw", None)
        if old is not None:
            old.close()  # its demux generator resets the container's read timeout as it ends
        self._raw: Iterator[_Raw] | None = None  # decoded pictures from the current position
        self._peeked: _Raw | None = None  # next picture, read but not consumed
        self._held: _Raw | None = None  # last consumed picture
        self._last: VideoFrame | None = None  # last frame handed out (repeat requests)
        self._run_errors = 0  # packets or demux failures since the last seek
        self._prev_key: int | None = None

    def _check_open(self) -> None:
        if self._closed or self._container is None:
            raise HoloscopeError("the video has been closed (Media.release was called)", path=self.path)

    def _position(self) -> int | None:
        """Index the decoder stands at (last consumed picture), or None when unknown."""
        if self._raw is None:
            return None
        if self._held is not None:
            return self._held.index
        if self._peeked is not None:
            return self._peeked.index - 1
        return None

    def _frame_at(self, index: int) -> VideoFrame:
        if self._end_index is not None and index > self._end_index:
            if self._end_is_damage:
                raise self._truncated(index, self._end_index)
            target = self._end_index  # the stated count overshoots a clean stream by a frame
        else:
            target = index
        pos = self._position()
        window = max(self._gop, _MIN_FORWARD_WINDOW)
        if pos is None or not pos <= target <= pos + window:
            self._seek(target)
        prev = self._held if self._held is not None and self._held.index <= target else None
        nxt = None
        while prev is None or prev.index < target:
            nxt = self._peek()
            if nxt is None or nxt.index > target:
                break
            self._held, self._peeked, prev = nxt, None, nxt
        if prev is None:  # the first decodable picture lies after the target (stream start)
            if nxt is None:
                raise CorruptStream(f"no picture decodable at or after frame {index}", path=self.path)
            prev = nxt
        elif prev.index < target and nxt is None:  # the stream ended before the target
            # A clean stream may hold a frame or two less than its stated count (edit lists,
            # hidden frames): repeat its last picture. Anything shorter is damage.
            self._end_index = prev.index
            self._end_is_damage = bool(self._run_errors) or (
                self.frame_count - 1 - prev.index > _END_TOLERANCE)
            if self._end_is_damage:
                raise self._truncated(index, prev.index)
        return self._convert(prev, index)

    def _truncated(self, index: int, last: int) -> CorruptStream:
        return CorruptStream(
            f"frame {index} cannot be decoded: the stream ends at frame {last} of "
            f"{self.frame_count} (truncated or damaged file)", path=self.path)

    def _seek(self, index: int) -> None:
        """Position the decoder so that the next pictures lead up to ``index``."""
        back = 0
        while True:
            target = max(0, index - back)
            self._reposition(target)
            first = self._peek()
            if target == 0 or (first is not None and first.index <= index):
                return
            # The demuxer landed on a keyframe after the target (B-frames, open GOPs): go back.
            back = max(2 * back, self._gop, 8)

    def _reposition(self, index: int) -> None:
        first = self._first_pts or 0
        ts = first + round(index / self.fps / self._time_base) if self._time_base else first
        self._reset_position()  # ends the old demux run first: it holds PyAV's read timer
        try:
            self._container.seek(int(ts), backward=True, any_frame=False, stream=self._stream)
        except av.FFmpegError as exc:
            # FFmpeg's HLS demuxer refuses a target inside the last segment's final frame
            # duration; a second earlier lands on a keyframe before it, and decoding goes forward.
            earlier = max(first, int(ts) - (round(1.0 / self._time_base) if self._time_base else 0))
            try:
                self._container.seek(earlier, backward=True, any_frame=False, stream=self._stream)
            except av.FFmpegError:
                raise CorruptStream(f"cannot seek to frame {index}: {exc}", path=self.path) from exc
        self.seek_count += 1
        self._reset_position()
        self._raw = self._decode_run()

    def _peek(self) -> _Raw | None:
        if self._peeked is None and self._raw is not None:
            self._peeked = next(self._raw, None)
        return self._peeked

    # -- decoding -----------------------------------------------------------------------------

    def _decode_run(self) -> Iterator[_Raw]:
        """Pictures in display order from the current container position, with their indices."""
        container, stream, cc = self._container, self._stream, self._cc
        demux = container.demux(stream)
        try:
            yield from self._decode_packets(demux, cc)
        finally:
            demux.close()

    def _decode_packets(self, demux: Iterator[Any], cc: Any) -> Iterator[_Raw]:
        consecutive = 0
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.FFmpegError:
                # Damaged or cut-off data, or a read past _READ_TIMEOUT (a scan through a
                # sparse tail): decode what the decoder still holds, then stop.
                self._run_errors += 1
                self.decode_errors += 1
                try:
                    frames = cc.decode(None)
                except av.FFmpegError:
                    frames = []
                for frame in frames:
                    yield self._index(frame)
                return
            try:
                frames = cc.decode(packet)
            except av.FFmpegError as exc:
                self._run_errors += 1
                self.decode_errors += 1
                self._last_error = exc
                consecutive += 1
                if consecutive > _MAX_CONSECUTIVE_ERRORS:
                    raise CorruptStream(f"{consecutive} packets in a row failed to decode: {exc}",
                                        path=self.path) from exc
                continue
            consecutive = 0
            for frame in frames:
                yield self._index(frame)

    def _index(self, frame: Any) -> _Raw:
        self.frames_decoded += 1
        ts = frame.pts if frame.pts is not None else frame.dts
        if self._first_pts is None:
            self._first_pts = ts if ts is not None else 0
        if ts is None or self._time_base is None:
            prev = self._held or self._peeked
            index, seconds = (prev.index + 1 if prev else 0), None
        else:
            seconds = (ts - self._first_pts) * self._time_base
            index = round(seconds * self.fps)
        if frame.key_frame:
            if self._prev_key is not None and index > self._prev_key:
                self._gop = max(self._gop, index - self._prev_key)
            self._prev_key = index
        return _Raw(index, frame, seconds)

    def _convert(self, raw: _Raw, index: int) -> VideoFrame:
        frame = raw.frame
        pts = raw.pts if raw.index == index and raw.pts is not None else index / self.fps
        pixel_format, planes, full, bit_depth = _planes_of(frame)
        matrix, _ = _matrix_of(frame)
        if pixel_format == "rgb24":
            color_range = "full"
        else:
            color_range = "full" if full else _range_of(frame)
        return VideoFrame(
            planes=planes,
            pixel_format=pixel_format,
            width=frame.width,
            height=frame.height,
            pts=float(pts),
            index=index,
            color_matrix=matrix,
            color_range=color_range,
            sample_aspect=self._sample_aspect,
            bit_depth=bit_depth,
        )


class _HardwareRefused(RuntimeError):
    """The hardware device opened but this stream does not decode on it."""


# ---- PyAV frame -> VideoFrame -----------------------------------------------------------------------


def copy_plane(plane: Any) -> np.ndarray:
    """A read-only ``[height, width]`` uint8 copy of one 8-bit plane (bytes per row = width).

    Reads the plane buffer through a view with the plane's ``line_size`` stride, so the
    alignment padding at the end of each row is skipped; nothing is converted. The copy owns
    its memory, so the decoder's buffer is released with the PyAV frame.
    """
    return _frozen(_copy_rows(plane, plane.width))


def copy_plane16(plane: Any, *, big_endian: bool = False, shift: int = 0, samples: int = 1) -> np.ndarray:
    """A read-only uint16 copy of one plane of 16-bit words: ``[height, width]``, or
    ``[height, width, samples]`` for interleaved chroma (``samples`` = 2).

    Row padding is skipped as in :func:`copy_plane`; words are read in the plane's byte order
    and returned in native order; ``shift`` moves left-aligned samples (P010: 6) down to their
    code values. Nothing else changes: the values are the decoder's.
    """
    rows = _copy_rows(plane, plane.width * 2 * samples)
    words = rows.view(">u2" if big_endian else "<u2").astype(np.uint16, copy=False)
    if shift:
        words = words >> np.uint16(shift)
    if samples > 1:
        words = words.reshape(plane.height, plane.width, samples)
    return _frozen(np.ascontiguousarray(words))


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # frames are immutable after hand-off
    return array


def _copy_rows(plane: Any, row_bytes: int) -> np.ndarray:
    height, line = plane.height, plane.line_size
    if line < 0:  # bottom-up storage: the buffer starts at the last row
        return _copy_rows_positive(plane, -line, row_bytes, height)[::-1].copy()
    return _copy_rows_positive(plane, line, row_bytes, height)


def _copy_rows_positive(plane: Any, line: int, row_bytes: int, height: int) -> np.ndarray:
    buf = np.frombuffer(plane, dtype=np.uint8)
    if buf.size >= line * height:
        rows = buf[: line * height].reshape(height, line)
        return rows[:, :row_bytes].copy()
    view = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(line, 1), writeable=False)
    return np.array(view)


# Semi-planar 16-bit-word 4:2:0 (what hardware decoders download): name stem -> (bits, shift).
# P010 / P012 keep each sample in the high bits of its word (FFmpeg's descriptor: shift 6 / 4,
# low bits zero); P016 uses all 16.
_SEMI_PLANAR_WIDE = {"p010": (10, 6), "p012": (12, 4), "p016": (16, 0)}


def _semi_planar_wide(name: str) -> tuple[int, int, bool] | None:
    """(bits, shift, big endian) for p010le / p012be / p016le ...; None for anything else."""
    stem, endian = name[:-2], name[-2:]
    if stem in _SEMI_PLANAR_WIDE and endian in ("le", "be"):
        bits, shift = _SEMI_PLANAR_WIDE[stem]
        return bits, shift, endian == "be"
    return None


def _high_depth(fmt: Any) -> int:
    """Bits per sample a YUV or grey decoder output keeps (9..16), or 0 when it is delivered
    at 8 bits (8-bit formats, RGB, palettes, float or packed formats)."""
    semi = _semi_planar_wide(fmt.name)
    if semi is not None:
        return semi[0]
    comps = fmt.components
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer or not comps:
        return 0
    colour = [c for c in comps if not c.is_alpha]
    bits = colour[0].bits if colour else 0
    if not 8 < bits <= 16 or len(colour) not in (1, 3) or any(c.bits != bits for c in colour):
        return 0
    if len(colour) == 3 and all(c.plane == 0 for c in colour):  # packed (y210, xv30 ...)
        return 0
    return bits


def _planes_of(frame: Any) -> tuple[str, tuple[np.ndarray, ...], bool, int]:
    """(VideoFrame pixel format, planes, full range implied by the format, bit depth)."""
    fmt = frame.format
    name = fmt.name
    if name in _DIRECT:
        out, full = _DIRECT[name]
        return out, tuple(copy_plane(p) for p in frame.planes[:3]), full, 8
    if name in ("nv12", "nv21"):
        y = copy_plane(frame.planes[0])
        uv_plane = frame.planes[1]
        uv = _copy_rows(uv_plane, uv_plane.width * 2).reshape(uv_plane.height, uv_plane.width, 2)
        u, v = (uv[..., 0], uv[..., 1]) if name == "nv12" else (uv[..., 1], uv[..., 0])
        return "yuv420p", (y, _frozen(u.copy()), _frozen(v.copy())), False, 8
    if name == "gray":
        y = copy_plane(frame.planes[0])
        ch, cw = (frame.height + 1) // 2, (frame.width + 1) // 2
        neutral = _frozen(np.full((ch, cw), 128, np.uint8))
        return "yuv420p", (y, neutral, neutral), frame.color_range != ColorRange.MPEG, 8
    depth = _high_depth(fmt)
    if depth:
        return _high_depth_planes(frame, depth)
    out = _output_format(fmt)
    if out == "rgb24":
        return "rgb24", (_frozen(np.ascontiguousarray(frame.to_ndarray(format="rgb24"))),), True, 8
    return out, _reformatted(frame, out), _range_of(frame) == "full", 8


def _high_depth_planes(frame: Any, depth: int) -> tuple[str, tuple[np.ndarray, ...], bool, int]:
    """Planes of a 9..16-bit YUV or grey picture as uint16 code values (see the module doc)."""
    fmt = frame.format
    name = fmt.name
    semi = _semi_planar_wide(name)
    if semi is not None:
        _, shift, big = semi
        y = copy_plane16(frame.planes[0], big_endian=big, shift=shift)
        uv = copy_plane16(frame.planes[1], big_endian=big, shift=shift, samples=2)
        u, v = _frozen(uv[..., 0].copy()), _frozen(uv[..., 1].copy())
        return "yuv420p", (y, u, v), False, depth
    big = bool(fmt.is_big_endian)
    if len([c for c in fmt.components if not c.is_alpha]) == 1:  # grey: neutral chroma
        y = copy_plane16(frame.planes[0], big_endian=big)
        ch, cw = (frame.height + 1) // 2, (frame.width + 1) // 2
        neutral = _frozen(np.full((ch, cw), 1 << (depth - 1), np.uint16))
        return "yuv420p", (y, neutral, neutral), frame.color_range != ColorRange.MPEG, depth
    out = _output_format(fmt)
    full = _range_of(frame) == "full"
    planar = [c.plane for c in fmt.components[:3]] == [0, 1, 2]
    if planar and _is_layout_of(fmt, out):
        return out, tuple(copy_plane16(p, big_endian=big) for p in frame.planes[:3]), full, depth
    # 4:2:2, 4:4:0, 4:1:1, semi-planar 4:2:2 / 4:4:4 (p210, p410 ...) at n bits -> yuv444p at
    # the same n bits (swscale upsamples chroma; luma is copied)
    target = f"{out}{depth}le"
    try:
        av.VideoFormat(target)
    except (ValueError, av.FFmpegError):
        target, depth = f"{out}16le", 16  # no such depth for the target: 16 bits, same meaning
    converted = _reformatted(frame, target, raw=True)
    return out, tuple(copy_plane16(p) for p in converted.planes[:3]), full, depth


def _is_layout_of(fmt: Any, out: str) -> bool:
    """Whether the chroma planes already have ``out``'s size ("yuv420p": halved both ways,
    rounded up; "yuv444p": full size)."""
    w, h = fmt.width, fmt.height
    cw, ch = ((w + 1) // 2, (h + 1) // 2) if out == "yuv420p" else (w, h)
    return all((c.width, c.height) == (cw, ch) for c in fmt.components[1:3])


def _reformatted(frame: Any, target: str, raw: bool = False) -> Any:
    """``frame`` converted by swscale to ``target`` with its own matrix and range as both
    source and destination (only the layout or the bit depth changes); with ``raw`` the
    PyAV frame, else its first three planes copied as 8-bit planes."""
    matrix, _ = _matrix_of(frame)
    sws_range = ColorRange.JPEG if _range_of(frame) == "full" else ColorRange.MPEG
    converted = frame.reformat(
        format=target,
        src_colorspace=_MATRIX_TO_SWS[matrix], dst_colorspace=_MATRIX_TO_SWS[matrix],
        src_color_range=sws_range, dst_color_range=sws_range,
    )
    return converted if raw else tuple(copy_plane(p) for p in converted.planes[:3])


def _output_format(fmt: Any) -> str:
    """The VideoFrame pixel format a decoder output format is delivered as."""
    name = fmt.name
    if name in _DIRECT:
        return _DIRECT[name][0]
    if name in ("nv12", "nv21", "gray") or _semi_planar_wide(name):
        return "yuv420p"
    comps = fmt.components
    if _high_depth(fmt) and len([c for c in comps if not c.is_alpha]) == 1:
        return "yuv420p"  # gray10 ...: grey with neutral chroma
    if fmt.is_rgb or fmt.has_palette or fmt.is_bayer or len(comps) < 3:
        return "rgb24"  # gray float, palette, RGB: no YUV matrix to keep
    luma, chroma = comps[0], comps[1]
    halved = chroma.width * 2 >= luma.width and chroma.width < luma.width
    if halved and chroma.height < luma.height and chroma.height * 2 >= luma.height:
        return "yuv420p"
    return "yuv444p"


def _matrix_of(frame: Any) -> tuple[str, bool]:
    """(color matrix, guessed?) from the frame's tag; untagged video follows mpv's size rule."""
    matrix = _FRAME_MATRIX.get(int(frame.colorspace))
    if matrix is not None:
        return matrix, False
    hd = frame.width >= 1280 or frame.height > 576
    return ("bt709" if hd else "bt601"), True


def _range_of(frame: Any) -> str:
    rng = int(frame.color_range)
    if rng == ColorRange.JPEG:
        return "full"
    if rng == ColorRange.MPEG:
        return "limited"
    name = frame.format.name
    return "full" if name.startswith("yuvj") or name.startswith("gray") or frame.format.is_rgb else "limited"


# ---- container helpers ------------------------------------------------------------------------------


def _open_container(path: Path | Source, device: str | None = None, read_timeout: float = _READ_TIMEOUT) -> Any:
    """The file opened for reading; with ``device``, its decoders set up on that device.

    ``path`` is a local file (opened by FFmpeg by name) or a :class:`Source` that is not one
    (opened through its file object; each container gets its own)."""
    network: dict[str, str] = {}
    if isinstance(path, Source):
        what: Any = path.open()
        path = path.label  # type: ignore[assignment]
    elif isinstance(path, str) and is_url(path):
        what = path  # an HLS playlist: FFmpeg follows it, over the network protocols only
        network = {"protocol_whitelist": "http,https,tcp,tls,crypto", "reconnect": "1",
                   "rw_timeout": str(int(read_timeout * 1e6))}  # fmt: skip
    else:
        check_regular(path)  # FFmpeg would block in open() on a FIFO
        what = str(path)
    options: dict[str, Any] = {
        "metadata_errors": "replace",  # damaged metadata must not fail the open
        "timeout": (_OPEN_TIMEOUT, read_timeout),
        # Applies to the decoders avformat_find_stream_info opens (it decodes a picture or more).
        "options": {"max_pixels": str(max_pixels())},
    }
    if network:
        options["container_options"] = network
    if device is not None:
        # Raises (FFmpegError) when the device cannot be opened: no GPU, no driver, no access.
        options["hwaccel"] = av.codec.hwaccel.HWAccel(device_type=device, allow_software_fallback=True)
        return av.open(what, "r", **options)
    try:
        return av.open(what, "r", **options)
    except av.FFmpegError as exc:
        raise CorruptStream(f"cannot open as a video: {exc}", path=path) from exc


def _is_playlist(source: Source) -> bool:
    """An HLS playlist (``#EXTM3U``): its segments are other files FFmpeg must fetch itself."""
    try:
        return source.head(16).lstrip(b"\xef\xbb\xbf").startswith(b"#EXTM3U")
    except HoloscopeError:
        return False


def _close_quietly(container: Any) -> None:
    try:
        container.close()
    except Exception:
        pass


def _container_name(demuxer: str, path: Path) -> str:
    """"mp4", "mov", "matroska", "webm" ...: the demuxer's alias matching the file name."""
    names = demuxer.split(",")
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "mkv":
        suffix = "matroska"
    elif suffix == "m4v":
        suffix = "mp4"
    return suffix if suffix in names else names[0]


def _count_packets(container: Any, stream: Any) -> tuple[int, bool]:
    """(packets of the stream, whether that is all of them): counting stops after
    ``_COUNT_SECONDS`` or at a read that runs past the container's read timeout."""
    count, deadline = 0, time.monotonic() + _COUNT_SECONDS
    demux = container.demux(stream)
    try:
        for packet in demux:
            if packet.size:
                count += 1
            if time.monotonic() > deadline:
                return count, False
    except av.ExitError:  # the read timeout: a stall, or a scan through junk
        return count, False
    except av.FFmpegError:
        pass  # a damaged tail: the frames before it still play
    finally:
        demux.close()
    return count, True


def _picture_bytes(pixel_format: str | None, width: int, height: int) -> tuple[int, int]:
    """(bytes of one decoded picture, of the VideoFrame it becomes); 4 and 3 bytes per pixel
    for a format FFmpeg does not describe (or a hardware surface)."""
    pixels = width * height
    try:
        fmt = av.VideoFormat(pixel_format or "", width, height)
    except (ValueError, TypeError, av.FFmpegError):
        return 4 * pixels, 3 * pixels
    decoded = sum((c.bits + 7) // 8 * c.width * c.height for c in fmt.components) or 4 * pixels
    sample = 2 if _high_depth(fmt) else 1  # 9..16-bit samples are delivered as uint16
    return decoded, sample * (pixels * 3 // 2 if _output_format(fmt) == "yuv420p" else 3 * pixels)


def _decoder_threads() -> int:
    return min((os.cpu_count() or 1) + 1, 16)  # FFmpeg's automatic frame-thread count


def _require_playback(width: int, height: int, pixel_format: str | None, path: Path) -> None:
    """Ask the decode budget for the frames a playback holds (see ``_DECODER_FRAMES``)."""
    decoded, delivered = _picture_bytes(pixel_format, width, height)
    need = decoded * (_DECODER_FRAMES + _decoder_threads()) + delivered * _HELD_FRAMES
    budget.require(need, what=f"{width}x{height} video ({pixel_format or 'unknown pixel format'})", path=path)


def max_pixels() -> int:
    """The largest picture FFmpeg may allocate: what the budget allows at the least a pixel can
    cost (8-bit 4:2:0, 1.5 bytes); :func:`_require_playback` then checks the real format."""
    frames = _DECODER_FRAMES + _decoder_threads() + _HELD_FRAMES
    return max(64 * 64, min(int(budget.current().limit / (1.5 * frames)), (1 << 31) - 1))


def _container_duration(container: Any, stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _decoded_on_device(cc: Any, device: str) -> bool:
    """After a decoded picture: did the decoder's get_format pick the device's pixel format?

    With ``allow_software_fallback`` a decoder that cannot use the device (an unsupported
    profile, no free engine) quietly picks a software format instead; the context's pix_fmt
    tells which happened ("cuda" versus "yuv420p").
    """
    if not cc.is_hwaccel:
        return False
    hw_formats = {c.format.name for c in cc.codec.hardware_configs
                  if c.device_type.name == device and c.format is not None}
    return cc.pix_fmt in hw_formats


def _video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    if not container.streams.video:
        others = ", ".join(f"{s.type} {getattr(s.codec_context, 'name', '?')}" for s in container.streams)
        raise FormatNotRecognized(f"no video stream ({'streams: ' + others if others else 'no streams'})",
                                  path=path)
    return container.streams.video[0]
