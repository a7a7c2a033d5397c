"""The .gsv file and the segmented layout's manifest: framing, header, checksums, validation.

.gsv file (all integers little-endian)::

    0   4   magic b"HSGV"
    4   2   version (1)
    6   2   flags (0)
    8   4   header length H (bytes of zstd-compressed JSON)
    12  4   CRC-32 of those H bytes
    16  H   header: zstd-compressed UTF-8 JSON (see ARCHITECTURE.md / README for the fields)
    ..      segments: one MP4 per group of frames, at the offsets the header lists, each with
            its own CRC-32 in the header

A segmented layout is a folder with ``manifest.json`` (plain JSON: the same header, segment
files instead of offsets, one list per quality level, and a CRC-32 of its canonical form) and
the segment MP4s. Every number read from a file is checked against limits before it sizes
anything, so a forged header cannot ask for unbounded memory.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from holoscope.codecs import framing
from holoscope.codecs.gsvideo.grouped import GroupSpan, check_spans
from holoscope.codecs.gsvideo.plan import StreamSpec, check_plan
from holoscope.core.errors import CorruptStream

MAGIC = b"HSGV"
VERSION = 1
FIXED = framing.FIXED
FORMAT_NAME = "holoscope-gsv"
MANIFEST_NAME = "holoscope-gsv-manifest"
MAX_HEADER_BYTES = 16 << 20
MAX_HEADER_JSON = 64 << 20
MAX_FRAMES = 1_000_000
MAX_SPLATS = 1 << 26  # 67 M Gaussians in one frame
MAX_SIDE = 16384
MAX_STREAMS = 64


@dataclass(frozen=True)
class GroupEntry:
    start: int
    frames: int
    counts: tuple[int, ...]  # Gaussians per frame
    width: int
    height: int
    order: str  # "index" (one order for the group) or "matched" (each frame matched to the one before)
    ranges: np.ndarray  # float32 [channels, 2]: min, max per channel
    crc32: int
    offset: int = 0  # .gsv: byte offset in the file
    length: int = 0  # bytes of the segment
    uri: str = ""  # segmented layout: the segment file, relative to the manifest

    @property
    def span(self) -> GroupSpan:
        return GroupSpan(self.start, self.frames)

    def to_json(self) -> dict:
        counts: Any = self.counts[0] if len(set(self.counts)) == 1 else list(self.counts)
        data = {"start": self.start, "frames": self.frames, "counts": counts, "width": self.width,
                "height": self.height, "order": self.order, "crc32": self.crc32, "length": self.length,
                "ranges": base64.b64encode(self.ranges.astype("<f4").tobytes()).decode("ascii")}  # fmt: skip
        if self.uri:
            data["uri"] = self.uri
        else:
            data["offset"] = self.offset
        return data


@dataclass(frozen=True)
class Header:
    fps: float
    frames: int
    sh_degree: int
    preset: str
    codec: str
    up: str
    bits: dict[str, int]  # channel -> bits; its key order is the order of each group's ranges
    streams: list[StreamSpec]
    groups: list[GroupEntry]
    extra: dict  # stream byte totals, input description ... (informative)

    @property
    def channels(self) -> list[str]:
        return list(self.bits)

    def to_json(self) -> dict:
        return {"format": FORMAT_NAME, "version": VERSION, "fps": self.fps, "frames": self.frames,
                "sh_degree": self.sh_degree, "preset": self.preset, "codec": self.codec, "up": self.up,
                "channels": [[c, b] for c, b in self.bits.items()],
                "streams": [s.to_json() for s in self.streams],
                "groups": [g.to_json() for g in self.groups], **self.extra}  # fmt: skip


def _int(data: dict, key: str, lo: int, hi: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{key} must be an integer within {lo}..{hi}, got {value!r}")
    return value


def parse_header(data: Any, *, file_size: int | None = None) -> Header:
    """A validated :class:`Header` from decoded JSON; raises ValueError naming the first problem."""
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ValueError("not a holoscope Gaussian-video header")
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r} is not supported (this holoscope reads version {VERSION})")
    fps = data.get("fps")
    if not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise ValueError(f"fps must be within 0..1000, got {fps!r}")
    frames = _int(data, "frames", 1, MAX_FRAMES)
    sh_degree = _int(data, "sh_degree", 0, 3)
    channels = data.get("channels")
    if not isinstance(channels, list) or not 14 <= len(channels) <= 14 + 45:
        raise ValueError("channels must list 14 to 59 channels")
    bits = {}
    for entry in channels:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], int)):
            raise ValueError(f"bad channel entry {entry!r}")
        bits[entry[0]] = entry[1]
    from holoscope.codecs.gsvideo.plan import channel_names

    if list(bits) != list(channel_names(sh_degree)):
        raise ValueError(f"the channels do not match SH degree {sh_degree}")
    raw_streams = data.get("streams")
    if not isinstance(raw_streams, list) or not 1 <= len(raw_streams) <= MAX_STREAMS:
        raise ValueError("streams must be a list of 1..64 entries")
    streams = [StreamSpec.from_json(s) for s in raw_streams]
    check_plan(bits, streams)
    covered = {p.channel for s in streams for p in s.planes}
    if covered != set(bits):
        raise ValueError(f"no stream carries {sorted(set(bits) - covered)}")
    parts: dict[str, list[str]] = {}
    for plane in (p for s in streams for p in s.planes):
        parts.setdefault(plane.channel, []).append(plane.part)
    for channel, found in parts.items():  # each channel whole once, or its high and low parts once each
        if sorted(found) not in ([""], ["hi", "lo"]):
            raise ValueError(f"channel {channel} is carried as {', '.join(p or 'whole' for p in found)}")
    raw_groups = data.get("groups")
    if not isinstance(raw_groups, list) or not 1 <= len(raw_groups) <= frames:
        raise ValueError("groups must be a non-empty list, at most one per frame")
    groups = [_parse_group(g, len(bits), file_size) for g in raw_groups]
    _check_ranges(groups, list(bits))
    check_spans([g.span for g in groups])
    if groups[-1].span.end != frames:
        raise ValueError(f"the groups cover {groups[-1].span.end} frames, the header says {frames}")
    known = {"format", "version", "fps", "frames", "sh_degree", "preset", "codec", "up", "channels", "streams", "groups"}
    return Header(float(fps), frames, sh_degree, str(data.get("preset", "")), str(data.get("codec", "")),
                  str(data.get("up", "+y")), bits, streams, groups,
                  {k: v for k, v in data.items() if k not in known})  # fmt: skip


def _parse_group(data: Any, channels: int, file_size: int | None) -> GroupEntry:
    if not isinstance(data, dict):
        raise ValueError("a group entry must be an object")
    start = _int(data, "start", 0, MAX_FRAMES)
    frames = _int(data, "frames", 1, MAX_FRAMES)
    width = _int(data, "width", 1, MAX_SIDE)
    height = _int(data, "height", 1, MAX_SIDE)
    counts = data.get("counts")
    if isinstance(counts, int) and not isinstance(counts, bool):
        counts = [counts] * frames
    if not isinstance(counts, list) or len(counts) != frames or not all(
            isinstance(c, int) and 1 <= c <= min(MAX_SPLATS, width * height) for c in counts):  # fmt: skip
        raise ValueError(f"group at frame {start}: counts must give 1..{width}x{height} Gaussians for each of {frames} frames")
    order = data.get("order")
    if order not in ("index", "matched"):
        raise ValueError(f"group at frame {start}: unknown order {order!r}")
    try:
        ranges = np.frombuffer(base64.b64decode(str(data.get("ranges", "")), validate=True), "<f4")
    except ValueError as exc:
        raise ValueError(f"group at frame {start}: ranges are not base64") from exc
    if ranges.size != channels * 2 or not np.isfinite(ranges).all():
        raise ValueError(f"group at frame {start}: ranges must be {channels} finite min/max pairs")
    ranges = ranges.reshape(channels, 2).astype(np.float32)
    if (ranges[:, 0] > ranges[:, 1]).any():
        raise ValueError(f"group at frame {start}: a range has min > max")
    crc = _int(data, "crc32", 0, 0xFFFFFFFF)
    length = _int(data, "length", 1, 1 << 40)
    uri = data.get("uri", "")
    offset = 0
    if uri:
        if not isinstance(uri, str) or "\\" in uri or Path(uri).is_absolute() or ".." in Path(uri).parts:
            raise ValueError(f"group at frame {start}: segment name {uri!r} leaves the folder")
    else:
        offset = _int(data, "offset", FIXED.size, 1 << 40)  # past the end: a truncated file (skipped)
    return GroupEntry(start, frames, tuple(counts), width, height, order, ranges, crc, offset, length, uri)


MAX_RANGE = 1e30  # |value| of any channel; far beyond any scene, far below float32 overflow
MAX_LOG_SCALE = 80.0  # exp(80) ~ 5.5e34: a float32 scale stays finite


def _check_ranges(groups: list[GroupEntry], channels: list[str]) -> None:
    """Ranges whose dequantised values stay finite in float32 (decoded splats are used as they
    are: bounds, depth sorting, uploads)."""
    scale_rows = [channels.index(c) for c in ("sx", "sy", "sz")]
    for group in groups:
        if not (np.abs(group.ranges) <= MAX_RANGE).all() or (group.ranges[scale_rows] > MAX_LOG_SCALE).any():
            raise ValueError(f"group at frame {group.start}: a range is beyond what float32 splats can hold")


def pack_header(header: Header) -> bytes:
    return framing.pack(MAGIC, VERSION, header.to_json())


def header_size(header: Header) -> int:
    return len(pack_header(header))


def read_header(head: bytes, file_size: int, label: str) -> tuple[Header, int]:
    """The header of a .gsv from its first bytes (``head`` must hold the fixed part and the
    header, see :func:`needed_bytes`); returns the header and where the segments begin."""
    data, end = framing.unpack(head, magic=MAGIC, version=VERSION, kind="Gaussian-video",
                               max_header=MAX_HEADER_BYTES, max_json=MAX_HEADER_JSON, label=label)  # fmt: skip
    try:
        header = parse_header(data, file_size=file_size)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStream(f"bad header: {exc}", path=label) from exc
    return header, end


def needed_bytes(head: bytes) -> int:
    """How many bytes from the start hold the fixed part and the header."""
    return framing.needed_bytes(head, MAX_HEADER_BYTES)


def manifest_json(levels: list[tuple[Header, float]]) -> bytes:
    """The segmented layout's manifest: one entry per quality level (its preset, its mean
    bitrate in bits per second, its header, whose groups name their segment files), plus a
    CRC-32 of the canonical text."""
    body = {"format": MANIFEST_NAME, "version": VERSION,
            "levels": [{"preset": h.preset, "bandwidth": round(bps), "header": h.to_json()} for h, bps in levels]}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["crc32"] = zlib.crc32(canonical)
    return json.dumps(body, indent=1).encode()


def parse_manifest(text: bytes, label: str) -> list[tuple[Header, int]]:
    """The quality levels of a manifest, best first: (header, bandwidth)."""
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptStream(f"manifest is not JSON: {exc}", path=label) from exc
    if not isinstance(body, dict) or body.get("format") != MANIFEST_NAME:
        raise CorruptStream("not a holoscope Gaussian-video manifest", path=label)
    if body.get("version") != VERSION:
        raise CorruptStream(f"manifest version {body.get('version')!r} is not supported", path=label)
    crc = body.pop("crc32", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    if crc != zlib.crc32(canonical):
        raise CorruptStream("manifest checksum mismatch: it was edited or damaged", path=label)
    levels = []
    try:
        raw = body.get("levels")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 16:
            raise ValueError("a manifest lists 1..16 quality levels")
        for level in raw:
            if not isinstance(level, dict):
                raise ValueError("a level must be an object")
            header = parse_header(level.get("header"))
            if any(not g.uri for g in header.groups):
                raise ValueError(f"level {header.preset}: every group must name its segment file")
            levels.append((header, _int(level, "bandwidth", 0, 1 << 40)))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStream(f"bad manifest: {exc}", path=label) from exc
    levels.sort(key=lambda item: -item[1])
    return levels
