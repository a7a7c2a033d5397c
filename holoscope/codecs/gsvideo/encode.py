"""``holoscope encode gsvideo``: a splat sequence into a .gsv file and/or a segmented layout.

One pass over the input: frames are read a group at a time, coded (:mod:`.group_coder`), muxed
into one MP4 per group (:mod:`.segment`), then decoded again at once, which measures the real
per-attribute error and, for planes that must survive exactly (position high bytes under a
lossy hardware profile), re-codes the group at a lower qp until they do. Output appears only
when complete: the .gsv is assembled in a hidden temporary file and renamed; a segment folder
is built beside its final name and renamed into place.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from holoscope.codecs import framing
from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.group_coder import CodedGroup, GroupDecoder, code_group
from holoscope.codecs.gsvideo.plan import (DEFAULT_PRESET, PRESETS, StreamSpec, attribute_of, build_streams,
                                           channel_names)  # fmt: skip
from holoscope.codecs.gsvideo.segment import decode_segment, encode_segment
from holoscope.core.errors import EmptyMedia, InvalidArgument, OutputError
from holoscope.core.frames import FailedFrame, Frame, SplatCloud

log = logging.getLogger("holoscope")

DEFAULT_GOF = 30  # frames per group: chosen with tests/bench/bench_gsvideo_rd.py (see README)
MAX_GOF = 300


@dataclass
class LevelResult:
    preset: str
    header: container.Header | None = None
    segments: list[bytes] = field(default_factory=list)
    stream_bytes: list[int] = field(default_factory=list)
    squared_error: dict[str, float] = field(default_factory=dict)
    max_error: dict[str, float] = field(default_factory=dict)
    values: int = 0

    @property
    def bytes(self) -> int:
        return sum(len(s) for s in self.segments)


@dataclass
class EncodeReport:
    frames: int
    groups: int
    fps: float
    preset: str
    codec: str
    file_bytes: int
    orders: dict[str, int]  # how many groups kept the input's correspondence / were sorted per frame
    stream_bytes: dict[str, int]
    attribute_bytes: dict[str, int]
    rmse: dict[str, float]  # per attribute, in the attribute's stored units (log-scale for scale)
    max_error: dict[str, float]
    seconds: float
    sh_degree: int
    levels: list[dict] = field(default_factory=list)
    psnr: float | None = None  # rendered PSNR, when the caller measured it

    @property
    def bytes_per_frame(self) -> float:
        return self.file_bytes / max(1, self.frames)

    @property
    def bitrate(self) -> float:
        """Bits per second at the sequence's frame rate."""
        return self.bytes_per_frame * 8 * self.fps


def _groups_of(frames: Iterable[object], gof: int) -> Iterator[list[SplatCloud]]:
    group: list[SplatCloud] = []
    last: SplatCloud | None = None
    for number, item in enumerate(frames):
        cloud = item.payload if isinstance(item, Frame) else item
        if isinstance(cloud, FailedFrame):
            if last is None:
                log.warning("input frame %d cannot be read and is left out: %s", number + 1, cloud.reason)
                continue
            log.warning("input frame %d cannot be read; the previous frame stands in: %s", number + 1, cloud.reason)
            cloud = last
        if not isinstance(cloud, SplatCloud):
            raise InvalidArgument(f"input frame {number + 1} is not a splat frame")
        last = cloud
        group.append(cloud)
        if len(group) == gof:
            yield group
            group = []
    if group:
        yield group


class _Level:
    """One quality level being encoded: its plan and what it has produced so far."""

    def __init__(self, preset: str, codec: str | None, sh_degree: int, speed: str) -> None:
        if preset not in PRESETS:
            raise InvalidArgument(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        self.preset = PRESETS[preset]
        self.bits, self.streams = build_streams(self.preset, sh_degree, codec)
        self.sh_degree = min(sh_degree, self.preset.max_sh_degree)
        self.codec = codec or self.preset.codec
        self.speed = speed
        self.result = LevelResult(preset)
        self.result.stream_bytes = [0] * len(self.streams)
        self.entries: list[container.GroupEntry] = []
        self.orders = {"index": 0, "matched": 0}

    def encode(self, clouds: list[SplatCloud], start: int, fps: float,
               on_group: Callable[[list[SplatCloud], list[SplatCloud]], None] | None) -> None:  # fmt: skip
        clouds = [c.with_sh_degree(self.sh_degree) if c.sh_degree != self.sh_degree else c for c in clouds]
        coded = code_group(clouds, self.bits, self.streams, self.sh_degree)
        streams = list(self.streams)
        for _attempt in range(8):
            data, sizes = encode_segment(coded.pictures, streams, fps, speed=self.speed)
            decoded = self._decode(data, streams, coded)
            broken = self._broken_high_bytes(coded, decoded, clouds)
            if not broken:
                break
            # A lossy profile moved a position's high byte: code those planes closer to lossless.
            streams = [replace(s, qp=max(0, s.qp - 2 if s.qp > 2 else s.qp - 1)) if s.name.startswith("pos_hi") else s
                       for s in streams]  # fmt: skip
        else:
            raise OutputError(f"the {self.codec} encoder cannot carry the position high bytes exactly; "
                              "use --codec hevc or another preset")  # fmt: skip
        self._measure(coded, decoded, clouds)
        if on_group is not None:
            on_group(clouds, decoded)
        self.result.segments.append(data)
        self.result.stream_bytes = [a + b for a, b in zip(self.result.stream_bytes, sizes)]
        self.orders[coded.order] += 1
        self.entries.append(container.GroupEntry(start, len(clouds), tuple(coded.counts), coded.width, coded.height,
                                                 coded.order, coded.ranges, zlib.crc32(data), length=len(data)))  # fmt: skip
        self._final_streams = streams

    def _decode(self, data: bytes, streams: list[StreamSpec], coded: CodedGroup) -> list[SplatCloud]:
        decoder = GroupDecoder(self.bits, streams, self.sh_degree, coded.ranges, coded.width, coded.height)
        return [decoder.cloud(pictures, count)
                for pictures, count in zip(decode_segment(data, streams, coded.width, coded.height, len(coded.counts),
                                                          "(verification)"), coded.counts)]  # fmt: skip

    def _broken_high_bytes(self, coded: CodedGroup, decoded: list[SplatCloud], clouds: list[SplatCloud]) -> bool:
        names = list(self.bits)
        split = {p.channel for s in self.streams for p in s.planes if p.part == "hi"}
        for i, axis in enumerate("xyz"):
            bits = self.bits[axis]
            if axis not in split:
                continue
            lo, hi = coded.ranges[names.index(axis)]
            step = (hi - lo) / ((1 << bits) - 1) if hi > lo else 0
            limit = step * (1 << (bits - 8)) * 0.75 + 1e-6 * max(1.0, abs(hi), abs(lo))
            for cloud, out, order in zip(clouds, decoded, coded.orders):
                if np.abs(out.means[:, i] - cloud.means[order, i]).max(initial=0) > limit:
                    return True
        return False

    def _measure(self, coded: CodedGroup, decoded: list[SplatCloud], clouds: list[SplatCloud]) -> None:
        from holoscope.codecs.gsvideo.channels import cloud_channels

        res = self.result
        for cloud, out, order in zip(clouds, decoded, coded.orders):
            want = cloud_channels(cloud, self.sh_degree, order)
            got = cloud_channels(out, self.sh_degree, np.arange(out.count), want_quats(want))
            for name in want:
                attr = attribute_of(name)
                diff = np.abs(got[name].astype(np.float64) - want[name])
                res.squared_error[attr] = res.squared_error.get(attr, 0.0) + float(np.square(diff).sum())
                res.max_error[attr] = max(res.max_error.get(attr, 0.0), float(diff.max(initial=0)))
            res.values += cloud.count

    def finish(self, fps: float, frames: int, up: str, extra: dict) -> container.Header:
        stream_bytes = {s.name: b for s, b in zip(self._final_streams, self.result.stream_bytes)}
        header = container.Header(fps, frames, self.sh_degree, self.preset.name, self.codec, up, self.bits,
                                  self._final_streams, self.entries,
                                  {"stream_bytes": stream_bytes, "orders": self.orders, **extra})  # fmt: skip
        self.result.header = header
        return header


def want_quats(channels: dict[str, np.ndarray]) -> np.ndarray:
    """The reference quaternions, so that the decoded ones take the same sign before comparing."""
    return np.stack([channels[c] for c in ("qw", "qx", "qy", "qz")], axis=1)


def _write_gsv(header: container.Header, segments: list[bytes], output: Path) -> int:
    # Segment offsets are written in the header, whose compressed size depends on them: pick
    # where the segments start, place them, and move that start on until the header fits
    # (the gap, at most a few bytes, is zero padding).
    data_start = container.header_size(header) + 64
    while True:
        offset, placed = data_start, []
        for entry, data in zip(header.groups, segments):
            placed.append(replace(entry, offset=offset))
            offset += len(data)
        packed = container.pack_header(replace(header, groups=placed))
        if len(packed) <= data_start:
            packed += bytes(data_start - len(packed))
            break
        data_start = len(packed) + 64
    return framing.write_atomically(output, [packed, *segments])


def _write_segments(levels: list[_Level], folder: Path, fps: float) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError("the segment folder exists and is not empty", path=folder)
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError("the segment folder's parent does not exist", path=parent)
    temp = Path(tempfile.mkdtemp(prefix=".holoscope-", suffix=".partial", dir=parent))
    try:
        described = []
        for level in levels:
            header = level.result.header
            assert header is not None
            (temp / level.preset.name).mkdir()
            groups = []
            for number, (entry, data) in enumerate(zip(header.groups, level.result.segments)):
                uri = f"{level.preset.name}/{number:05d}.mp4"
                (temp / uri).write_bytes(data)
                groups.append(replace(entry, uri=uri, offset=0))
            seconds = header.frames / fps
            described.append((replace(header, groups=groups), level.result.bytes * 8 / seconds))
        (temp / "manifest.json").write_bytes(container.manifest_json(described))
        mask = os.umask(0)
        os.umask(mask)
        temp.chmod(0o777 & ~mask)  # mkdtemp makes the folder private; the layout is for serving
        if folder.exists():
            folder.rmdir()
        os.replace(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def encode_gsvideo(frames: Iterable[object], output: str | os.PathLike | None = None, *, fps: float = 30.0,
                   preset: str = DEFAULT_PRESET, gof: int = DEFAULT_GOF, codec: str | None = None,
                   segments: str | os.PathLike | None = None, levels: Iterable[str] = (), up: str = "+y",
                   frame_count: int | None = None, speed: str = "medium",
                   progress: Callable[[int, int | None], None] | None = None,
                   on_group: Callable[[list[SplatCloud], list[SplatCloud]], None] | None = None) -> EncodeReport:  # fmt: skip
    """Encode splat frames (SplatClouds, Frame envelopes or FailedFrames) into ``output``
    (.gsv) and/or a segmented layout in the folder ``segments`` with one quality level per
    preset (``preset`` first, then ``levels``). ``on_group(inputs, decoded)`` sees each group
    as decoded back (for rendered-quality measurements). Returns the report of ``preset``."""
    if output is None and segments is None:
        raise InvalidArgument("name an output file (-o OUT.gsv) or a segment folder (--segments DIR)")
    if not 1 <= gof <= MAX_GOF:
        raise InvalidArgument(f"--gof takes 1..{MAX_GOF} frames, got {gof}")
    if not 0 < fps <= 1000:
        raise InvalidArgument(f"fps must be within 0..1000, got {fps}")
    names = [preset] + [p for p in levels if p != preset]
    for name in names:
        if name not in PRESETS:
            raise InvalidArgument(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    if output is not None:
        output = Path(output)
        if output.is_dir():
            raise OutputError("the output is a folder; name a .gsv file", path=output)
        if not (output.parent if str(output.parent) else Path(".")).is_dir():
            raise OutputError("the output folder does not exist", path=output.parent)
    started = time.monotonic()
    chosen: list[_Level] = []
    done = 0
    for group in _groups_of(frames, gof):
        if not chosen:
            degree = max(c.sh_degree for c in group)
            chosen = [_Level(name, codec, degree, speed) for name in names]
        for level in chosen:
            level.encode(group, done, fps, on_group if level is chosen[0] else None)
        done += len(group)
        if progress is not None:
            progress(done, frame_count)
    if not chosen:
        raise EmptyMedia("the input has no readable frames")
    input_info = {"source_frames": done}
    for level in chosen:
        level.finish(fps, done, up, input_info)
    main = chosen[0]
    assert main.result.header is not None
    file_bytes = main.result.bytes
    if output is not None:
        file_bytes = _write_gsv(main.result.header, main.result.segments, output)
    if segments is not None:
        _write_segments(chosen, Path(segments), fps)
    res = main.result
    attribute_bytes: dict[str, int] = {}
    for spec, size in zip(main._final_streams, res.stream_bytes):
        attrs = {attribute_of(p.channel) for p in spec.planes}
        for attr in attrs:  # a picture shared by two attributes is split evenly between them
            attribute_bytes[attr] = attribute_bytes.get(attr, 0) + size // len(attrs)
    per_attr_values = {a: 0 for a in res.squared_error}
    for name in channel_names(main.sh_degree):
        per_attr_values[attribute_of(name)] = per_attr_values.get(attribute_of(name), 0) + res.values
    rmse = {a: float(np.sqrt(res.squared_error[a] / max(1, per_attr_values[a]))) for a in res.squared_error}
    return EncodeReport(
        frames=done, groups=len(main.entries), fps=fps, preset=main.preset.name, codec=main.codec,
        file_bytes=file_bytes, orders=dict(main.orders),
        stream_bytes={s.name: b for s, b in zip(main._final_streams, res.stream_bytes)},
        attribute_bytes=attribute_bytes, rmse=rmse, max_error=dict(res.max_error),
        seconds=time.monotonic() - started, sh_degree=main.sh_degree,
        levels=[{"preset": lv.preset.name, "bytes": lv.result.bytes} for lv in chosen],
    )  # fmt: skip
