"""Bit-exact plane I/O with PyAV: attribute images in and out of video frames.

Data planes never go through swscale (``to_ndarray(format=...)`` or ``reformat`` apply range
conversion and corrupt data): they are written with ``plane.update`` honouring the plane's line
size and read with ``np.frombuffer`` using the line-size stride.
"""

from __future__ import annotations

import av
import numpy as np

# pixel format -> (bytes per sample, planes, chroma subsampled, significant bits)
PIXEL_FORMATS: dict[str, tuple[int, int, bool, int]] = {
    "gray": (1, 1, False, 8),
    "gray10le": (2, 1, False, 10),
    "gray12le": (2, 1, False, 12),
    "gray16le": (2, 1, False, 16),
    "yuv420p": (1, 3, True, 8),
    "yuvj420p": (1, 3, True, 8),
    "yuv420p10le": (2, 3, True, 10),
    "yuv444p": (1, 3, False, 8),
    "yuvj444p": (1, 3, False, 8),
    "yuv444p10le": (2, 3, False, 10),
    "yuv444p12le": (2, 3, False, 12),
    "yuv444p16le": (2, 3, False, 16),
}
# Formats a hardware decoder hands back after the transfer to system memory: NV12 (8-bit luma
# plane, interleaved chroma) and P010 (10-bit values in the high bits of 16-bit words).
HW_TRANSFER_FORMATS = {"nv12": (1, 8, 0), "p010le": (2, 10, 6), "p016le": (2, 16, 0)}


def data_planes(pix_fmt: str) -> int:
    """How many planes of ``pix_fmt`` carry full-resolution data (1 for 4:2:0 and grey)."""
    size, planes, subsampled, _ = PIXEL_FORMATS[pix_fmt]
    return 1 if subsampled else planes


def bit_depth(pix_fmt: str) -> int:
    return PIXEL_FORMATS[pix_fmt][3]


def make_frame(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    """A frame whose data planes hold ``planes`` (each ``[H, W]`` uint8 or uint16) exactly.
    Planes not given (the chroma of a 4:2:0 frame, or spare planes) are filled with the
    neutral mid value, which costs almost nothing to code."""
    size, count, subsampled, depth = PIXEL_FORMATS[pix_fmt]
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    dtype = np.uint8 if size == 1 else np.dtype("<u2")
    neutral = 1 << (depth - 1)
    for index, plane in enumerate(frame.planes):
        ph, pw = plane.height, plane.width
        if index < len(planes):
            data = np.asarray(planes[index])
            if data.shape != (ph, pw):
                raise ValueError(f"plane {index} is {data.shape}, the frame needs {(ph, pw)}")
            data = data.astype(dtype, copy=False)
        else:
            data = np.full((ph, pw), neutral, dtype)
        stride = plane.line_size // size
        if stride != pw:
            padded = np.zeros((ph, stride), dtype)
            padded[:, :pw] = data
            data = padded
        plane.update(np.ascontiguousarray(data).tobytes())
    return frame


def read_planes(frame: av.VideoFrame, count: int | None = None) -> list[np.ndarray]:
    """The data planes of a decoded frame as ``[H, W]`` arrays (uint8, or uint16 holding the
    coded values), read straight from the frame's buffers. Views into the frame's memory:
    copy them if they must outlive the frame. NV12 / P010 (a hardware decoder's output) give
    their luma plane only, with P010's padding bits shifted out."""
    fmt = frame.format.name
    if fmt in HW_TRANSFER_FORMATS:
        size, _, shift = HW_TRANSFER_FORMATS[fmt]
        available = 1
    elif fmt in PIXEL_FORMATS:
        size, _, _, _ = PIXEL_FORMATS[fmt]
        shift = 0
        available = data_planes(fmt)
    else:
        raise ValueError(f"pixel format {fmt} does not carry attribute planes")
    count = available if count is None else count
    if count > available:
        raise ValueError(f"a {fmt} frame has {available} data plane(s), {count} asked for")
    dtype = np.uint8 if size == 1 else np.dtype("<u2")
    out = []
    for plane in list(frame.planes)[:count]:
        h, w = plane.height, plane.width
        buf = np.frombuffer(plane, dtype)
        arr = buf.reshape(h, plane.line_size // size)[:, :w]
        out.append(arr >> shift if shift else arr)
    return out
