"""Open .gsv files and segmented Gaussian-video layouts (``manifest.json``) as timed media.

Opening reads the header only (bounded, checksummed, validated; see :mod:`.container`). Each
group's segment is read when the group is played (never more bytes than the file holds),
checked against its CRC-32, decoded with PyAV (threads, direct plane reads), each picture
checked against its stream's plan (size, sample size, planes), and dequantised
(:mod:`.group_coder`). Groups cut off by a
truncated file, or whose segment file is missing, are announced once when opening and skipped
while playing; a file or manifest with no playable group is refused.

Any Source serves: a manifest reaches its segments through ``source.relative(uri)``, so a
folder and a URL read alike. Over a link (``info["streamed"]``) segments are not asked for at
open; one that is missing, cannot be read after the source's retries, or is damaged turns its
group into FailedFrames with a warning naming the group, and playback goes on. Every segment
read is timed for ``media.adaptive`` (:class:`holoscope.core.adaptive.AdaptiveController`),
which picks a manifest's quality level per group while a player plays a URL.

Hardware decoding: unless ``HOLOSCOPE_HWDEC=no``, a stream plan that a hardware decoder can
take (4:2:0 8/10-bit HEVC or H.264, the ``hw`` preset) is decoded through PyAV's hwaccel on the
first device type that works (:func:`holoscope.codecs.video.decode.hwdec_devices`); any failure
falls back to software for good, logged once. ``info["decode_path"]`` says which is used and
``info["hwdec_fallback"]`` why a device was not (both follow the choice as groups are decoded).
"""

from __future__ import annotations

import itertools
import threading
import logging
import os
import time
import zlib
from typing import Any, Iterator

from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.grouped import grouped_media
from holoscope.codecs.gsvideo.group_coder import FrameOutput, GroupDecoder
from holoscope.codecs.gsvideo.planes import HW_TRANSFER_FORMATS, PIXEL_FORMATS, data_planes
from holoscope.codecs.gsvideo.segment import HardwareUnavailable, decode_segment
from holoscope.core.budget import require
from holoscope.core.adaptive import AdaptiveController
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, SourceUnreadable, display_path
from holoscope.core.media import Media
from holoscope.core.sources import BytesSource, FileSource, Source, source_for

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
        self.info: dict | None = None  # the medium's info: kept up to date as the choice changes
        if all(s.pix_fmt in HW_PIXEL_FORMATS and s.codec in ("libx264", "libx265") for s in header.streams):
            from holoscope.codecs.video.decode import hwdec_devices

            self.devices = hwdec_devices()

    def hwaccel(self) -> tuple[Any, str]:
        """A hardware accelerator to try and its device type, or (None, "")."""
        devices = self.devices  # read once: another thread may give up meanwhile
        if not devices:
            return None, ""
        import av

        try:
            return av.codec.hwaccel.HWAccel(device_type=devices[0], allow_software_fallback=True), devices[0]
        except Exception as exc:  # no device, no driver
            self.give_up(f"{devices[0]}: {exc}")
            return None, ""

    def use_device(self, device: str) -> None:
        self.path = f"hardware ({device})"
        self._publish()

    def give_up(self, reason: str) -> None:
        if self.devices:
            log.info("hardware decoding not used (%s); decoding in software", reason)
            self.fallback = reason
            self.devices = []
            self.path = "software"
            self._publish()

    def _publish(self) -> None:
        if self.info is not None:
            self.info["decode_path"] = self.path
            if self.fallback:
                self.info["hwdec_fallback"] = self.fallback


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
                what=f"group {index + 1}", path=self.label)  # fmt: skip
        decoder = GroupDecoder(self.header.bits, streams, self.header.sh_degree, entry.ranges, entry.width, entry.height)
        outputs = _FrameOutputs(decoder, entry.counts)
        where = f"group {index + 1}"

        def convert(number: int, stream: int, picture: Any) -> tuple[str, Any]:
            # On the decode thread: check the picture against the plan, dequantise its planes.
            spec = streams[stream]
            if not _fits(picture, spec, entry):
                raise CorruptStream(f"{where}, frame {number + 1}: stream {spec.name} decodes to "
                                    f"{picture.width}x{picture.height} {picture.format.name}, the header says "
                                    f"{entry.width}x{entry.height} {spec.pix_fmt}", path=self.label)  # fmt: skip
            try:
                return picture.format.name, outputs.get(number).take(spec, picture)
            except (ValueError, TypeError, KeyError, IndexError) as exc:  # pictures that do not fit the plan
                raise CorruptStream(f"{where}, frame {number + 1} does not decode: {exc}", path=self.label) from exc

        hwaccel, device = self.hardware.hwaccel()
        results = decode_segment(data, streams, entry.width, entry.height, entry.frames, self.label,
                                 threads=_decoder_threads(), hwaccel=hwaccel, convert=convert)  # fmt: skip
        if hwaccel is not None:
            try:
                first = next(results)
            except HardwareUnavailable as exc:
                self.hardware.give_up(f"{device}: {exc}")
                hwaccel = None
                outputs = _FrameOutputs(decoder, entry.counts)
                results = decode_segment(data, streams, entry.width, entry.height, entry.frames, self.label,
                                         threads=_decoder_threads(), convert=convert)  # fmt: skip
            else:
                results = itertools.chain([first], results)
        for number, frame_results in enumerate(results):
            if hwaccel is not None and number == 0:
                if frame_results[0][0] in HW_TRANSFER_FORMATS:
                    self.hardware.use_device(device)
                else:
                    self.hardware.give_up("the decoder did not use the device for this profile")
            try:
                cloud = outputs.pop(number).finish([parts for _, parts in frame_results])
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise CorruptStream(f"{where}, frame {number + 1} does not decode: {exc}", path=self.label) from exc
            yield cloud


class _FrameOutputs:
    """The output arrays of the frames being decoded, made by whichever decode thread needs
    them first (the next frame's streams decode while the current frame is finished)."""

    def __init__(self, decoder: GroupDecoder, counts: tuple[int, ...]) -> None:
        self.decoder, self.counts = decoder, counts
        self._frames: dict[int, FrameOutput] = {}
        self._lock = threading.Lock()

    def get(self, number: int) -> FrameOutput:
        with self._lock:
            frame = self._frames.get(number)
            if frame is None:
                frame = self._frames[number] = self.decoder.frame(self.counts[number])
            return frame

    def pop(self, number: int) -> FrameOutput:
        frame = self.get(number)
        with self._lock:
            del self._frames[number]
        return frame


def _fits(picture: Any, spec: Any, entry: container.GroupEntry) -> bool:
    """Whether a decoded picture has the size, sample size and depth, and the data planes its
    stream's plan reads (a monochrome H.264 picture comes out as 4:2:0; a hardware decoder's
    as NV12 / P010)."""
    if (picture.width, picture.height) != (entry.width, entry.height):
        return False
    fmt = picture.format.name
    want_size, _, _, want_bits = PIXEL_FORMATS[spec.pix_fmt]
    if fmt in HW_TRANSFER_FORMATS:  # luma only; the device's layout says where the bits lie
        return HW_TRANSFER_FORMATS[fmt][0] == want_size and len(spec.planes) == 1
    if fmt not in PIXEL_FORMATS:
        return False
    size, _, _, bits = PIXEL_FORMATS[fmt]
    return size == want_size and bits == want_bits and data_planes(fmt) >= len(spec.planes)


def _media(header: container.Header, reader: _Reader, path: str, file_bytes: int, missing: list[int],
           extra: dict, decode_group: Any = None) -> Media:  # fmt: skip
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
    media = grouped_media(groups=[g.span for g in header.groups], decode_group=decode_group or reader.decode_group,
                          fps=header.fps, format=FORMAT_NAME, reader=READER_NAME, path=path, info=info)  # fmt: skip
    reader.hardware.info = media.info  # decode_path and hwdec_fallback follow the hardware choice
    return media


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


def _streamed(source: Source) -> bool:
    """Whether the bytes come over a link (no local file, not memory): such a medium is marked
    ``info["streamed"]``, and the player then stalls for late frames instead of dropping them."""
    return source.local_path is None and not isinstance(source, BytesSource)


def _read(source: Source, offset: int, length: int, what: str, controller: AdaptiveController | None) -> bytes:
    """``length`` bytes of ``source`` from ``offset``, timed for the throughput estimate; a
    failure that is not a holoscope error already (a network error after the source's own
    retries) becomes one, so playback skips the group instead of stopping."""
    measured = controller is not None and not source.at_hand(offset, length)  # a cached read times no link
    started = time.perf_counter()
    try:
        data = source.read_range(offset, length)
    except HoloscopeError:
        raise
    except (OSError, EOFError) as exc:
        raise SourceUnreadable(f"{what} cannot be read ({exc})", path=source.label) from exc
    if measured:
        controller.record(len(data), time.perf_counter() - started)  # type: ignore[union-attr]
    return data


def open_gsv(source: Source | str | os.PathLike) -> Media:
    """Open a .gsv file (see :mod:`.container` for the layout) or a segmented layout's folder
    or manifest."""
    source = source_for(source)
    if source.is_folder or source.name.lower().endswith(MANIFEST_FILE):
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
    streamed = _streamed(source)
    bitrate = size * 8 * header.fps / header.frames
    # One level: nothing to choose, but the reads are timed for the info panel's throughput.
    controller = AdaptiveController([(header.preset, bitrate)], fixed=0) if streamed else None

    def read_segment(entry: container.GroupEntry) -> bytes:
        return _read(source, entry.offset, entry.length, "a segment", controller)

    reader = _Reader(header, read_segment, label)
    media = _media(header, reader, os.fspath(source.label), size, missing, {"layout": "file", "streamed": streamed})
    media.adaptive = controller  # type: ignore[attr-defined]
    return media


def _announce_missing(header: container.Header, missing: list[int], label: Any, why: str) -> None:
    if len(missing) == len(header.groups):
        raise EmptyMedia(f"{why}: no group of frames can be played", path=label)
    if missing:
        log.warning("%s: %s: %s cannot be played and will be skipped", display_path(label), why,
                    _group_list(header, missing))  # fmt: skip


def _group_list(header: container.Header, indices: list[int]) -> str:
    """'group 2 of 5 (frames 31-60)', 'groups 2, 3, 5-9 of 9 (210 frames)' (numbered from 1)."""
    runs: list[list[int]] = []
    for n in (i + 1 for i in indices):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
    if len(indices) == 1:
        span = header.groups[indices[0]].span
        return f"group {text} of {len(header.groups)} (frames {span.start + 1}-{span.end})"
    return f"groups {text} of {len(header.groups)} ({sum(header.groups[i].frames for i in indices)} frames)"


def _same_groups(levels: list[tuple[container.Header, int]]) -> bool:
    """Whether every level cuts the frames into the same groups (then a switch between levels
    at a group boundary shows no seam: each group decodes on its own)."""
    spans = [[(g.start, g.frames) for g in header.groups] for header, _ in levels]
    return all(s == spans[0] for s in spans[1:]) and len({h.fps for h, _ in levels}) == 1


def open_manifest(source: Source | str | os.PathLike, level: str | None = None, *,
                  adaptive: bool | None = None) -> Media:  # fmt: skip
    """Open a segmented layout (its folder or ``manifest.json``, local or remote) at quality
    ``level`` (a preset name; default: ``$HOLOSCOPE_GSV_LEVEL``).

    Without a fixed level, a layout with several levels cut into the same groups can adapt its
    level per group (:class:`holoscope.core.adaptive.AdaptiveController`, ``media.adaptive``):
    ``adaptive=True`` from the first group on; ``None`` (the default) for a streamed layout (a
    source with no local file) once a player's real-time poll engages it (until then, and for
    a local layout or ``adaptive=False``, the best level plays). Segments are reached through ``source.relative``; a segment that is
    missing or cannot be read makes its group's frames FailedFrames (a warning names the
    group) and playback goes on."""
    source = source_for(source)
    if source.is_folder:
        folder = source
        source = folder.relative(MANIFEST_FILE)
        if not source.exists():
            raise CorruptStream("the folder holds no manifest.json", path=folder.label)
    manifest = source.read_limited(MAX_MANIFEST_BYTES, what="the manifest")
    levels = container.parse_manifest(manifest, source.label)
    wanted = level or os.environ.get("HOLOSCOPE_GSV_LEVEL")
    fixed: int | None = None
    if wanted:
        matches = [i for i, (h, _) in enumerate(levels) if h.preset == wanted]
        if not matches:
            raise CorruptStream(f"no quality level {wanted!r} (the manifest has {', '.join(h.preset for h, _ in levels)})",
                                path=source.label)  # fmt: skip
        fixed = matches[0]
    streamed = _streamed(source)
    if fixed is None and len(levels) > 1 and adaptive is not False and not _same_groups(levels):
        log.info("%s: the quality levels are cut into different groups; playing the best one only",
                 display_path(source.label))  # fmt: skip
        adaptive = False
    if fixed is None and (len(levels) == 1 or adaptive is False or (adaptive is None and not streamed)):
        fixed = 0
    # adaptive None (streamed): dormant at the best level until a player's real-time poll
    # engages it, so that render and convert read a URL as they read the local file
    bitrates = [(h.preset, bps) for h, bps in levels]
    controller = AdaptiveController(bitrates, fixed=fixed, start=0 if adaptive is None else None,
                                    engaged=adaptive is not None)  # fmt: skip
    header = levels[controller.level][0]  # the level the first group will be fetched at
    local = source.local_path is not None
    label = display_path(source.label)
    segments: dict[str, Source] = {}

    def segment_source(uri: str) -> Source:
        found = segments.get(uri)
        if found is None:
            found = segments[uri] = source.relative(uri)
        return found

    missing: list[int] = []
    if local:  # cheap here (a stat); over a link it would cost a request per segment at open
        sizes = []
        for g in header.groups:
            try:
                sizes.append(segment_source(g.uri).size)
            except HoloscopeError:
                sizes.append(None)
        missing = [i for i, s in enumerate(sizes) if s is None]
        _announce_missing(header, missing, source.label, "segment files are missing")
        total = sum(s or 0 for s in sizes)
    else:
        total = sum(g.length for g in header.groups)

    def read_segment(entry: container.GroupEntry) -> bytes:
        segment = segment_source(entry.uri)
        # The decode budget is asked before a byte comes down (the manifest's length sizes the
        # read); a local file must hold exactly that. A remote one is not probed apart: its
        # read is what the quality controller times, and the checksum catches a wrong one.
        if local:
            size = FileSource(segment.local_path).check().st_size if segment.local_path is not None else segment.size
            if size != entry.length:
                raise CorruptStream(f"segment is {size:,} bytes, the manifest says {entry.length:,}", path=segment.label)
        require(entry.length, what=f"segment {entry.uri!r}", path=segment.label)
        return _read(segment, 0, entry.length, f"segment {entry.uri!r}", controller)

    readers = [_Reader(h, read_segment, label) for h, _ in levels]

    def decode_group(index: int) -> Iterator[Any]:
        chosen = controller.choose()
        for better in range(chosen):  # a better level already downloaded costs nothing (a replay, a loop)
            entry = levels[better][0].groups[index]
            segment = segment_source(entry.uri)
            if segment.local_path is None and segment.at_hand(0, entry.length):
                chosen = better
                break
        if media.info.get("level") != levels[chosen][0].preset:
            media.info["level"] = levels[chosen][0].preset
        return readers[chosen].decode_group(index)

    media = _media(header, readers[controller.level], os.fspath(source.label), total, missing,
                   {"layout": "segments", "levels": [f"{h.preset} ({bps / 1e6:.2f} Mbit/s)" for h, bps in levels],
                    "level": header.preset, "streamed": streamed, "adaptive": controller.adaptive},
                   decode_group=decode_group)  # fmt: skip
    for reader in readers:
        reader.hardware.info = media.info
    media.adaptive = controller  # type: ignore[attr-defined]
    return media
