"""Training data for hash-grid scenes: pictures read through PyAV, and Instant-NGP / nerfstudio
``transforms.json`` datasets (hashgrid.md §6).

Pictures: the first frame of any still FFmpeg decodes. Float pictures (EXR's ``gbrpf32le`` /
``gbrapf32le``) are linear light; integer ones (PNG, JPEG: 8 or 16 bits) are sRGB-encoded.
Colour is returned in [R, G, B] order with alpha apart.

``transforms.json`` follows instant-ngp's ``nerf_loader`` (see :func:`load_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holoscope.core import budget
from holoscope.core.errors import CorruptStream, FormatNotRecognized, InvalidArgument
from holoscope.core.files import check_regular

MAX_PICTURE_BYTES = 1 << 30
MAX_PICTURE_SIDE = 1 << 15
MAX_PICTURE_PIXELS = 1 << 28  # 16K x 16K
OPEN_TIMEOUT = 10.0  # seconds: FFmpeg's open and read timeouts


@dataclass
class Picture:
    rgb: np.ndarray  # float32 [H, W, 3]
    alpha: np.ndarray | None  # float32 [H, W] in [0, 1], or None when the picture has none
    linear: bool  # float (linear light, e.g. EXR) rather than sRGB-encoded integers


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """instant-ngp's ``linear_to_srgb``: 12.92 x below 0.0031308, else 1.055 x^(1/2.4) - 0.055."""
    x = np.asarray(x, np.float32)
    return np.where(x < 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055).astype(
        np.float32
    )


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.where(x < 0.04045, x / 12.92, np.power((np.maximum(x, 0.04045) + 0.055) / 1.055, 2.4)).astype(np.float32)


def _is_float(name: str) -> bool:
    return "f32" in name or "f16" in name


def read_picture(path: str | Path, *, what: str = "a picture") -> Picture:
    """The first picture of ``path`` as float RGB (+ alpha), refusing files and sizes past the
    caps and the decode budget before decoding."""
    import av

    st = check_regular(path)
    if st.st_size > MAX_PICTURE_BYTES:
        raise FormatNotRecognized(f"{st.st_size:,} bytes is larger than the pictures holoscope trains on", path=path)
    options = {"max_pixels": str(MAX_PICTURE_PIXELS)}
    try:
        container = av.open(str(path), "r", options=options, metadata_errors="replace",
                            timeout=(OPEN_TIMEOUT, OPEN_TIMEOUT))  # fmt: skip
    except av.FFmpegError as exc:
        raise FormatNotRecognized(f"cannot read as {what}: {exc}", path=path) from None
    try:
        streams = container.streams.video
        if not streams:
            raise FormatNotRecognized(f"holds no picture ({what} was expected)", path=path)
        stream = streams[0]
        w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        if w and h:
            _check_size(w, h, path)
            budget.require(w * h * 4 * 4 * 3, what=f"a {w}x{h} picture", path=path)
        try:
            frame = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise CorruptStream(f"cannot decode {what}: {exc}", path=path) from None
        if frame is None:
            raise CorruptStream(f"holds no decodable picture ({what} was expected)", path=path)
        _check_size(frame.width, frame.height, path)
        return _to_picture(frame)
    finally:
        container.close()


def _check_size(w: int, h: int, path) -> None:
    if not (1 <= w <= MAX_PICTURE_SIDE and 1 <= h <= MAX_PICTURE_SIDE and w * h <= MAX_PICTURE_PIXELS):
        raise InvalidArgument(f"a {w}x{h} picture is outside what holoscope trains on (sides up to "
                              f"{MAX_PICTURE_SIDE}, {MAX_PICTURE_PIXELS:,} pixels)", path=path)  # fmt: skip


def _to_picture(frame) -> Picture:
    fmt = frame.format
    has_alpha = any(c.is_alpha for c in fmt.components)
    if _is_float(fmt.name):
        target = "gbrapf32le" if has_alpha else "gbrpf32le"
        data = (frame if fmt.name == target else frame.reformat(format=target)).to_ndarray().astype(np.float32)
        scale, linear = 1.0, True
    elif max(c.bits for c in fmt.components) > 8:
        target = "rgba64le" if has_alpha else "rgb48le"
        data, scale, linear = frame.reformat(format=target).to_ndarray(), 1 / 65535, False
    else:
        target = "rgba" if has_alpha else "rgb24"
        data, scale, linear = frame.reformat(format=target).to_ndarray(), 1 / 255, False
    data = data.astype(np.float32) * np.float32(scale)
    rgb = np.ascontiguousarray(data[..., :3])
    alpha = np.clip(data[..., 3], 0, 1) if has_alpha else None
    return Picture(rgb, alpha, linear)


def load_image_target(path: str | Path) -> np.ndarray:
    """An image to fit in image mode: float32 [H, W, 3], sRGB-encoded as instant-ngp trains
    on it (its default ``linear_colors = false``): linear (float) pictures go through
    :func:`linear_to_srgb`, 8/16-bit ones are already sRGB. Alpha is dropped. Non-finite
    samples are refused."""
    pic = read_picture(path, what="an image")
    if not np.isfinite(pic.rgb).all():
        raise CorruptStream("the image holds NaN or infinite samples", path=path)
    return linear_to_srgb(pic.rgb) if pic.linear else pic.rgb


__all__ = ["Picture", "linear_to_srgb", "load_image_target", "read_picture", "srgb_to_linear"]
