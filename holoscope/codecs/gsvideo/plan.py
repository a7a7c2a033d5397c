"""What a .gsv stream carries and how: channels, the planes that hold them, presets.

A *channel* is one attribute component (``x``, ``opacity``, ``sh3g`` ...) quantised per group of
frames to ``bits`` bits with a per-group min/max. A *plane* of a video stream holds one channel,
or the high or low part of a wide channel in narrow planes (16-bit positions in 8-bit planes).
A plane sample stores a value ``v`` as ``v * step + step // 2`` where ``step`` is the plane's
headroom (``2 ** (depth - value_bits)``): a lossy codec may move the sample by less than half a
step and ``sample // step`` still gives ``v`` back, which is how the high byte of a position
survives a 4:2:0 10-bit hardware profile.

Presets name a whole plan; the plan is written into the file, so a reader needs no preset table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from holoscope.codecs.gsvideo.planes import PIXEL_FORMATS, bit_depth, data_planes
from holoscope.core.errors import InvalidArgument

POSITION = ("x", "y", "z")
COLOR = ("r", "g", "b")  # SH DC coefficients
SCALE = ("sx", "sy", "sz")  # natural log of the linear scales
ROTATION = ("qw", "qx", "qy", "qz")
OPACITY = ("opacity",)


def sh_channels(degree: int) -> tuple[str, ...]:
    """Higher-band SH channels up to ``degree``: coefficient-major, colour innermost."""
    return tuple(f"sh{k}{c}" for k in range(1, (degree + 1) ** 2) for c in "rgb")


def channel_names(sh_degree: int) -> tuple[str, ...]:
    return POSITION + COLOR + OPACITY + SCALE + ROTATION + sh_channels(sh_degree)


# Which attribute a channel belongs to (for per-attribute byte and error reports).
def attribute_of(channel: str) -> str:
    if channel in POSITION:
        return "position"
    if channel in COLOR:
        return "color"
    if channel in SCALE:
        return "scale"
    if channel in ROTATION:
        return "rotation"
    if channel == "opacity":
        return "opacity"
    return "sh"


@dataclass(frozen=True)
class PlaneSpec:
    channel: str
    part: str = ""  # "", "hi" (top 8 bits) or "lo" (the bits below those)

    def encode(self) -> str:
        return f"{self.channel}.{self.part}" if self.part else self.channel

    @classmethod
    def decode(cls, text: str) -> "PlaneSpec":
        channel, _, part = text.partition(".")
        if part not in ("", "hi", "lo"):
            raise ValueError(f"unknown plane part {part!r}")
        return cls(channel, part)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    codec: str  # an FFmpeg encoder name: libx264, libx265, libsvtav1, ffv1
    pix_fmt: str
    qp: int  # 0: lossless
    planes: tuple[PlaneSpec, ...]
    # H.264 with CAVLC instead of CABAC: about 2.5x faster to decode for +10% bytes, worth it
    # on the position streams, which carry most of the bits and bound the decode rate.
    cavlc: bool = False

    def to_json(self) -> dict:
        data = {"name": self.name, "codec": self.codec, "pix_fmt": self.pix_fmt, "qp": self.qp,
                "planes": [p.encode() for p in self.planes]}  # fmt: skip
        if self.cavlc:
            data["cavlc"] = True
        return data

    @classmethod
    def from_json(cls, data: dict) -> "StreamSpec":
        return cls(str(data["name"]), str(data["codec"]), str(data["pix_fmt"]), int(data["qp"]),
                   tuple(PlaneSpec.decode(str(p)) for p in data["planes"]), bool(data.get("cavlc", False)))  # fmt: skip


CODECS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1", "ffv1": "ffv1"}
DECODER_NAMES = {"libx264": "h264", "libx265": "hevc", "libsvtav1": "av1", "ffv1": "ffv1"}


@dataclass(frozen=True)
class Preset:
    """A coding plan before it meets a sequence: bits and qp per attribute, codec, layout."""

    name: str
    codec: str  # key of CODECS
    layout: str  # "packed" (3 channels per 4:4:4 picture) or "planar" (one channel in Y of 4:2:0)
    pix_fmt: str
    position_bits: int
    attribute_bits: int
    qp: dict[str, int] = field(default_factory=dict)  # by stream group (see stream_groups)
    max_sh_degree: int = 3
    description: str = ""
    # Positions in a wider picture of their own (codec key, pix_fmt), e.g. 12-bit HEVC; None:
    # the preset's codec and pixel format (split into high and low parts when wider).
    position_format: tuple[str, str] | None = None
    fast_positions: bool = False  # code the position streams with CAVLC (H.264 only)


PRESETS: dict[str, Preset] = {
    "lossless": Preset("lossless", "ffv1", "packed", "yuv444p16le", 16, 16,
                       {"pos": 0, "color": 0, "opacity": 0, "scale": 0, "rot": 0, "sh": 0}, 3,
                       "every attribute quantised to 16 bits per group and coded losslessly (FFV1)"),
    "high": Preset("high", "h264", "packed", "yuv444p", 16, 8,
                   {"pos_hi": 0, "pos_lo": 28, "color": 10, "opacity": 10, "scale": 10, "rot": 10, "sh": 18}, 3,
                   "16-bit positions (high byte lossless, low byte qp 28), attributes at qp 10, SH kept",
                   position_format=("h264", "gray"), fast_positions=True),
    "medium": Preset("medium", "h264", "packed", "yuv444p", 10, 8,
                     {"pos": 0, "color": 12, "opacity": 12, "scale": 12, "rot": 12, "sh": 24}, 2,
                     "10-bit positions coded losslessly, attributes at qp 12, SH up to degree 2",
                     position_format=("h264", "gray10le"), fast_positions=True),
    "low": Preset("low", "h264", "packed", "yuv444p", 10, 8,
                  {"pos": 0, "color": 16, "opacity": 16, "scale": 16, "rot": 16, "sh": 28}, 1,
                  "10-bit positions coded losslessly, attributes at qp 16, SH up to degree 1",
                  position_format=("h264", "gray10le"), fast_positions=True),
    "hw": Preset("hw", "hevc", "planar", "yuv420p10le", 16, 8,
                 {"pos_hi": 2, "pos_lo": 20, "color": 16, "opacity": 16, "scale": 16, "rot": 16, "sh": 26}, 1,
                 "4:2:0 10-bit HEVC (Main10, hardware decodable), one attribute per picture"),
}
DEFAULT_PRESET = "medium"


def _qp(preset: Preset, group: str) -> int:
    if group in preset.qp:
        return preset.qp[group]
    return preset.qp.get("pos", 0) if group.startswith("pos") else preset.qp.get(group, 0)


def build_streams(preset: Preset, sh_degree: int, codec: str | None = None) -> tuple[dict[str, int], list[StreamSpec]]:
    """The channel bit depths and the streams that carry them for a sequence of ``sh_degree``."""
    codec = codec or preset.codec
    if codec not in CODECS:
        raise InvalidArgument(f"unknown codec {codec!r}; choose from {', '.join(c for c in CODECS if c != 'ffv1')}")
    layout, pix_fmt = preset.layout, preset.pix_fmt
    if codec == "av1" and layout == "packed":  # SVT-AV1 codes 4:2:0 only
        layout, pix_fmt = "planar", "yuv420p10le"
    if codec == "ffv1" and preset.name != "lossless":
        raise InvalidArgument("ffv1 is the lossless preset's codec; the others take h264, hevc or av1")
    encoder = CODECS[codec]
    depth = bit_depth(pix_fmt)
    degree = min(sh_degree, preset.max_sh_degree)
    bits = {c: preset.attribute_bits for c in channel_names(degree)}
    bits.update({c: preset.position_bits for c in POSITION})
    groups: list[tuple[str, list[PlaneSpec]]] = []
    position_stream: tuple[str, str] | None = None
    if preset.position_format is not None:
        position_stream = (CODECS[preset.position_format[0]], preset.position_format[1])
        depth = bit_depth(preset.position_format[1])
    if codec == "av1":
        # SVT-AV1 has no lossless mode and moves samples by more than a split high byte's
        # headroom even at its lowest qp: positions go losslessly in FFV1 next to the AV1 streams.
        position_stream = ("ffv1", "gray16le")
        depth = 16
    if preset.position_bits > depth:
        groups.append(("pos_hi", [PlaneSpec(c, "hi") for c in POSITION]))
        groups.append(("pos_lo", [PlaneSpec(c, "lo") for c in POSITION]))
    else:
        groups.append(("pos", [PlaneSpec(c) for c in POSITION]))
    groups += [("color", [PlaneSpec(c) for c in COLOR]), ("scale", [PlaneSpec(c) for c in SCALE]),
               ("rot", [PlaneSpec(c) for c in ROTATION]), ("opacity", [PlaneSpec("opacity")])]  # fmt: skip
    sh = [PlaneSpec(c) for c in sh_channels(degree)]
    if sh:
        groups.append(("sh", sh))
    streams: list[StreamSpec] = []
    if layout == "packed":
        # rotation (4) and opacity (1) share two pictures: qw qx qy | qz opacity
        merged: list[tuple[str, list[PlaneSpec]]] = []
        for name, planes in groups:
            if name == "rot":
                merged.append(("rot", planes[:3]))
                merged.append(("rot_opacity", planes[3:] + [PlaneSpec("opacity")]))
            elif name != "opacity":
                merged.append((name, planes))
        groups = merged
    for name, planes in groups:
        qp_group = "rot" if name == "rot_opacity" else name
        stream_codec, stream_fmt = position_stream if (name.startswith("pos") and position_stream) else (encoder, pix_fmt)
        per_picture = data_planes(stream_fmt) if layout == "packed" else 1
        for start in range(0, len(planes), per_picture):
            chunk = tuple(planes[start:start + per_picture])
            suffix = "" if len(planes) <= per_picture else str(start // per_picture)
            cavlc = preset.fast_positions and name.startswith("pos") and stream_codec == "libx264"
            qp = 0 if stream_codec == "ffv1" else _qp(preset, qp_group)
            streams.append(StreamSpec(f"{name}{suffix}", stream_codec, stream_fmt, qp, chunk, cavlc))
    return bits, streams


def value_bits(plane: PlaneSpec, bits: int) -> int:
    """Bits of the value a plane holds for a channel of ``bits`` bits."""
    if plane.part == "hi":
        return 8
    if plane.part == "lo":
        return bits - 8
    return bits


def check_plan(bits: dict[str, int], streams: list[StreamSpec]) -> None:
    """Refuse a plan (from a file) that could not have been written: unknown pixel formats,
    planes naming unknown channels, values wider than their plane."""
    for stream in streams:
        if stream.pix_fmt not in PIXEL_FORMATS:
            raise ValueError(f"stream {stream.name}: unsupported pixel format {stream.pix_fmt}")
        if stream.codec not in DECODER_NAMES:
            raise ValueError(f"stream {stream.name}: unsupported codec {stream.codec}")
        if not 1 <= len(stream.planes) <= data_planes(stream.pix_fmt):
            raise ValueError(f"stream {stream.name}: {len(stream.planes)} planes in a {stream.pix_fmt} picture")
        for plane in stream.planes:
            if plane.channel not in bits:
                raise ValueError(f"stream {stream.name}: unknown channel {plane.channel}")
            b = bits[plane.channel]
            if not 1 <= b <= 16 or (plane.part and b <= 8):
                raise ValueError(f"channel {plane.channel}: {b} bits cannot be split into {plane.part}")
            if not 1 <= value_bits(plane, b) <= bit_depth(stream.pix_fmt):
                raise ValueError(f"stream {stream.name}: {plane.encode()} does not fit a {stream.pix_fmt} plane")
