"""A group of frames <-> attribute pictures: ordering, per-group ranges, quantisation, planes.

The inverse of each step runs at decode time: samples are gathered straight from the decoded
planes at the pixels the placement gives, values are taken out of their headroom, high and low
parts are joined, and each channel is dequantised into the output arrays in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from holoscope.codecs.gsvideo.channels import cloud_channels, quantise
from holoscope.codecs.gsvideo.layout import (from_image, image_size, index_correspondence, match_order, morton_order,
                                             raster_order, to_image)  # fmt: skip
from holoscope.codecs.gsvideo.plan import POSITION, StreamSpec, value_bits
from holoscope.codecs.gsvideo.planes import bit_depth, read_planes
from holoscope.core.frames import SplatCloud, sh_coeff_count


@dataclass
class CodedGroup:
    pictures: list[list[list[np.ndarray]]]  # [frame][stream][plane] sample images
    order: str  # "index" or "matched"
    orders: list[np.ndarray]  # per frame: decoded splat i is input splat orders[f][i]
    ranges: np.ndarray  # float32 [channels, 2]
    counts: list[int]
    width: int
    height: int


def group_order(clouds: list[SplatCloud], force_matching: bool = False) -> tuple[str, list[np.ndarray]]:
    """One Morton order for the whole group when splat i is one Gaussian in every frame; else
    frame 0's Morton order, each later frame matched to the one before (:func:`match_order`)."""
    lo = np.min([c.means.min(axis=0) for c in clouds], axis=0)
    hi = np.max([c.means.max(axis=0) for c in clouds], axis=0)
    if not force_matching and index_correspondence(clouds):
        order = morton_order(clouds[0].means, lo, hi)
        return "index", [order] * len(clouds)
    orders = [morton_order(clouds[0].means, lo, hi)]
    for previous, cloud in zip(clouds, clouds[1:]):
        orders.append(match_order(previous.means[orders[-1]], cloud.means, lo, hi))
    return "matched", orders


def _sample_dtype(spec: StreamSpec) -> type:
    return np.uint8 if bit_depth(spec.pix_fmt) == 8 else np.uint16


def _part(q: np.ndarray, part: str, bits: int) -> np.ndarray:
    if part == "hi":
        return q >> (bits - 8)
    if part == "lo":
        return q & ((1 << (bits - 8)) - 1)
    return q


def code_group(clouds: list[SplatCloud], bits: dict[str, int], streams: list[StreamSpec], sh_degree: int, *,
               force_matching: bool = False) -> CodedGroup:  # fmt: skip
    """Quantised attribute pictures for a group of frames (see the module docstring)."""
    order_kind, orders = group_order(clouds, force_matching)
    values, previous = [], None
    for cloud, order in zip(clouds, orders):
        channels = cloud_channels(cloud, sh_degree, order, previous if order_kind == "index" else None)
        previous = np.stack([channels[c] for c in ("qw", "qx", "qy", "qz")], axis=1)
        values.append(channels)
    names = list(bits)
    ranges = np.array([[min(float(v[c].min()) for v in values), max(float(v[c].max()) for v in values)]
                       for c in names], np.float32)  # fmt: skip
    counts = [c.count for c in clouds]
    width, height = image_size(max(counts))
    pictures = []
    for frame_values in values:
        q = {c: quantise(frame_values[c], float(ranges[i, 0]), float(ranges[i, 1]), bits[c]) for i, c in enumerate(names)}
        frame_pictures = []
        for spec in streams:
            planes = []
            for plane in spec.planes:
                vbits = value_bits(plane, bits[plane.channel])
                step = 1 << (bit_depth(spec.pix_fmt) - vbits)
                sample = _part(q[plane.channel], plane.part, bits[plane.channel]).astype(np.uint32) * step + step // 2
                planes.append(to_image(sample.astype(_sample_dtype(spec)), width, height))
            frame_pictures.append(planes)
        pictures.append(frame_pictures)
    # The decoder hands Gaussians out in raster order of their pixels: say which input each is.
    decoded_orders = [raster_order(order, width, height) for order in orders]
    return CodedGroup(pictures, order_kind, decoded_orders, ranges, counts, width, height)


class GroupDecoder:
    """Turns the decoded pictures of one frame back into a SplatCloud.

    Channels are dequantised straight into the output arrays (one multiply, one add, then the
    activation: exp for log-scales, clamping for opacity), on contiguous memory (see
    :meth:`_targets`); a lookup table (``np.take``) measured slower than that."""

    def __init__(self, bits: dict[str, int], streams: list[StreamSpec], sh_degree: int, ranges: np.ndarray,
                 width: int, height: int) -> None:  # fmt: skip
        self.bits, self.streams, self.sh_degree = bits, streams, sh_degree
        self.width, self.height = width, height
        self.linear: dict[str, tuple[np.float32, np.float32]] = {}
        for i, channel in enumerate(bits):
            lo, hi = float(ranges[i, 0]), float(ranges[i, 1])
            top = (1 << bits[channel]) - 1
            self.linear[channel] = (np.float32((hi - lo) / top if hi > lo else 0.0), np.float32(lo))

    def _dequantise(self, channel: str, q: np.ndarray, out: np.ndarray) -> None:
        step, lo = self.linear[channel]
        np.multiply(q, step, out=out, casting="unsafe")
        out += lo
        if channel in _LOG_SCALES:
            np.exp(out, out=out)
        elif channel == "opacity":
            np.clip(out, 0, 1, out=out)

    def _targets(self, n: int) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
        # Every attribute is stored component-major ([3, N] seen as its [N, 3] transpose; SH as
        # [3, K, N]): each channel is then written, and the quaternions normalised, on
        # contiguous memory (3-6x faster than the columns of [N, 3]). The renderer's packing
        # reads means, scales and rotations column by column anyway.
        means = np.empty((3, n), np.float32).T
        scales = np.empty((3, n), np.float32).T
        quats = np.empty((4, n), np.float32).T
        opacities = np.empty(n, np.float32)
        sh = np.empty((3, sh_coeff_count(self.sh_degree), n), np.float32).transpose(2, 1, 0)
        out = {c: means[:, i] for i, c in enumerate(POSITION)}
        out.update({c: sh[:, 0, i] for i, c in enumerate("rgb")})
        out.update({c: scales[:, i] for i, c in enumerate(("sx", "sy", "sz"))})
        out.update({c: quats[:, i] for i, c in enumerate(("qw", "qx", "qy", "qz"))})
        out["opacity"] = opacities
        for k in range(1, sh_coeff_count(self.sh_degree)):
            for i, c in enumerate("rgb"):
                out[f"sh{k}{c}"] = sh[:, k, i]
        return out, (means, scales, quats, opacities, sh)

    def cloud(self, pictures: list[Any], count: int, metadata: dict | None = None) -> SplatCloud:
        """The frame whose pictures (one per stream) are given, in one call."""
        frame = self.frame(count)
        parts = [frame.take(spec, picture) for spec, picture in zip(self.streams, pictures)]
        return frame.finish(parts, metadata)

    def frame(self, count: int) -> "FrameOutput":
        """Output arrays for one frame of ``count`` Gaussians, filled stream by stream."""
        return FrameOutput(self, count)


class FrameOutput:
    """One frame being dequantised: :meth:`take` writes a stream's channels into the output
    arrays (the streams of a frame may be taken on different threads at once: they write
    different columns), :meth:`finish` joins split channels, normalises and builds the cloud."""

    def __init__(self, decoder: GroupDecoder, count: int) -> None:
        self.decoder, self.count = decoder, count
        self.out, self.arrays = decoder._targets(count)

    def take(self, spec: StreamSpec, picture: Any) -> dict[str, dict[str, np.ndarray]]:
        """Dequantise the planes of ``picture`` (stream ``spec``); returns the high and low parts
        of split channels, which need both of their streams."""
        decoder, count = self.decoder, self.count
        parts: dict[str, dict[str, np.ndarray]] = {}
        planes = read_planes(picture, len(spec.planes))
        depth = bit_depth(spec.pix_fmt)
        for plane, samples in zip(spec.planes, planes):
            values = from_image(samples, count)
            shift = depth - value_bits(plane, decoder.bits[plane.channel])
            if shift:
                values = values >> shift
            if plane.part:
                parts.setdefault(plane.channel, {})[plane.part] = values.copy()  # outlives the picture
            else:
                decoder._dequantise(plane.channel, values, self.out[plane.channel])
        return parts

    def finish(self, parts: list[dict[str, dict[str, np.ndarray]]], metadata: dict | None = None) -> SplatCloud:
        joined: dict[str, dict[str, np.ndarray]] = {}
        for stream_parts in parts:
            for channel, halves in stream_parts.items():
                joined.setdefault(channel, {}).update(halves)
        for channel, halves in joined.items():
            q = halves["hi"].astype(np.uint32) << (self.decoder.bits[channel] - 8)
            q |= halves["lo"]
            self.decoder._dequantise(channel, q, self.out[channel])
        means, scales, quats, opacities, sh = self.arrays
        _normalise(quats)
        return SplatCloud(means, scales, quats, opacities, sh, metadata or {})


_LOG_SCALES = ("sx", "sy", "sz")


def _normalise(quats: np.ndarray) -> None:
    """Quantised components no longer make a unit quaternion: normalise in place, column by
    column (several times faster than einsum or a broadcast divide on [N, 4])."""
    columns = [quats[:, i] for i in range(4)]
    norm2 = columns[0] * columns[0]
    for c in columns[1:]:
        norm2 += c * c
    bad = norm2 < 1e-16
    if bad.any():
        norm2[bad] = 1
        quats[bad] = (1, 0, 0, 0)
    inverse = np.sqrt(norm2, out=norm2)
    np.divide(1, inverse, out=inverse)
    for c in columns:
        c *= inverse
