"""Reference decoding for the tests: whole videos and images to RGB through PyAV/swscale, with
the colour matrix a file is tagged with. Independent of holoscope's own frame path (planes +
GL shader), which the tests compare against it; not part of the package (issue 8: test helpers
are not shipped inside codecs/video/decode.py)."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange

from holoscope.codecs.video.decode import _FRAME_MATRIX, _MATRIX_TO_SWS, _OPEN_TIMEOUT, _READ_TIMEOUT, _video_stream
from holoscope.core.errors import FormatNotRecognized
from holoscope.core.files import check_regular

_UNTAGGED_MATRIX = "bt709"  # what holoscope writes; FFmpeg itself would assume BT.601
_RANGE_NAMES = {1: "limited", 2: "full"}


def read_video_frames(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Decode every frame of a video's first video stream to ``[H, W, 3] uint8`` RGB."""
    with _open_input(path) as container:
        return [_to_rgb(frame) for frame in container.decode(_video_stream(container, path))]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a PNG or JPEG (the file itself, never a ``%d`` pattern) to ``[H, W, 3] uint8`` RGB."""
    with _open_input(path, format="image2", options={"pattern_type": "none"}) as container:
        for frame in container.decode(_video_stream(container, path)):
            return _to_rgb(frame)
    raise FormatNotRecognized("no image could be decoded", path=path)


def probe_video(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Frame count, size, fps (a Fraction), codec and colour tags of a video's first stream."""
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        info = {
            "frames": stream.frames,
            "width": cc.width,
            "height": cc.height,
            "fps": Fraction(stream.average_rate or stream.guessed_rate or 0),
            "codec": cc.codec.canonical_name,  # "av1", not the decoder's name "libdav1d"
            "pix_fmt": cc.pix_fmt,
            "color_matrix": "rgb" if cc.colorspace == 0 else _FRAME_MATRIX.get(cc.colorspace, "unspecified"),
            "color_range": _RANGE_NAMES.get(cc.color_range, "unspecified"),
        }
        if not info["frames"]:  # Matroska stores no count: count the packets instead
            info["frames"] = sum(1 for packet in container.demux(stream) if packet.size)
        return info


def _open_input(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    check_regular(path)
    try:
        return av.open(str(path), "r", timeout=(_OPEN_TIMEOUT, _READ_TIMEOUT), **kwargs)
    except av.FFmpegError as exc:
        raise FormatNotRecognized(f"cannot open: {exc}", path=path) from exc


def _reference_matrix(frame: av.VideoFrame) -> str:
    """The colour matrix :func:`read_video_frames` converts a YUV frame with: its tag through
    the same table as the frames the player shows (``_FRAME_MATRIX``); untagged, BT.709."""
    return _FRAME_MATRIX.get(int(frame.colorspace), _UNTAGGED_MATRIX)


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    if not frame.format.name.startswith("yuv"):
        return frame.to_ndarray(format="rgb24")  # RGB/gray/palette: no matrix involved
    matrix = _MATRIX_TO_SWS[_reference_matrix(frame)]
    full = frame.color_range == ColorRange.JPEG or frame.format.name.startswith("yuvj")
    return frame.to_ndarray(
        format="rgb24", src_colorspace=matrix, dst_colorspace=matrix,
        src_color_range=ColorRange.JPEG if full else ColorRange.MPEG, dst_color_range=ColorRange.JPEG,
    )
