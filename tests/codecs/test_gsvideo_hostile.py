"""Damaged and forged Gaussian video: every .gsv or segmented layout that cannot be trusted gives
one clear holoscope error when opened, or, when the damage only shows while playing, its group
is skipped with a warning (FailedFrames) and playback goes on with the next group. Never a
traceback, a hang or an allocation a header asked for.

The files are real encodes, cut, flipped, re-muxed or re-packed with recomputed checksums, so
that each check inside the reader is the one that has to catch the damage."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import struct
import sys
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
import zstandard

from holoscope.cli import main
from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.encode import encode_gsvideo
from holoscope.codecs.gsvideo.gsv import open_gsv, open_manifest
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, EmptyMedia, HoloscopeError, NotAFile
from holoscope.core.frames import FailedFrame, SplatCloud
from holoscope.core.player import Player, PlayerState
from holoscope.core.registry import open_media
from tests.capped import run_capped
from tests.core.test_player import FakeClock, poll_until
from tests.gsvideo_data import coherent_sequence

from .helpers import random_cloud

FRAMES, GOF = 6, 2  # three groups of two frames
SPLATS = 600


@pytest.fixture(scope="module")
def clip() -> list[SplatCloud]:
    return coherent_sequence(FRAMES, source=random_cloud(SPLATS, 1, seed=4, profile="sog"), seed=1)


@pytest.fixture(scope="module")
def made(tmp_path_factory, clip) -> dict:
    """One real encode as a .gsv file and as a segment folder, and the frames they play."""
    folder = tmp_path_factory.mktemp("gsv-hostile")
    path = folder / "good.gsv"
    encode_gsvideo(clip, path, preset="medium", gof=GOF, segments=folder / "segs")
    played = [f.payload for f in open_gsv(path).frames_from(0)]
    assert all(isinstance(p, SplatCloud) for p in played)
    return {"path": path, "data": path.read_bytes(), "segs": folder / "segs", "played": played}


# Taking a .gsv apart and putting it back together ------------------------------------------------


def take_apart(data: bytes) -> tuple[dict, list[bytes]]:
    """The header's JSON and the segments of a .gsv."""
    header, _ = container.read_header(data, len(data), "x")
    return header.to_json(), [data[g.offset:g.offset + g.length] for g in header.groups]


def compress(body: dict | bytes) -> bytes:
    text = body if isinstance(body, bytes) else json.dumps(body).encode()
    return zstandard.ZstdCompressor().compress(text)


def put_together(body: dict | bytes, segments: list[bytes], *, payload: bytes | None = None, version: int = 1,
                 fix: bool = True) -> bytes:  # fmt: skip
    """A .gsv of ``body`` (the header JSON) and ``segments``. With ``fix`` each group's offset,
    length and CRC-32 are made to match its segment (the header then passes every checksum);
    ``payload`` replaces the compressed header as it is."""
    start = 1 << 16  # segments from 64 KiB on, whatever the header's size
    if fix and isinstance(body, dict):
        body = json.loads(json.dumps(body))
        offset = start
        for group, segment in zip(body["groups"], segments):
            group.update(offset=offset, length=len(segment), crc32=zlib.crc32(segment))
            offset += len(segment)
    payload = compress(body) if payload is None else payload
    head = container.FIXED.pack(container.MAGIC, version, 0, len(payload), zlib.crc32(payload)) + payload
    assert len(head) <= start
    return head + bytes(start - len(head)) + b"".join(segments)


def write(tmp_path: Path, data: bytes, name: str = "x.gsv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def forged(made, edit: Callable[[dict], object]) -> bytes:
    body, segments = take_apart(made["data"])
    edit(body)
    return put_together(body, segments)


def play(media) -> list[object]:
    return [f.payload for f in media.frames_from(0)]


def assert_same(a: SplatCloud, b: SplatCloud) -> None:
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def assert_groups_skipped(frames: list[object], made, skipped: set[int], reason: str) -> None:
    """Groups (numbered from 1) in ``skipped`` are FailedFrames naming ``reason``; the rest
    play as the undamaged file does."""
    assert len(frames) == FRAMES
    for index, frame in enumerate(frames):
        if index // GOF + 1 in skipped:
            assert isinstance(frame, FailedFrame) and frame.index == index, index
            assert f"group {index // GOF + 1} skipped" in frame.message and reason in frame.message, frame.message
        else:
            assert_same(frame, made["played"][index])


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "holoscope"]


# Truncation and flipped bytes ----------------------------------------------------------------------


def test_the_undamaged_file_plays(made):
    assert len(made["played"]) == FRAMES
    assert open_gsv(made["path"]).info["group_frames"] == [GOF] * 3


def test_cut_inside_the_header(made, tmp_path):
    header, data_start = container.read_header(made["data"], len(made["data"]), "x")
    for cut, message in ((0, "too short"), (10, "too short"), (container.FIXED.size + 3, "truncated inside its header"),
                         (data_start - 1, "truncated inside its header")):  # fmt: skip
        path = write(tmp_path, made["data"][:cut])
        with pytest.raises(CorruptStream, match=message):
            open_gsv(path)


def test_cut_inside_group_2_of_3(made, tmp_path, caplog):
    header, _ = container.read_header(made["data"], len(made["data"]), "x")
    second = header.groups[1]
    path = write(tmp_path, made["data"][:second.offset + second.length // 2])
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        media = open_gsv(path)
    (warning,) = warnings_of(caplog)
    assert "truncated" in warning and "groups 2, 3 of 3 (4 frames) cannot be played" in warning, warning
    assert media.info["missing_groups"] == [2, 3] and media.frame_count == FRAMES
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        frames = play(media)
    assert_groups_skipped(frames, made, {2, 3}, "cut off")
    assert len(warnings_of(caplog)) == 2  # one per skipped group, while playing
    assert_same(media.frame(1), made["played"][1])
    with pytest.raises(CorruptStream, match="segment of group 2 is cut off"):
        media.frame(2)


def test_cut_before_the_first_group_ends(made, tmp_path):
    header, _ = container.read_header(made["data"], len(made["data"]), "x")
    first = header.groups[0]
    path = write(tmp_path, made["data"][:first.offset + first.length - 1])
    with pytest.raises(EmptyMedia, match="truncated: no group of frames can be played"):
        open_gsv(path)


def test_a_flipped_byte_in_the_header(made, tmp_path):
    for position, message in ((container.FIXED.size + 20, "header checksum mismatch"), (1, "bad magic"),
                              (4, "version 65 is not supported"), (11, "beyond the limit")):  # fmt: skip
        data = bytearray(made["data"])
        data[position] ^= 0x40
        with pytest.raises(CorruptStream, match=message):
            open_gsv(write(tmp_path, bytes(data)))


def test_a_flipped_byte_in_a_segment_skips_its_group(made, tmp_path, caplog):
    header, _ = container.read_header(made["data"], len(made["data"]), "x")
    second = header.groups[1]
    data = bytearray(made["data"])
    data[second.offset + second.length // 3] ^= 0x01
    media = open_gsv(write(tmp_path, bytes(data)))
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        frames = play(media)
    assert_groups_skipped(frames, made, {2}, "checksum mismatch")
    (warning,) = warnings_of(caplog)
    assert "group 2 (frames 3-4) skipped" in warning and "checksum" in warning
    with pytest.raises(CorruptStream, match="group 2 is damaged"):
        media.frame(3)
    assert_same(media.frame(4), made["played"][4])  # and the next group plays from a seek


# Segments whose MP4 does not match the header --------------------------------------------------------


def remux(segment: bytes, picks: list[tuple[bytes, int]]) -> bytes:
    """An MP4 of the streams ``picks`` names, (MP4 bytes, stream index) each, packets copied."""
    out_buf = io.BytesIO()
    sources = [av.open(io.BytesIO(data)) for data, _ in picks]
    with av.open(out_buf, "w", format="mp4") as out:
        streams = [out.add_stream_from_template(source.streams.video[i]) for source, (_, i) in zip(sources, picks)]
        for source, (_, i), stream in zip(sources, picks, streams):
            for packet in source.demux(source.streams.video[i]):
                if packet.dts is None:
                    continue
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
                copy.is_keyframe = packet.is_keyframe
                copy.stream = stream
                out.mux(copy)
    for source in sources:
        source.close()
    return out_buf.getvalue()


def other_depth_stream(width: int, height: int, frames: int, pix_fmt: str) -> bytes:
    """An H.264 MP4 of one stream of ``pix_fmt`` pictures of that size."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for n in range(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts, frame.time_base = n, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def with_segment_2(made, tmp_path, segment: bytes) -> Path:
    body, segments = take_apart(made["data"])
    segments[1] = segment
    return write(tmp_path, put_together(body, segments))


def test_a_segment_with_a_stream_removed_or_added(made, tmp_path, caplog):
    body, segments = take_apart(made["data"])
    n = len(body["streams"])
    for picks, found in (([(segments[1], i) for i in range(n - 1)], n - 1),  # the last stream dropped
                         ([(segments[1], i) for i in range(n)] + [(segments[1], 0)], n + 1)):  # one more  # fmt: skip
        path = with_segment_2(made, tmp_path, remux(segments[1], picks))
        media = open_gsv(path)  # the header and every checksum are right
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="holoscope"):
            frames = play(media)
        assert_groups_skipped(frames, made, {2}, f"segment has {found} streams, the header lists {n}")
        assert len(warnings_of(caplog)) == 1
        with pytest.raises(CorruptStream, match="streams"):
            media.frame(2)


def test_a_segment_stream_of_another_pixel_format(made, tmp_path):
    body, segments = take_apart(made["data"])
    header = container.parse_header(body)
    index = next(i for i, s in enumerate(header.streams) if s.codec == "libx264")
    other = "yuv444p10le" if header.streams[index].pix_fmt in ("yuv444p", "gray") else "yuv444p"
    entry = header.groups[1]
    stranger = other_depth_stream(entry.width, entry.height, entry.frames, other)
    picks = [(segments[1], i) if i != index else (stranger, 0) for i in range(len(header.streams))]
    media = open_gsv(with_segment_2(made, tmp_path, remux(segments[1], picks)))
    assert_groups_skipped(play(media), made, {2}, f"stream {header.streams[index].name} decodes to")
    with pytest.raises(CorruptStream, match=f"{other}, the header says"):
        media.frame(2)


# Forged headers (checksums recomputed: only the validation can catch them) ----------------------------


def _group(i: int, **values) -> Callable[[dict], None]:
    return lambda body: body["groups"][i].update(values)


def _set(**values) -> Callable[[dict], None]:
    return lambda body: body.update(values)


def _ranges(value: float, row: int = 0) -> Callable[[dict], None]:
    def edit(body: dict) -> None:
        ranges = np.frombuffer(base64.b64decode(body["groups"][0]["ranges"]), "<f4").copy()
        ranges[row] = value
        body["groups"][0]["ranges"] = base64.b64encode(ranges.astype("<f4").tobytes()).decode()

    return edit


def _colour_stream(**values) -> Callable[[dict], None]:
    """Values changed in the stream that carries the red channel."""

    def edit(body: dict) -> None:
        (stream,) = [s for s in body["streams"] if "r" in s["planes"]]
        stream.update(values)

    return edit


def _only_part(part: str) -> Callable[[dict], None]:
    """Channel x widened to 16 bits and carried as its high (or low) byte only, whatever the
    plan did with it: every plane fits its picture, but x cannot be put together."""

    def edit(body: dict) -> None:
        body["channels"] = [[c, 16 if c == "x" else b] for c, b in body["channels"]]
        for stream in body["streams"]:
            stream["planes"] = [f"x.{part}" if p.split(".")[0] == "x" else p for p in stream["planes"]]

    return edit


FORGERIES = {
    "huge count": (_group(0, counts=10**9), "counts must give"),
    "count over the picture": (_group(0, counts=10**6), "counts must give"),
    "counts of the wrong length": (_group(0, counts=[SPLATS] * 3), "counts must give"),
    "zero count": (_group(1, counts=0), "counts must give"),
    "huge width": (_group(0, width=1 << 20), "width must be an integer within"),
    "zero height": (_group(0, height=0), "height must be an integer within"),
    "string width": (_group(0, width="64"), "width must be an integer"),
    "negative start": (_group(0, start=-1), "start must be an integer within"),
    "overlapping groups": (_group(1, start=1), "expected to start at 2"),
    "a gap between groups": (_group(2, start=5, frames=1), "expected to start at 4"),
    "groups short of the frames": (_set(frames=FRAMES + 1), "the groups cover 6 frames, the header says 7"),
    "zero frames in a group": (_group(1, frames=0), "frames must be an integer within"),
    "more groups than frames": (_set(frames=2), "at most one per frame"),
    "no groups": (_set(groups=[]), "groups must be a non-empty list"),
    "huge frame count": (_set(frames=10**9), "frames must be an integer within"),
    "version 2": (_set(version=2), "version 2 is not supported"),
    "another format": (_set(format="other"), "not a holoscope Gaussian-video header"),
    "channels of another degree": (_set(sh_degree=3), "the channels do not match SH degree 3"),
    "a channel left out": (lambda b: b.update(channels=b["channels"][:-1]), "do not match SH degree"),
    "channels reordered": (lambda b: b.update(channels=b["channels"][::-1]), "do not match SH degree"),
    "a bad channel entry": (lambda b: b["channels"].__setitem__(0, ["x"]), "bad channel entry"),
    "an unknown pixel format": (_colour_stream(pix_fmt="rgb48be"), "unsupported pixel format rgb48be"),
    "an unknown codec": (_colour_stream(codec="libvpx"), "unsupported codec libvpx"),
    "a plane of an unknown channel": (_colour_stream(planes=["r", "g", "nope"]), "unknown channel nope"),
    "a plane part unknown": (_colour_stream(planes=["r", "g", "b.mid"]), "unknown plane part"),
    "a high byte without its low byte": (_only_part("hi"), "channel x is carried as hi"),
    "a low byte without its high byte": (_only_part("lo"), "channel x is carried as lo"),
    "a stream without planes": (_colour_stream(planes=[]), "0 planes"),
    "a stream entry missing its codec": (lambda b: b["streams"][0].pop("codec"), "bad header"),
    "streams not a list": (_set(streams={"a": 1}), "streams must be a list"),
    "too many streams": (lambda b: b.update(streams=b["streams"] * 20), "streams must be a list of 1..64"),
    "NaN range": (_ranges(float("nan")), "finite min/max pairs"),
    "infinite range": (_ranges(float("inf"), 1), "finite min/max pairs"),
    "range min over max": (_ranges(1e6), "min > max"),
    "range beyond float32 splats": (_ranges(3e38, 1), "beyond what float32 splats can hold"),
    "log-scale range past float32": (_ranges(200.0, 2 * 7 + 1), "beyond what float32 splats can hold"),  # sx max
    "ranges not base64": (_group(0, ranges="!!"), "ranges are not base64"),
    "ranges too short": (_group(0, ranges=base64.b64encode(bytes(8)).decode()), "finite min/max pairs"),
    "unknown order": (_group(0, order="random"), "unknown order"),
    "offset inside the fixed header": (_group(0, offset=3), "offset must be an integer within"),
    "zero fps": (_set(fps=0), "fps must be within"),
    "NaN fps": (_set(fps=float("nan")), "fps must be within"),
    "sh degree 4": (_set(sh_degree=4), "sh_degree must be an integer within 0..3"),
    "a segment uri in a .gsv": (_group(0, uri="../../etc/passwd"), "leaves the folder"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_header_is_refused_at_open(name, made, tmp_path):
    edit, message = FORGERIES[name]
    body, segments = take_apart(made["data"])
    edit(body)
    data = put_together(body, segments, fix=name not in ("offset inside the fixed header",))
    with pytest.raises(CorruptStream, match=message):
        open_gsv(write(tmp_path, data))


def zstd_claiming(text: bytes, size: int) -> bytes:
    """A zstd frame of ``text`` whose header says it inflates to ``size`` bytes."""
    frame = zstandard.ZstdCompressor(write_content_size=False, write_checksum=False).compress(text)
    descriptor = frame[4]
    assert descriptor & 0xE3 == 0  # no content size field, a window descriptor, no dictionary
    return frame[:4] + bytes([descriptor | 0xC0]) + frame[5:6] + size.to_bytes(8, "little") + frame[6:]


def test_a_header_that_is_not_json_or_inflates_too_far(made, tmp_path):
    body, segments = take_apart(made["data"])
    cases = {
        b"not zstd at all": "header does not decode",
        compress(b"{\"format\": "): "header does not decode",
        compress(b"[" * 100_000): "header does not decode",  # nested too deep for the JSON parser
        compress(b"[1, 2]"): "not a holoscope Gaussian-video header",
        compress(b"\xff\xfe"): "header does not decode",
        # a frame that claims 1 TB: the reader inflates what is there, never what is claimed
        zstd_claiming(json.dumps(body).encode(), 1 << 40): "header does not decode",
        zstandard.ZstdCompressor().compress(b" " * ((64 << 20) + 10)): "inflates to more than",
    }
    for payload, message in cases.items():
        with pytest.raises(CorruptStream, match=message):
            open_gsv(write(tmp_path, put_together(body, segments, payload=payload)))


def test_a_header_with_a_forged_length(made, tmp_path):
    data = bytearray(made["data"])
    for length, message in ((0, "header length 0"), (container.MAX_HEADER_BYTES + 1, "beyond the limit"),
                            (len(data), "truncated inside its header")):  # fmt: skip
        struct.pack_into("<I", data, 8, length)
        with pytest.raises(CorruptStream, match=message):
            open_gsv(write(tmp_path, bytes(data)))


BUDGET_CHILD = """
import sys
from holoscope.codecs.builtin import register_builtin_formats
from holoscope.codecs.gsvideo.gsv import open_gsv
from holoscope.core.errors import BudgetExceeded
register_builtin_formats()
media = open_gsv(sys.argv[1])
print(media.info["splats_max"])
try:
    media.frame(0)
except BudgetExceeded as exc:
    print("refused:", exc)
frames = [f.payload for f in media.frames_from(0)]
print(sum(type(f).__name__ == "FailedFrame" for f in frames), sum(type(f).__name__ == "SplatCloud" for f in frames))
with open("/proc/self/status") as status:  # the peak of this process image (ru_maxrss counts the parent's)
    print(next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM:")))
"""


@pytest.mark.timeout(60)
def test_a_header_claiming_60_million_splats_is_refused_by_the_budget(made, tmp_path):
    # Valid as far as the header goes (8192 x 8192 pictures hold 60 M Gaussians), and the
    # segment's checksum is right: the decode budget refuses before anything is allocated.
    path = write(tmp_path, forged(made, _group(0, counts=60_000_000, width=8192, height=8192)))
    proc = run_capped([sys.executable, "-c", BUDGET_CHILD, path], timeout=50,
                      env={**os.environ, "HOLOSCOPE_HWDEC": "no"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    splats, refused, counts, peak_mb = proc.stdout.splitlines()
    assert splats == "60000000"
    assert refused.startswith("refused:") and "decoding group 1 needs" in refused, refused
    assert "memory budget" in refused, refused
    assert counts == f"{GOF} {FRAMES - GOF}"  # group 1 skipped, the others played
    assert int(peak_mb) < 300, peak_mb  # measured 65 MB
    # in this process, with the budget set as --max-memory sets it
    budget.set_limit(1 << 30)
    try:
        media = open_gsv(path)
        with pytest.raises(BudgetExceeded, match="memory budget"):
            media.frame(1)
        assert_groups_skipped(play(media), made, {1}, "memory budget")
    finally:
        budget.set_limit(None)


# Segmented layouts --------------------------------------------------------------------------------------


def copy_layout(made, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(made["segs"], tmp_path / "segs"))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def rewrite_manifest(folder: Path, edit: Callable[[dict], object], *, fix_crc: bool = True) -> None:
    """Edit the manifest's JSON and give it the CRC-32 of its canonical form (or a wrong one)."""
    body = manifest_of(folder)
    body.pop("crc32")
    edit(body)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    body["crc32"] = zlib.crc32(canonical) if fix_crc else zlib.crc32(canonical) ^ 1
    (folder / "manifest.json").write_text(json.dumps(body, indent=1))


def test_the_layout_plays_like_the_file(made):
    for frame, want in zip(play(open_gsv(made["segs"])), made["played"]):
        assert_same(frame, want)


def test_a_missing_segment_skips_its_group(made, tmp_path, caplog):
    folder = copy_layout(made, tmp_path)
    (folder / "medium" / "00001.mp4").unlink()
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        media = open_gsv(folder)
    (warning,) = warnings_of(caplog)
    assert "segment files are missing: group 2 of 3 (frames 3-4) cannot be played" in warning, warning
    assert media.info["missing_groups"] == [2]
    assert_groups_skipped(play(media), made, {2}, "00001.mp4")


def test_a_segment_that_is_a_fifo_or_of_another_size(made, tmp_path):
    folder = copy_layout(made, tmp_path)
    (folder / "medium" / "00000.mp4").unlink()
    os.mkfifo(folder / "medium" / "00000.mp4")
    with open(folder / "medium" / "00002.mp4", "ab") as fh:
        fh.write(b"\0" * 100)
    media = open_gsv(folder)
    assert media.info["missing_groups"] == [1]
    frames = play(media)
    assert all(isinstance(f, FailedFrame) and "FIFO" in f.message for f in frames[:2])
    assert_same(frames[2], made["played"][2])
    assert all(isinstance(f, FailedFrame) and "the manifest says" in f.message for f in frames[4:])


def test_a_segment_length_the_manifest_inflates_is_not_allocated(made, tmp_path):
    folder = copy_layout(made, tmp_path)
    rewrite_manifest(folder, lambda b: b["levels"][0]["header"]["groups"][0].update(length=1 << 40))
    media = open_gsv(folder)
    with pytest.raises(CorruptStream, match="the manifest says 1,099,511,627,776"):
        media.frame(0)


def test_a_layout_with_every_segment_missing(made, tmp_path):
    folder = copy_layout(made, tmp_path)
    for segment in (folder / "medium").iterdir():
        segment.unlink()
    with pytest.raises(EmptyMedia, match="segment files are missing: no group of frames can be played"):
        open_gsv(folder)


def _first_group(**values) -> Callable[[dict], None]:
    return lambda body: body["levels"][0]["header"]["groups"][0].update(values)


MANIFEST_FORGERIES = {
    "a segment uri with ..": (_first_group(uri="../good.gsv"), "leaves the folder"),
    "an absolute segment uri": (_first_group(uri="/etc/hostname"), "leaves the folder"),
    "a backslash in a uri": (_first_group(uri="medium\\..\\x"), "leaves the folder"),
    "a group with an offset instead of its uri": (_first_group(uri="", offset=99), "must name its segment file"),
    "no levels": (lambda b: b.update(levels=[]), "1..16 quality levels"),
    "a level that is not an object": (lambda b: b.update(levels=[1]), "must be an object"),
    "a forged header inside": (lambda b: b["levels"][0]["header"].update(frames=0), "frames must be"),
    "a negative bandwidth": (lambda b: b["levels"][0].update(bandwidth=-1), "bandwidth"),
    "version 2": (lambda b: b.update(version=2), "manifest version 2 is not supported"),
}


@pytest.mark.parametrize("name", list(MANIFEST_FORGERIES))
def test_a_forged_manifest_is_refused(name, made, tmp_path):
    edit, message = MANIFEST_FORGERIES[name]
    folder = copy_layout(made, tmp_path)
    rewrite_manifest(folder, edit)
    for target in (folder, folder / "manifest.json"):
        with pytest.raises(CorruptStream, match=message):
            open_gsv(target)


def test_a_damaged_manifest_is_refused(made, tmp_path):
    folder = copy_layout(made, tmp_path)
    text = (folder / "manifest.json").read_text()
    assert '"fps": 30.0' in text
    (folder / "manifest.json").write_text(text.replace('"fps": 30.0', '"fps": 60.0'))  # edited by hand
    with pytest.raises(CorruptStream, match="manifest checksum mismatch"):
        open_gsv(folder)
    rewrite_manifest(folder, lambda b: None, fix_crc=False)
    with pytest.raises(CorruptStream, match="manifest checksum mismatch"):
        open_gsv(folder)
    for data, message in ((b"{\"format\": \"holoscope-gsv-manifest\", ", "not JSON"), (b"[" * 100_000, "not JSON"),
                          (b"\x80abc", "not JSON"), (b"{}", "not a holoscope Gaussian-video manifest")):  # fmt: skip
        (folder / "manifest.json").write_bytes(data)
        with pytest.raises(CorruptStream, match=message):
            open_gsv(folder / "manifest.json")
    (folder / "manifest.json").unlink()
    with pytest.raises(CorruptStream, match="holds no manifest.json"):
        open_manifest(folder)


# Things that are not .gsv files at all -----------------------------------------------------------------


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("holoscope: error: "), lines
    return lines[0]


def test_an_empty_file(tmp_path, capsys):
    path = write(tmp_path, b"")
    with pytest.raises(CorruptStream, match="too short"):
        open_gsv(path)
    with pytest.raises(HoloscopeError):
        open_media(path)
    assert main(["info", str(path)]) == 2
    one_error_line(capsys)


@pytest.mark.timeout(20)
def test_a_fifo_named_gsv_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "x.gsv"
    os.mkfifo(fifo)
    with pytest.raises(NotAFile, match="FIFO"):
        open_gsv(fifo)
    for argv in (["info", str(fifo)], ["convert", str(fifo), str(tmp_path / "out" / "%04d.ply")]):
        assert main(argv) == 2
        assert "FIFO" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_folder_named_gsv(tmp_path, capsys):
    folder = tmp_path / "x.gsv"
    folder.mkdir()
    with pytest.raises(CorruptStream, match="holds no manifest.json"):
        open_gsv(folder)
    assert main(["info", str(folder)]) == 2
    one_error_line(capsys)


def test_a_file_of_another_kind_named_gsv(tmp_path, made):
    with pytest.raises(CorruptStream, match="bad magic"):
        open_gsv(write(tmp_path, b"GIF89a" + bytes(100)))
    with pytest.raises(CorruptStream, match="not a holoscope Gaussian-video manifest"):
        open_manifest(write(tmp_path, b'{"format": "something else"}', "manifest.json"))


# Playback goes on past a damaged group --------------------------------------------------------------


def test_the_player_shows_failed_frames_and_goes_on(made, tmp_path):
    header, _ = container.read_header(made["data"], len(made["data"]), "x")
    second = header.groups[1]
    data = bytearray(made["data"])
    data[second.offset + 100] ^= 0xFF
    media = open_gsv(write(tmp_path, bytes(data)))
    clock = FakeClock()
    with Player(media, now=clock) as player:
        player.play()
        for index in range(FRAMES):
            clock.t = (index + 0.5) / media.fps
            shown = poll_until(player, index, timeout=20)
            if index // GOF == 1:
                assert shown is None and player.state is PlayerState.FAILED_FRAME
                assert f"frame {index + 1} could not be read" in player.warning and "group 2" in player.warning
                assert player.frame.index == 1  # the last good picture stays
            else:
                assert shown is not None and shown.index == index
                assert_same(shown.payload, made["played"][index])
                assert player.state in (PlayerState.PLAYING, PlayerState.ENDED)
        assert player.prefetcher.alive
        # and every frame, as an exporter asks for them (seeking back into the damaged group)
        got = [player.frame_at(i, timeout=20) for i in (5, 3, 2, 0, 4)]
        assert [g.index if g is not None else None for g in got] == [5, None, None, 0, 4]
