"""One group of frames as one MP4: attribute images in, attribute images out.

Every stream of the plan becomes one video stream of the segment; all start with a key frame,
so a segment decodes on its own (random access and streaming are per segment). The planes of a
picture are written and read directly (:mod:`.planes`), never through swscale.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from typing import Any, Callable, Iterator

import av
import numpy as np

from holoscope.codecs.gsvideo.parallel import Lockstep
from holoscope.codecs.gsvideo.plan import DECODER_NAMES, StreamSpec
from holoscope.codecs.gsvideo.planes import bit_depth, make_frame
from holoscope.core.errors import CorruptStream

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise

OPEN_TIMEOUT = 2.0
READ_TIMEOUT = 3.0


def encoder_options(spec: StreamSpec, frames: int, speed: str) -> dict[str, str]:
    """FFmpeg options for one stream: constant qp (0 = lossless), one key frame at the start."""
    gop = str(max(1, frames))
    if spec.codec == "libx264":
        return {"qp": str(spec.qp), "g": gop, "keyint_min": gop, "sc_threshold": "0", "preset": speed,
                "x264-params": "log-level=error" + (":cabac=0" if spec.cavlc else "")}  # fmt: skip
    if spec.codec == "libx265":
        quality = "lossless=1" if spec.qp == 0 else f"qp={spec.qp}"
        # No B-frames: with them libx265 hands out broken timestamps for a 2-frame group.
        return {"preset": speed,
                "x265-params": f"{quality}:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:log-level=error"}
    if spec.codec == "libsvtav1":
        return {"preset": "8", "svtav1-params": f"rc=0:qp={max(1, spec.qp)}:keyint={gop}"}
    if spec.codec == "ffv1":
        return {"level": "3", "slices": "4", "g": gop}
    raise ValueError(f"unknown encoder {spec.codec}")


def plane_step(spec: StreamSpec, value_bits: int) -> int:
    """Headroom of a plane: a value of ``value_bits`` bits is stored as ``v * step + step // 2``."""
    return 1 << (bit_depth(spec.pix_fmt) - value_bits)


def encode_segment(pictures: list[list[list[np.ndarray]]], streams: list[StreamSpec], fps: float, *,
                   speed: str = "medium", threads: int = 0) -> tuple[bytes, list[int]]:  # fmt: skip
    """``pictures[frame][stream]`` = that stream's planes for the frame (sample values, already
    stepped). Returns the MP4 bytes and the bytes each stream's packets take."""
    buf = io.BytesIO()
    sizes = [0] * len(streams)
    rate = Fraction(fps).limit_denominator(1001)
    height, width = pictures[0][0][0].shape
    with av.open(buf, "w", format="mp4") as container:
        outs = []
        for spec in streams:
            out = container.add_stream(spec.codec, rate=rate)
            out.width, out.height, out.pix_fmt = width, height, spec.pix_fmt
            out.options = encoder_options(spec, len(pictures), speed)
            out.codec_context.thread_count = threads
            outs.append(out)
        for number, frame_planes in enumerate(pictures):
            for index, (spec, out) in enumerate(zip(streams, outs)):
                picture = make_frame(frame_planes[index], spec.pix_fmt)
                picture.pts = number
                picture.time_base = 1 / rate
                for packet in out.encode(picture):
                    sizes[index] += packet.size
                    container.mux(packet)
        for index, out in enumerate(outs):
            for packet in out.encode():
                sizes[index] += packet.size
                container.mux(packet)
    return buf.getvalue(), sizes


def _pictures(codec: Any, packets: list[Any], name: str, label: str) -> Iterator[Any]:
    """Decoded pictures of one stream's packets (the decoder flushed at the end)."""
    try:
        for packet in packets:
            yield from codec.decode(packet)
        yield from codec.decode(None)
    except av.FFmpegError as exc:
        raise CorruptStream(f"stream {name} does not decode: {exc}", path=label) from exc


def _converted(run: Iterator[Any], stream: int, convert: Callable[[int, int, Any], Any]) -> Iterator[Any]:
    for number, picture in enumerate(run):
        yield convert(number, stream, picture)


def _open(data: bytes, label: str) -> Any:
    try:
        # The MP4 header says all a decoder needs: stream analysis decodes nothing (skip_frame).
        return av.open(io.BytesIO(data), "r", format="mp4", timeout=(OPEN_TIMEOUT, READ_TIMEOUT),
                       options={"max_pixels": str(1 << 28), "skip_frame": "all", "probesize": "32"})  # fmt: skip
    except (av.FFmpegError, ValueError) as exc:
        raise CorruptStream(f"segment does not open as MP4: {exc}", path=label) from exc


def decode_segment(data: bytes, streams: list[StreamSpec], width: int, height: int, frames: int, label: str, *,
                   threads: int = 1, hwaccel: Any = None,
                   convert: Callable[[int, int, Any], Any] | None = None) -> Iterator[list[Any]]:  # fmt: skip
    """Decoded pictures of a segment, one list (a picture per stream, in plan order) per frame.

    The pictures are PyAV frames (read their planes with :func:`.planes.read_planes`), or what
    ``convert(frame_number, stream_index, picture)`` makes of each, called on the decode
    thread that produced the picture (so the work that follows decoding runs in parallel too).
    Raises CorruptStream when the segment does not match its plan (streams, codecs, sizes,
    frame count) or cannot be decoded."""
    container = _open(data, label) if hwaccel is None else _open_hw(data, label, hwaccel)
    try:
        video = list(container.streams.video)
        if len(video) != len(streams) or len(container.streams) != len(streams):
            raise CorruptStream(f"segment has {len(container.streams)} streams, the header lists {len(streams)}", path=label)
        for stream, spec in zip(video, streams):
            if stream.codec_context.name != DECODER_NAMES[spec.codec] and not stream.codec_context.name.startswith(DECODER_NAMES[spec.codec]):
                if not (spec.codec == "libsvtav1" and stream.codec_context.name in ("libdav1d", "av1")):
                    raise CorruptStream(f"stream {spec.name} is {stream.codec_context.name}, expected {DECODER_NAMES[spec.codec]}", path=label)
            if (stream.codec_context.width, stream.codec_context.height) != (width, height):
                raise CorruptStream(f"stream {spec.name} is {stream.codec_context.width}x{stream.codec_context.height}, expected {width}x{height}", path=label)
            stream.codec_context.thread_count = threads  # streams decode side by side (see .parallel)
        packets: list[list[Any]] = [[] for _ in streams]
        try:
            for packet in container.demux(video):
                if packet.size:
                    packets[packet.stream.index].append(packet)
        except av.FFmpegError as exc:
            raise CorruptStream(f"segment does not demux: {exc}", path=label) from exc
        runs = [_pictures(stream.codec_context, p, spec.name, label) for stream, p, spec in zip(video, packets, streams)]
        if convert is not None:
            runs = [_converted(run, index, convert) for index, run in enumerate(runs)]
        lockstep = Lockstep(runs)
        try:
            for number in range(frames):
                pictures = lockstep.next()
                if any(p is None for p in pictures):
                    short = streams[next(i for i, p in enumerate(pictures) if p is None)].name
                    raise CorruptStream(f"segment ends after {number} of {frames} frames (stream {short})", path=label)
                yield pictures
        finally:
            lockstep.close()
    finally:
        container.close()


class HardwareUnavailable(Exception):
    """The hardware device could not be opened for this segment (no GPU, no driver, no access)."""


def _open_hw(data: bytes, label: str, hwaccel: Any) -> Any:
    try:
        return av.open(io.BytesIO(data), "r", format="mp4", timeout=(OPEN_TIMEOUT, READ_TIMEOUT), hwaccel=hwaccel)
    except (av.FFmpegError, ValueError, OSError) as exc:
        _open(data, label).close()  # a segment software cannot open either is damaged, not a device problem
        raise HardwareUnavailable(str(exc)) from exc
