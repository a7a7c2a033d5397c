"""Open .gsv files and segmented Gaussian-video layouts (``manifest.json``) as timed media.

Opening reads the header only (bounded, checksummed, validated; see :mod:`.container`). Each
group's segment is read when the group is played, checked against its CRC-32, decoded with
PyAV (threads, direct plane reads) and dequantised (:mod:`.group_coder`). Groups cut off by a
truncated file, or whose segment file is missing, are announced once when opening and skipped
while playing; a file or manifest with no playable group is refused.

Hardware decoding: unless ``HOLOSCOPE_HWDEC=no``, a stream plan that a hardware decoder can
take (4:2:0 8/10-bit HEVC or H.264, the ``hw`` preset) is decoded through PyAV's hwaccel on the
first device type that works (:func:`holoscope.codecs.video.decode.hwdec_devices`); any failure
falls back to software for good, logged once, and ``info["decode_path"]`` says which is used.
"""

from __future__ import annotations

import itertools
import logging
import os
import zlib
from pathlib import Path
from typing import Any, Iterator

from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.grouped import grouped_media
from holoscope.codecs.gsvideo.group_coder import GroupDecoder
from holoscope.codecs.gsvideo.planes import PIXEL_FORMATS
from holoscope.codecs.gsvideo.segment import HardwareUnavailable, decode_segment
from holoscope.core.budget import require
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, display_path
from holoscope.core.media import Media
from holoscope.core.sources import FileSource, FolderSource, Source, source_for

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.gsv"
FORMAT_NAME = "gsv"
MANIFEST_FILE = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
HW_PIXEL_FORMATS = {"yuv420p", "yuv420p10le"}


def _decoder_threads() -> int:
    return 1  # one thread per decoder: the streams of a group decode side by side instead


class _HardwareChoice:
    """Tries hardware decoding on the first group that can use it; falls back to software for good."""

    def __init__(self, header: container.Header) -> None:
        self.devices: list[str] = []
        self.path = "software"
        self.fallback = ""
        if all(s.pix_fmt in HW_PIXEL_FORMATS and s.codec in ("libx264", "libx265") for s in header.streams):
            from holoscope.codecs.video.decode import hwdec_devices

            self.devices = hwdec_devices()

    def hwaccel(self) -> Any:
        if not self.devices:
            return None
        import av

        try:
            return av.codec.hwaccel.HWAccel(device_type=self.devices[0], allow_software_fallback=True)
        except Exception as exc:  # no device, no driver
            self.give_up(f"{self.devices[0]}: {exc}")
            return None

    def give_up(self, reason: str) -> None:
        if self.devices:
            log.info("hardware decoding not used (%s); decoding in software", reason)
            self.fallback = reason
            self.devices = []


class _Reader:
    def __init__(self, header: container.Header, read_segment: Any, label: str) -> None:
        self.header = header
        self.read_segment = read_segment  # (GroupEntry) -> bytes
        self.label = label
        self.hardware = _HardwareChoice(header)

    def decode_group(self, index: int) -> Iterator[Any]:
        entry = self.header.groups[index]
        data = self.read_segment(entry)
        if len(data) != entry.length:
            raise CorruptStream(f"segment of group {index + 1} is cut off ({len(data):,} of {entry.length:,} bytes)",
                                path=self.label)  # fmt: skip
        if zlib.crc32(data) != entry.crc32:
            raise CorruptStream(f"segment of group {index + 1} is damaged (checksum mismatch)", path=self.label)
        streams = self.header.streams
        per_picture = sum(PIXEL_FORMATS[s.pix_fmt][0] * len(s.planes) for s in streams) * entry.width * entry.height
        # decoded pictures held by the decoders (a few each) and the output arrays of one frame
        require(per_picture * 4 + max(entry.counts) * (60 + 12 * (self.header.sh_degree + 1) ** 2),
                what=f"decoding group {index + 1}", path=self.label)  # fmt: skip
        decoder = GroupDecoder(self.header.bits, streams, self.header.sh_degree, entry.ranges, entry.width, entry.height)
        hwaccel = self.hardware.hwaccel()
        pictures = decode_segment(data, streams, entry.width, entry.height, entry.frames, self.label,
                                  threads=_decoder_threads(), hwaccel=hwaccel)  # fmt: skip
        if hwaccel is not None:
            try:
                first = next(pictures)
            except HardwareUnavailable as exc:
                self.hardware.give_up(f"{self.hardware.devices[0]}: {exc}")
                hwaccel = None
                pictures = decode_segment(data, streams, entry.width, entry.height, entry.frames, self.label,
                                          threads=_decoder_threads())  # fmt: skip
            else:
                pictures = itertools.chain([first], pictures)
        for number, (frame_pictures, count) in enumerate(zip(pictures, entry.counts)):
            if hwaccel is not None and number == 0:
                if frame_pictures[0].format.name in ("nv12", "p010le", "p016le"):
                    self.hardware.path = f"hardware ({self.hardware.devices[0]})"
                else:
                    self.hardware.give_up("the decoder did not use the device for this profile")
            yield decoder.cloud(frame_pictures, count)


def _media(header: container.Header, reader: _Reader, path: str, file_bytes: int, missing: list[int],
           extra: dict) -> Media:  # fmt: skip
    stream_bytes = header.extra.get("stream_bytes", {})
    info = {
        "preset": header.preset, "codec": header.codec, "sh_degree": header.sh_degree,
        "splats_min": min(min(g.counts) for g in header.groups),
        "splats_max": max(max(g.counts) for g in header.groups),
        "streams": [f"{s.name} ({s.codec} {s.pix_fmt} qp {s.qp}: {', '.join(p.encode() for p in s.planes)})"
                    for s in header.streams],
        "stream_bytes": stream_bytes, "file_bytes": file_bytes,
        "attribute_bytes_per_frame": _attribute_bytes(header, stream_bytes),
        "bytes_per_frame": round(file_bytes / header.frames, 1),
        "bitrate": round(file_bytes * 8 * header.fps / header.frames),
        "orders": header.extra.get("orders", {}), "default_up": header.up,
        "missing_groups": [i + 1 for i in missing], "first_readable_frame": header.groups[_first_ok(header, missing)].start,
        **extra,
    }  # fmt: skip

    info["decode_path"] = reader.hardware.path
    return grouped_media(groups=[g.span for g in header.groups], decode_group=reader.decode_group, fps=header.fps,
                         format=FORMAT_NAME, reader=READER_NAME, path=path, info=info)  # fmt: skip


def _attribute_bytes(header: container.Header, stream_bytes: dict) -> dict[str, float]:
    """Bytes per frame of each attribute (a picture shared by two attributes is split evenly)."""
    from holoscope.codecs.gsvideo.plan import attribute_of

    out: dict[str, float] = {}
    for spec in header.streams:
        attrs = sorted({attribute_of(p.channel) for p in spec.planes})
        for attr in attrs:
            out[attr] = out.get(attr, 0.0) + float(stream_bytes.get(spec.name, 0)) / len(attrs) / header.frames
    return {k: round(v, 1) for k, v in out.items()}


def _first_ok(header: container.Header, missing: list[int]) -> int:
    return next(i for i in range(len(header.groups)) if i not in missing)


def open_gsv(source: Source | str | os.PathLike) -> Media:
    """Open a .gsv file (see :mod:`.container` for the layout) or a segmented layout's folder
    or manifest."""
    source = source_for(source)
    if isinstance(source, FolderSource) or source.name.lower().endswith(MANIFEST_FILE):
        return open_manifest(source)
    label = display_path(source.label)
    size = source.size
    head = source.head(container.FIXED.size)
    head = source.head(container.needed_bytes(head)) if len(head) >= container.FIXED.size else head
    header, _ = container.read_header(head, size or 0, source.label)
    if size is None:
        size = max(g.offset + g.length for g in header.groups)
    missing = [i for i, g in enumerate(header.groups) if g.offset + g.length > size]
    _announce_missing(header, missing, source.label, "the file is truncated")

    def read_segment(entry: container.GroupEntry) -> bytes:
        return source.read_range(entry.offset, entry.length)

    reader = _Reader(header, read_segment, label)
    return _media(header, reader, os.fspath(source.label), size, missing, {"layout": "file"})


def _announce_missing(header: container.Header, missing: list[int], label: Any, why: str) -> None:
    if len(missing) == len(header.groups):
        raise EmptyMedia(f"{why}: no group of frames can be played", path=label)
    if missing:
        frames = sum(header.groups[i].frames for i in missing)
        log.warning("%s: %s: %d of %d groups (%d frames) cannot be played and will be skipped",
                    display_path(label), why, len(missing), len(header.groups), frames)  # fmt: skip


def open_manifest(source: Source | str | os.PathLike, level: str | None = None) -> Media:
    """Open a segmented layout (its folder or ``manifest.json``) at quality ``level`` (a preset
    name; default: ``$HOLOSCOPE_GSV_LEVEL``, else the best level)."""
    source = source_for(source)
    if isinstance(source, FolderSource):
        if not source.has(MANIFEST_FILE):
            raise CorruptStream("the folder holds no manifest.json", path=source.label)
        source = source.member(MANIFEST_FILE)
    manifest = source.read_limited(MAX_MANIFEST_BYTES, what="the manifest")
    levels = container.parse_manifest(manifest, source.label)
    wanted = level or os.environ.get("HOLOSCOPE_GSV_LEVEL")
    chosen = levels[0]
    if wanted:
        matches = [lv for lv in levels if lv[0].preset == wanted]
        if not matches:
            raise CorruptStream(f"no quality level {wanted!r} (the manifest has {', '.join(h.preset for h, _ in levels)})",
                                path=source.label)  # fmt: skip
        chosen = matches[0]
    header = chosen[0]
    base = Path(source.local_path).parent if source.local_path is not None else None
    if base is None:
        raise CorruptStream("a manifest must be opened from a folder (streaming comes later)", path=source.label)
    sizes = []
    for g in header.groups:
        try:
            sizes.append(FileSource(base / g.uri).size)
        except HoloscopeError:
            sizes.append(None)
    missing = [i for i, s in enumerate(sizes) if s is None]
    _announce_missing(header, missing, source.label, "segment files are missing")

    def read_segment(entry: container.GroupEntry) -> bytes:
        return FileSource(base / entry.uri).read_range(0, entry.length + 1)

    reader = _Reader(header, read_segment, display_path(source.label))
    total = sum(s or 0 for s in sizes)
    return _media(header, reader, os.fspath(source.label), total, missing,
                  {"layout": "segments", "levels": [f"{h.preset} ({bps / 1e6:.2f} Mbit/s)" for h, bps in levels],
                   "level": header.preset})  # fmt: skip
