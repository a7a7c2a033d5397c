"""V^3 streams ("V^3: Viewing Volumetric Videos on Mobiles via Streamable 2D Dynamic Gaussians"):
reader and writer of the folder layout that AuthorityWang/VideoGS packs
(``compress/compress_ckpt_2_image_precompute.py`` then ``compress/compress_image_2_video.py``)
and its SIBR player reads (gaussian-video.md section 1).

Layout of a stream folder::

    group_info.json      {"<g>": {"frame_index": [a, b], "name_index": [c, d]}, ...}
    viewer_min_max.json  {"<frame>": {"num": N, "info": [min0, max0, ..., min16, max16]}, ...}
    min_max.json         {"<frame>_num": N, "<frame>_<i>_min": .., "<frame>_<i>_max": .., ...}
    group<g>/0.mp4 .. group<g>/19.mp4

- Groups are numbered 0..G-1; group g holds frames a..b of the video (``frame_index``, both
  ends inclusive), which the packer named c..d (``name_index``: its input frame numbers;
  ``d - c == b - a``). The JSON keys of the per-frame tables are those names. The SIBR player
  looks them up by frame index instead; the two agree when the packed frames start at 0, and
  this reader accepts either.
- One frame holds 17 attributes per Gaussian in PLY order ``x y z nx ny nz f_dc_0..2 opacity
  scale_0..2 rot_0..3`` (SH degree 0: the packer is hard-wired to 20 videos), already
  activated: quaternions normalised (w first), ``exp`` of the log-scales, ``sigmoid`` of the
  opacity; f_dc are the SH DC coefficients as trained. The normals are zeros.
- Each attribute is quantised on its own per-frame [min, max] (``info[2i]``, ``info[2i + 1]``):
  ``q = trunc((v - min) / (max - min) * L)`` with L = 65535 for x, y, z and 255 for the
  others; a constant attribute (the normals) has max == min and stores 0. Decoding is
  ``v = q / L * (max - min) + min``.
- Gaussian i is pixel (i // side, i % side) of a square image; side is the smallest multiple
  of 8 with side^2 >= N; unused pixels are 0.
- Video i holds, per frame, one 8-bit image in the luma plane of a ``yuvj444p`` (full range)
  H.264 picture with neutral chroma:

  ======  =====================================  ========================
  video   content                                x264 ``-qp``
  ======  =====================================  ========================
  0 2 4   low byte ``q & 0xFF`` of x, y, z       qp (default 25)
  1 3 5   high byte ``q >> 8`` of x, y, z        0 (lossless)
  6-8     nx ny nz (zeros)                       qp
  9-11    f_dc_0..2                              min(qp, 22)
  12      opacity                                qp
  13-15   scale_0..2                             min(qp, 22)
  16-19   rot_0..3                               min(qp, 22)
  ======  =====================================  ========================

  VideoGS encodes each video with the ffmpeg CLI from PNGs named ``<name>_<video>.png``
  (``-start_number c -vframes (b - a + 1) -c:v libx264 -qp Q -pix_fmt yuvj444p``): x264's
  defaults otherwise, and the image2 demuxer's default rate, 25 fps. The SIBR player ignores
  the rate and plays at 33 ms a frame.

Reading: :func:`open_v3` takes the folder or its ``group_info.json``. Opening decodes nothing:
it reads the two JSON tables (size-limited, checked strictly: types, groups that tile the
frames, a key per frame, finite [min, max] pairs, plausible counts), checks that all 20 videos
of every group are there, asks the decode budget for the largest group, and reads the MP4
header of video 0 of every group, whose frame count and picture size must agree with the
tables (a header that cannot be read is left to playback). Frames are decoded per group
(:mod:`holoscope.codecs.gsvideo.grouped`): the group's 20 videos are opened together and
decoded in lockstep, one picture of each per frame (side by side on a small thread pool; PyAV
decodes without the GIL), read straight from the luma plane, never through swscale. A video
that is missing, damaged, cut short or the wrong size raises :class:`CorruptStream` naming it;
playback then skips that group with a warning.

Remote streams (a URL of the folder or of ``group_info.json``): the two tables are fetched and
checked the same way; the videos are reached through ``source.relative``, not asked for one by
one at open (only video 0 of the first group, for the header checks), and each group's 20 are
fetched side by side (at most :data:`REMOTE_FETCHES` at once) and decoded from memory. A video
that is missing or cannot be read skips its group like a damaged one. The SIBR player reads the same pictures
through OpenCV (BGR, then grey) and applies the same inverse of the quantisation.

Writing: :func:`write_v3` packs SplatClouds with VideoGS's quantisation and video table, the
videos through PyAV's libx264 with the same settings as VideoGS's command line.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import av
import numpy as np

from holoscope.codecs.formats.common import DEFAULT_UP, MAX_SPLATS, current_umask
from holoscope.codecs.gsvideo.grouped import GroupSpan, grouped_media
from holoscope.codecs.gsvideo.parallel import Lockstep
from holoscope.codecs.gsvideo.planes import make_frame, read_planes
from holoscope.codecs.video.decode import OPEN_TIMEOUT, READ_TIMEOUT, max_pixels as default_max_pixels
from holoscope.core import budget
from holoscope.core.adaptive import AdaptiveController
from holoscope.core.errors import (
    CorruptStream,
    EmptyMedia,
    HoloscopeError,
    InvalidArgument,
    OutputError,
    SourceNotFound,
    SourceUnreadable,
)
from holoscope.core.files import check_regular, os_error, read_limited
from holoscope.core.frames import Frame, SplatCloud
from holoscope.core.media import Media
from holoscope.core.sources import FolderSource, Source, source_for

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.v3"
FORMAT_NAME = "v3"

GROUP_INFO_NAME = "group_info.json"
MIN_MAX_NAME = "viewer_min_max.json"
FULL_MIN_MAX_NAME = "min_max.json"  # the packer's other table; players do not read it

ATTRIBUTES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip
ATTRIBUTE_COUNT = len(ATTRIBUTES)  # 17
STREAMS = 20  # per group: 3 x 2 position bytes + 14 one-byte attributes
POSITION_LEVELS = 65535.0
LEVELS = np.array([POSITION_LEVELS] * 3 + [255.0] * (ATTRIBUTE_COUNT - 3))
FINE_QP = 22  # colour, scale and rotation videos are coded at min(qp, 22)
_FINE_STREAMS = frozenset((9, 10, 11, 13, 14, 15, 16, 17, 18, 19))
_HIGH_BYTE_STREAMS = frozenset((1, 3, 5))
PIX_FMT = "yuvj444p"
CODEC = "libx264"
DEFAULT_FPS = 30.0  # when a video states no usable rate: the SIBR player's 33 ms a frame

# The tables grow with the frame count: viewer_min_max.json (indent 4, as VideoGS writes it) is
# about 1.5 KB a frame, so 32 MB is over 20,000 frames (11 minutes at 30 fps). json.loads can cost
# ~20 times its input in Python objects ("[[],[],...]"), which is asked of the decode budget first.
MAX_GROUP_INFO_BYTES = 4 << 20
MAX_MIN_MAX_BYTES = 32 << 20
JSON_COST = 20
MAX_FRAMES = 1 << 20
MAX_NAME_INDEX = 1 << 40
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Pictures one H.264 decoder holds while decoding a group (its references, reordering and the
# picture being decoded): x264's defaults (3 references, 3 B-frames) need about 6.
PICTURES_PER_DECODER = 8
# Temporaries of one frame's decode, in units of the finished cloud (the float64 positions).
DECODE_PEAK_FACTOR = 3.0
# A remote stream's group: its 20 videos are fetched side by side, at most this many at once
# (a server or CDN answers a few parallel requests faster than one after another; more would
# only compete for the same link), each at most MAX_VIDEO_BYTES.
REMOTE_FETCHES = 6
MAX_VIDEO_BYTES = 256 << 20


# The layout ------------------------------------------------------------------------------------


def image_side(count: int) -> int:
    """Side of the square image that holds ``count`` Gaussians: the smallest multiple of 8
    whose square is at least ``count`` (8 for anything up to 64)."""
    side = 8 * max(1, math.isqrt(max(count - 1, 0)) // 8)
    while side * side < count:
        side += 8
    return side


def stream_qp(stream: int, qp: int) -> int:
    """The x264 ``-qp`` VideoGS codes video ``stream`` with at a requested ``qp``."""
    if stream in _HIGH_BYTE_STREAMS:
        return 0
    if stream in _FINE_STREAMS:
        return min(qp, FINE_QP)
    return qp


def stream_content(stream: int) -> str:
    """What video ``stream`` holds, for messages: "x low byte", "opacity" ..."""
    if stream < 6:
        return f"{ATTRIBUTES[stream // 2]} {'high' if stream % 2 else 'low'} byte"
    return ATTRIBUTES[stream - 3]


def group_dir_name(group: int) -> str:
    return f"group{group}"


def stream_name(stream: int) -> str:
    return f"{stream}.mp4"


def quantize_frame(cloud: SplatCloud) -> tuple[np.ndarray, list[float]]:
    """The 20 images of one frame ([20, side, side] uint8) and its 34-float min/max table,
    exactly as VideoGS's packer computes them (float64, truncation toward zero)."""
    n = cloud.count
    data = np.empty((n, ATTRIBUTE_COUNT), np.float64)
    data[:, 0:3] = cloud.means
    data[:, 3:6] = 0.0  # the normals
    data[:, 6:9] = cloud.sh[:, 0]
    data[:, 9] = cloud.opacities
    data[:, 10:13] = cloud.scales
    quats = cloud.quats.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        data[:, 13:17] = quats / np.sqrt(np.sum(quats**2, axis=1))[:, None]
    if not np.isfinite(data).all():
        raise InvalidArgument("holds non-finite values (NaN or infinity, or a zero quaternion)")
    mins, maxs = data.min(axis=0), data.max(axis=0)
    span = maxs - mins
    constant = span == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        # The packer's own order of operations, (v - min) / (max - min) * L, so truncation
        # lands on the same integers; a constant attribute gives 0 / 0, stored as 0.
        scaled = (data - mins) / span * LEVELS
    scaled[:, constant] = 0.0
    side = image_side(n)
    images = np.zeros((STREAMS, side * side), np.uint8)
    positions = scaled[:, :3].astype(np.uint16)
    images[0:6:2, :n] = (positions & 0xFF).T
    images[1:6:2, :n] = (positions >> 8).T
    images[6:, :n] = scaled[:, 3:].astype(np.uint8).T
    table = np.empty(2 * ATTRIBUTE_COUNT, np.float64)
    table[0::2], table[1::2] = mins, maxs
    return images.reshape(STREAMS, side, side), [float(v) for v in table]


def dequantize_frame(images: list[np.ndarray], table: np.ndarray, count: int) -> SplatCloud:
    """The cloud of one frame from its 20 decoded images (uint8, any shape holding at least
    ``count`` pixels) and its [17, 2] min/max table."""
    low, high = table[:, 0], table[:, 1]
    step = (high - low) / LEVELS

    def values(q: np.ndarray, attribute: int) -> np.ndarray:
        return q / LEVELS[attribute] * (high[attribute] - low[attribute]) + low[attribute]

    flat = [np.asarray(image).reshape(-1)[:count] for image in images]
    means = np.empty((count, 3), np.float32)
    for axis in range(3):
        q = flat[2 * axis].astype(np.uint16) | (flat[2 * axis + 1].astype(np.uint16) << 8)
        means[:, axis] = values(q, axis)
    rest = np.empty((count, ATTRIBUTE_COUNT - 3), np.float32)
    for attribute in range(3, ATTRIBUTE_COUNT):
        # float32 is exact enough for 8-bit steps: q * step + min, as the SIBR player does
        rest[:, attribute - 3] = flat[attribute + 3] * np.float32(step[attribute]) + np.float32(low[attribute])
    sh = np.ascontiguousarray(rest[:, 3:6]).reshape(count, 1, 3)
    opacities = np.clip(rest[:, 6], 0.0, 1.0)
    scales = np.maximum(rest[:, 7:10], 0.0)
    quats = rest[:, 10:14]
    norms = np.sqrt(np.einsum("ij,ij->i", quats, quats))
    zero = norms == 0
    quats = quats / np.where(zero, 1.0, norms)[:, None].astype(np.float32)
    quats[zero] = (1.0, 0.0, 0.0, 0.0)
    return SplatCloud(means=means, scales=np.ascontiguousarray(scales), quats=np.ascontiguousarray(quats, np.float32),
                      opacities=np.ascontiguousarray(opacities), sh=sh)  # fmt: skip


# Reading: the JSON tables ---------------------------------------------------------------------


class _Layout:
    """What the two JSON tables and the folder say, checked."""

    def __init__(self, folder: Path | str, groups: list[GroupSpan], names: list[int], counts: np.ndarray,
                 tables: np.ndarray, keys: str, file_bytes: int | None, stream_bytes: list[int] | None,
                 root: Source | None = None) -> None:  # fmt: skip
        self.folder = folder  # what messages name: the local folder, or the stream's URL
        # Where the videos are reached from when they are not local files: a source in the
        # folder (the folder itself or its group_info.json), resolving names as URLs do.
        self.root = root
        self.groups = groups
        self.names = names  # per frame: its key in viewer_min_max.json
        self.counts = counts  # per frame: Gaussians
        self.tables = tables  # [frames, 17, 2] float64 min / max
        self.keys = keys  # "name_index" or "frame_index": which numbers key the min/max table
        self.file_bytes = file_bytes
        self.stream_bytes = stream_bytes  # per video index, over all groups

    @property
    def remote(self) -> bool:
        return self.root is not None

    def video(self, group: int, stream: int) -> Path:
        assert isinstance(self.folder, Path)
        return self.folder / group_dir_name(group) / stream_name(stream)

    def video_source(self, group: int, stream: int) -> Source:
        assert self.root is not None
        return self.root.relative(f"{group_dir_name(group)}/{stream_name(stream)}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r:.40}")
        out[key] = value
    return out


def _load_json(path: Path, limit: int, what: str) -> Any:
    try:
        st = check_regular(path)
    except SourceNotFound as exc:
        raise CorruptStream(f"missing {what} (a V^3 stream folder holds {GROUP_INFO_NAME} and {MIN_MAX_NAME})",
                            path=path.parent) from exc  # fmt: skip
    if st.st_size > limit:
        raise CorruptStream(f"{what} holds {st.st_size:,} bytes, more than the {limit:,} allowed", path=path.parent)
    budget.require(JSON_COST * max(st.st_size, 1), what=f"{what} ({st.st_size:,} bytes of JSON)", path=path)
    data = read_limited(path, limit, what=what)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptStream(f"{what} is not valid JSON ({str(exc)[:120]})", path=path.parent) from exc


def _load_remote_json(source: Source, limit: int, what: str, folder: str) -> tuple[Any, int]:
    """A JSON table of a remote stream (size-limited and budgeted before it is fetched, when the
    server states the size) and its size in bytes."""
    try:
        size = source.size
        if size is not None:
            if size > limit:
                raise CorruptStream(f"{what} holds {size:,} bytes, more than the {limit:,} allowed", path=folder)
            budget.require(JSON_COST * max(size, 1), what=f"{what} ({size:,} bytes of JSON)", path=source.label)
        data = source.read_limited(limit, what=what)
    except SourceNotFound as exc:
        raise CorruptStream(f"missing {what} (a V^3 stream folder holds {GROUP_INFO_NAME} and {MIN_MAX_NAME})",
                            path=folder) from exc  # fmt: skip
    except (OSError, EOFError) as exc:
        if isinstance(exc, HoloscopeError):
            raise
        raise SourceUnreadable(f"{what} cannot be read ({exc})", path=source.label) from exc
    if size is None:
        budget.require(JSON_COST * max(len(data), 1), what=f"{what} ({len(data):,} bytes of JSON)", path=source.label)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates), len(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptStream(f"{what} is not valid JSON ({str(exc)[:120]})", path=folder) from exc


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _pair(entry: dict, key: str, where: str, path: Path) -> tuple[int, int]:
    value = entry.get(key)
    if not isinstance(value, list) or len(value) != 2:
        raise CorruptStream(f"{GROUP_INFO_NAME}: {where} needs {key!r} = [first, last], got {value!r:.60}", path=path)
    first, last = _integer(value[0]), _integer(value[1])
    if first is None or last is None or not 0 <= first <= last <= MAX_NAME_INDEX:
        raise CorruptStream(f"{GROUP_INFO_NAME}: {where} {key} {value!r:.60} is not two frame numbers, "
                            f"first <= last", path=path)  # fmt: skip
    return first, last


def _parse_groups(data: Any, path: Path) -> tuple[list[GroupSpan], list[int]]:
    """Group spans and the name of every frame, from group_info.json."""
    if not isinstance(data, dict):
        raise CorruptStream(f"{GROUP_INFO_NAME} must hold a JSON object of groups", path=path)
    if not data:
        raise EmptyMedia(f"{GROUP_INFO_NAME} lists no groups", path=path)
    if len(data) > MAX_FRAMES:
        raise CorruptStream(f"{GROUP_INFO_NAME} lists {len(data):,} groups, more than {MAX_FRAMES:,}", path=path)
    groups: list[GroupSpan] = []
    names: list[int] = []
    next_frame, last_name = 0, -1
    for group in range(len(data)):
        entry = data.get(str(group))
        if entry is None:
            raise CorruptStream(f"{GROUP_INFO_NAME} has no group \"{group}\" (groups are numbered 0..{len(data) - 1})",
                                path=path)  # fmt: skip
        where = f"group {group}"
        if not isinstance(entry, dict):
            raise CorruptStream(f"{GROUP_INFO_NAME}: {where} must be an object", path=path)
        first, last = _pair(entry, "frame_index", where, path)
        if first != next_frame:
            relation = "overlaps the group before" if first < next_frame else "leaves a gap after the group before"
            raise CorruptStream(f"{GROUP_INFO_NAME}: {where} covers frames {first}..{last}, which {relation} "
                                f"(expected to start at frame {next_frame})", path=path)  # fmt: skip
        name_first, name_last = _pair(entry, "name_index", where, path)
        if name_last - name_first != last - first:
            raise CorruptStream(f"{GROUP_INFO_NAME}: {where} names frames {name_first}..{name_last} "
                                f"but covers frames {first}..{last}: not the same count", path=path)  # fmt: skip
        if name_first <= last_name:
            raise CorruptStream(f"{GROUP_INFO_NAME}: {where} names frames {name_first}..{name_last}, "
                                f"which overlap the group before (it ends at {last_name})", path=path)  # fmt: skip
        count = last - first + 1
        if next_frame + count > MAX_FRAMES:
            raise CorruptStream(f"{GROUP_INFO_NAME} covers more than {MAX_FRAMES:,} frames", path=path)
        groups.append(GroupSpan(first, count))
        names.extend(range(name_first, name_last + 1))
        next_frame, last_name = last + 1, name_last
    return groups, names


def _parse_tables(data: Any, names: list[int], path: Path) -> tuple[list[int], np.ndarray, np.ndarray, str]:
    """(the key of every frame, Gaussians per frame, [frames, 17, 2] min/max, which numbers key
    the table) from viewer_min_max.json."""
    if not isinstance(data, dict):
        raise CorruptStream(f"{MIN_MAX_NAME} must hold a JSON object of frames", path=path)
    frames = len(names)
    by_name = [str(n) for n in names]
    by_index = [str(i) for i in range(frames)]
    present = set(data)
    if present == set(by_name):
        keys, scheme = by_name, "name_index"
    elif present == set(by_index):
        keys, scheme = by_index, "frame_index"
    else:
        missing = [k for k in by_name if k not in data]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5:,} more" if len(missing) > 5 else "")
            raise CorruptStream(f"{MIN_MAX_NAME} has no entry for frame {shown} (named in {GROUP_INFO_NAME})",
                                path=path)  # fmt: skip
        extra = sorted(present - set(by_name), key=lambda k: (len(k), k))
        shown = ", ".join(repr(k)[:24] for k in extra[:5]) + (f" and {len(extra) - 5:,} more" if len(extra) > 5 else "")
        raise CorruptStream(f"{MIN_MAX_NAME} lists frames that no group of {GROUP_INFO_NAME} covers: {shown}",
                            path=path)  # fmt: skip
    counts = np.empty(frames, np.int64)
    tables = np.empty((frames, 2 * ATTRIBUTE_COUNT), np.float64)
    for index, key in enumerate(keys):
        entry = data[key]
        where = f"{MIN_MAX_NAME}: frame {key}"
        if not isinstance(entry, dict):
            raise CorruptStream(f"{where} must be an object with \"num\" and \"info\"", path=path)
        num = _integer(entry.get("num"))
        if num is None:
            raise CorruptStream(f"{where}: \"num\" must be an integer, got {entry.get('num')!r:.40}", path=path)
        if num <= 0:
            raise CorruptStream(f"{where}: \"num\" is {num}; a frame holds at least one Gaussian", path=path)
        if num > MAX_SPLATS:
            raise CorruptStream(f"{where}: \"num\" {num:,} is beyond any real scene (limit {MAX_SPLATS:,})", path=path)
        info = entry.get("info")
        if not isinstance(info, list) or len(info) != 2 * ATTRIBUTE_COUNT:
            got = f"{len(info)} values" if isinstance(info, list) else f"{info!r:.40}"
            raise CorruptStream(f"{where}: \"info\" must list {2 * ATTRIBUTE_COUNT} numbers (min, max of "
                                f"{ATTRIBUTE_COUNT} attributes), got {got}", path=path)  # fmt: skip
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in info):
            raise CorruptStream(f"{where}: \"info\" holds a value that is not a number", path=path)
        try:
            row = np.array(info, np.float64)
        except OverflowError:
            raise CorruptStream(f"{where}: \"info\" holds a number too large for a float", path=path) from None
        bad = ~np.isfinite(row) | (np.abs(row) > FLOAT32_MAX)
        if bad.any():
            i = int(np.argmax(bad))
            raise CorruptStream(f"{where}: {ATTRIBUTES[i // 2]} {'max' if i % 2 else 'min'} is {float(row[i])!r}, "
                                f"not a finite float", path=path)  # fmt: skip
        lows, highs = row[0::2], row[1::2]
        if (lows > highs).any():
            i = int(np.argmax(lows > highs))
            raise CorruptStream(f"{where}: {ATTRIBUTES[i]} min {float(lows[i])!r} is above its max "
                                f"{float(highs[i])!r}", path=path)  # fmt: skip
        if not np.isfinite(highs - lows).all():
            raise CorruptStream(f"{where}: an attribute's range overflows a float", path=path)
        counts[index] = num
        tables[index] = row
    return keys, counts, tables.reshape(frames, ATTRIBUTE_COUNT, 2), scheme


def _check_videos(folder: Path, groups: int) -> tuple[int, list[int]]:
    """(bytes of all videos, bytes per video index): every group must hold its 20 videos."""
    total, per_stream = 0, [0] * STREAMS
    for group in range(groups):
        group_dir = folder / group_dir_name(group)
        try:
            if not stat.S_ISDIR(os.stat(group_dir).st_mode):
                raise CorruptStream(f"{group_dir_name(group)} is not a folder", path=folder)
        except FileNotFoundError:
            raise CorruptStream(f"missing folder {group_dir_name(group)} (listed in {GROUP_INFO_NAME})",
                                path=folder) from None  # fmt: skip
        except OSError as exc:
            raise os_error(exc, group_dir) from exc
        for stream in range(STREAMS):
            video = group_dir / stream_name(stream)
            try:
                size = check_regular(video).st_size
            except SourceNotFound:
                raise CorruptStream(f"missing {group_dir_name(group)}/{stream_name(stream)} (every V^3 group "
                                    f"holds 20 videos, 0.mp4 .. 19.mp4)", path=folder) from None  # fmt: skip
            if size == 0:
                raise CorruptStream(f"{group_dir_name(group)}/{stream_name(stream)} is empty", path=folder)
            total += size
            per_stream[stream] += size
    return total, per_stream


def _read_remote_layout(source: Source) -> _Layout:
    """A V^3 stream on a server (its folder's URL or its group_info.json's): the JSON tables are
    fetched and checked as locally; the videos are not asked for one by one (a request each),
    so a missing or damaged one shows when its group plays (skipped with a warning)."""
    folder = source.label if source.is_folder else source.label.rsplit("/", 1)[0] + "/"
    info = source.relative(GROUP_INFO_NAME) if source.is_folder else source
    tail = source.name.rstrip("/").rsplit("/", 1)[-1]  # the URL's path (a label may hold a query)
    if not source.is_folder and tail in (MIN_MAX_NAME, FULL_MIN_MAX_NAME):  # another table of the folder named
        info = source.relative(GROUP_INFO_NAME)
    data, info_bytes = _load_remote_json(info, MAX_GROUP_INFO_BYTES, GROUP_INFO_NAME, folder)
    groups, names = _parse_groups(data, folder)  # type: ignore[arg-type]
    data, table_bytes = _load_remote_json(info.relative(MIN_MAX_NAME), MAX_MIN_MAX_BYTES, MIN_MAX_NAME, folder)
    keys, counts, tables, scheme = _parse_tables(data, names, folder)  # type: ignore[arg-type]
    layout = _Layout(folder, groups, [int(k) for k in keys], counts, tables, scheme, None, None, root=info)
    _require_group(int(counts.max()), folder)
    return layout


def read_layout(source: Source | str | os.PathLike[str]) -> _Layout:
    """Check a V^3 folder (or its group_info.json), local or remote, without decoding a picture;
    see the module doc."""
    source = source_for(source)
    if source.local_path is None:
        if type(source).relative is Source.relative:  # bytes in memory: no videos beside them
            raise CorruptStream(f"a V^3 {GROUP_INFO_NAME} on its own has no videos: open its folder", path=source.label)
        return _read_remote_layout(source)
    if isinstance(source, FolderSource):
        folder, info_path = source.local_path, source.local_path / GROUP_INFO_NAME
    else:
        info_path = source.local_path
        folder = info_path.parent
        check_regular(info_path)  # the named file itself: a missing one is SourceNotFound
        if info_path.name in (MIN_MAX_NAME, FULL_MIN_MAX_NAME):  # another table of the folder named
            info_path = folder / GROUP_INFO_NAME
    if not folder.is_dir():
        raise SourceNotFound("no such folder", path=folder)
    # The messages name the table; the errors name the folder.
    groups, names = _parse_groups(_load_json(info_path, MAX_GROUP_INFO_BYTES, info_path.name), folder)
    tables_path = folder / MIN_MAX_NAME
    keys, counts, tables, scheme = _parse_tables(_load_json(tables_path, MAX_MIN_MAX_BYTES, MIN_MAX_NAME), names,
                                                 folder)  # fmt: skip
    video_bytes, per_stream = _check_videos(folder, len(groups))
    json_bytes = 0
    for path in (info_path, tables_path, folder / FULL_MIN_MAX_NAME):
        try:
            json_bytes += check_regular(path).st_size
        except HoloscopeError:
            pass
    layout = _Layout(folder, groups, [int(k) for k in keys], counts, tables, scheme, video_bytes + json_bytes,
                     per_stream)  # fmt: skip
    _require_group(int(counts.max()), folder)
    return layout


def _require_group(count: int, path: Path | str) -> None:
    """Ask the decode budget for one group's decode: 20 decoders' pictures and a frame's cloud."""
    side = image_side(count)
    pictures = STREAMS * PICTURES_PER_DECODER * 3 * side * side
    budget.require_splats(count, 0, path=path, peak_factor=DECODE_PEAK_FACTOR, extra=pictures)


# Reading: the videos -----------------------------------------------------------------------------


def _open_video(path: Path | str, max_pixels: int | None = None, probe: bool = False, data: bytes | None = None) -> Any:
    """A group's video opened for decoding, under the plain-video reader's time limits: the local
    file ``path``, or ``data`` fetched from a server (``path`` then names it in messages).

    Unless ``probe``, FFmpeg's stream analysis decodes nothing (``skip_frame``): the MP4 header
    says all a decode needs, and analysing would decode half the group a second time. With
    ``max_pixels`` a larger picture is refused before the decoder allocates it.
    """
    if data is None:
        check_regular(path)  # FFmpeg would block in open() on a FIFO
    elif not data:
        raise CorruptStream("is empty", path=path)
    limit = str(max_pixels or default_max_pixels())
    analysis = {"max_pixels": limit} if probe else {"max_pixels": limit, "skip_frame": "all", "probesize": "32"}
    try:
        container = av.open(str(path) if data is None else io.BytesIO(data), "r", options=analysis,
                            metadata_errors="replace", timeout=(OPEN_TIMEOUT, READ_TIMEOUT))  # fmt: skip
    except av.FFmpegError as exc:
        raise CorruptStream(f"cannot open as a video ({exc.strerror or exc})", path=path) from exc
    try:
        if not container.streams.video:
            raise CorruptStream("holds no video stream", path=path)
        stream = container.streams.video[0]
        if max_pixels is not None and stream.width * stream.height > max_pixels:
            raise CorruptStream(f"is {stream.width}x{stream.height}, far larger than its frames' Gaussians need",
                                path=path)  # fmt: skip
        cc = stream.codec_context
        if cc is None:
            raise CorruptStream("holds a video stream this FFmpeg cannot decode", path=path)
        # 20 decoders run side by side, spread over a thread pool: threads of their own would
        # only add latency and memory.
        cc.thread_count = 1
        cc.options = {**(cc.options or {}), "max_pixels": limit}
    except BaseException:
        container.close()
        raise
    return container


def _pictures(container: Any, path: Path | str) -> Iterator[Any]:
    """The decoded pictures of a video's first stream, in display order."""
    stream = container.streams.video[0]
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except av.FFmpegError as exc:  # damaged data, or a read past the time limit
        raise CorruptStream(f"damaged video ({exc})", path=path) from exc


def _check_headers(layout: _Layout) -> dict:
    """Read the MP4 header of video 0 of every group (no picture is decoded): its frame count
    and picture size must agree with the JSON tables, else :class:`CorruptStream` names the
    group. A header that cannot be read is left for playback, which skips that group; if no
    group's can be read, nothing would play and the first error is raised. Returns the codec,
    rate and picture size of the first readable one (decoding its first picture for the
    pixel format)."""
    found: dict | None = None
    first_error: HoloscopeError | None = None
    for group, span in enumerate(layout.groups):
        if layout.remote and found is not None:
            break  # a remote stream's other groups are checked as they play: a request each
        name = f"{group_dir_name(group)}/{stream_name(0)}"
        try:
            if layout.remote:
                (data,) = _fetch(layout, group, [0])
                container = _open_video(f"{layout.folder}{name}", probe=found is None, data=data)
            else:
                container = _open_video(layout.video(group, 0), probe=found is None)
        except HoloscopeError as exc:
            first_error = first_error or exc
            continue
        try:
            stream = container.streams.video[0]
            stated = stream.frames
            if stated and stated != span.count:
                raise CorruptStream(f"{name} holds {stated} frames, but {GROUP_INFO_NAME} gives "
                                    f"{group_dir_name(group)} {span.count} (frames {span.start}..{span.end - 1})",
                                    path=layout.folder)  # fmt: skip
            counts = layout.counts[span.start : span.end]
            most = int(counts.max())
            if stream.width * stream.height < most:
                frame = layout.names[span.start + int(np.argmax(counts))]
                raise CorruptStream(f"{name} is {stream.width}x{stream.height}, too small for the {most:,} Gaussians "
                                    f"{MIN_MAX_NAME} gives frame {frame}", path=layout.folder)  # fmt: skip
            if found is None:
                cc = stream.codec_context
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                found = {
                    "codec": cc.name,
                    "profile": cc.profile,
                    "pixel_format": cc.pix_fmt,
                    "color_range": "full" if int(cc.color_range or 0) == 2 or str(cc.pix_fmt).startswith("yuvj")
                    else "limited",
                    "width": stream.width,
                    "height": stream.height,
                    "rate": float(rate) if rate else None,
                }  # fmt: skip
        finally:
            container.close()
    if found is None:
        assert first_error is not None
        raise first_error
    return found


def _fetch(layout: _Layout, group: int, streams: list[int], pool: ThreadPoolExecutor | None = None) -> list[bytes]:
    """The bytes of a remote group's videos ``streams`` (on ``pool`` side by side when given).
    A missing video or one that cannot be read raises the holoscope error naming it."""

    held = [0]  # bytes of this group's videos announced so far (their sizes, before reading)
    lock = threading.Lock()

    def one(stream: int) -> bytes:
        name = f"{group_dir_name(group)}/{stream_name(stream)}"
        source = layout.video_source(group, stream)
        try:
            size = source.size  # a server states it first (the probe's part is kept for the read)
            if size is not None:
                with lock:
                    held[0] += size
                    total = held[0]
                budget.require(total, what=f"the videos of {group_dir_name(group)} ({total:,} bytes so far)",
                               path=layout.folder)  # fmt: skip
            return source.read_limited(MAX_VIDEO_BYTES, what=name)
        except SourceNotFound as exc:
            raise CorruptStream(f"missing {name} (every V^3 group holds 20 videos, 0.mp4 .. 19.mp4)",
                                path=layout.folder) from exc  # fmt: skip
        except HoloscopeError:
            raise
        except (OSError, EOFError) as exc:  # a network error the source's own retries did not mend
            raise SourceUnreadable(f"{name} cannot be read ({exc})", path=source.label) from exc

    if pool is None or len(streams) == 1:
        return [one(stream) for stream in streams]
    futures = [pool.submit(one, stream) for stream in streams]
    try:
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.cancel()  # after a failure, the fetches not started yet are not wanted


class _Decoder:
    """Decodes the groups of one opened stream; :meth:`close` stops the decodes still open."""

    def __init__(self, layout: _Layout, controller: AdaptiveController | None = None) -> None:
        self.layout = layout
        self.controller = controller  # times a remote group's fetch (throughput for the info panel)
        self._open: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _fetch_group(self, group: int) -> list[bytes]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(REMOTE_FETCHES, thread_name_prefix="holoscope-v3-fetch")
            pool = self._pool
        started = time.perf_counter()
        data = _fetch(self.layout, group, list(range(STREAMS)), pool)
        if self.controller is not None:
            self.controller.record(sum(len(d) for d in data), time.perf_counter() - started)
        return data

    def group(self, group: int) -> Iterator[SplatCloud]:
        frames = self._decode(group)
        with self._lock:
            self._open.add(frames)
        return frames

    def _decode(self, group: int) -> Iterator[SplatCloud]:
        layout = self.layout
        span = layout.groups[group]
        label = group_dir_name(group)
        most = int(layout.counts[span.start : span.end].max())
        _require_group(most, layout.folder)
        # A picture may be larger than the layout needs (any size holding the Gaussians decodes
        # as the SIBR player reads it), but not absurdly so.
        max_pixels = 4 * image_side(most) ** 2 + (1 << 16)
        containers: list[Any] = []
        runs: list[Iterator[Any]] = []
        lockstep: Lockstep | None = None
        try:
            fetched = self._fetch_group(group) if layout.remote else None
            where: list[Path | str] = []
            for stream in range(STREAMS):
                if fetched is None:
                    where.append(layout.video(group, stream))
                    containers.append(_open_video(where[-1], max_pixels))
                else:
                    where.append(f"{layout.folder}{label}/{stream_name(stream)}")
                    containers.append(_open_video(where[-1], max_pixels, data=fetched[stream]))
                stated = containers[-1].streams.video[0].frames
                if stated and stated != span.count:
                    raise CorruptStream(f"{label}/{stream_name(stream)} holds {stated} frames, but "
                                        f"{GROUP_INFO_NAME} gives the group {span.count}",
                                        path=layout.folder)  # fmt: skip
            runs = [_pictures(c, where[s]) for s, c in enumerate(containers)]
            lockstep = Lockstep(runs, name="holoscope-v3")
            size: tuple[int, int] | None = None
            for offset in range(span.count):
                index = span.start + offset
                count = int(layout.counts[index])
                pictures = lockstep.next()
                images = []
                for stream, picture in enumerate(pictures):
                    name = f"{label}/{stream_name(stream)}"
                    if picture is None:
                        raise CorruptStream(f"{name} ends after {offset} of its {span.count} frames",
                                            path=layout.folder)  # fmt: skip
                    try:
                        (plane,) = read_planes(picture, 1)
                    except ValueError as exc:
                        raise CorruptStream(f"{name}: {exc}", path=layout.folder) from exc
                    if plane.dtype != np.uint8:
                        raise CorruptStream(f"{name} holds {picture.format.name} pictures, not 8-bit ones",
                                            path=layout.folder)  # fmt: skip
                    if size is None:
                        size = plane.shape
                    if plane.shape != size:
                        raise CorruptStream(f"{name} is {plane.shape[1]}x{plane.shape[0]}, the group's other "
                                            f"videos {size[1]}x{size[0]}", path=layout.folder)  # fmt: skip
                    images.append(plane)
                assert size is not None
                if size[0] * size[1] < count:
                    raise CorruptStream(f"{label}'s {size[1]}x{size[0]} pictures cannot hold the {count:,} "
                                        f"Gaussians of frame {layout.names[index]} ({MIN_MAX_NAME})",
                                        path=layout.folder)  # fmt: skip
                yield dequantize_frame(images, layout.tables[index], count)
        finally:
            if lockstep is not None:
                lockstep.close()  # decodes in flight finish before their containers close
            for run in runs:
                run.close()
            for container in containers:
                try:
                    container.close()
                except Exception:  # closing a damaged container must not hide why it failed
                    pass

    def close(self) -> None:
        with self._lock:
            runs = list(self._open)
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for run in runs:
            try:
                run.close()
            except ValueError:  # running in another thread right now: it closes when it ends
                pass


def open_v3(source: Source | str | os.PathLike[str]) -> Media:
    """Open a V^3 stream: its folder, or the ``group_info.json`` in it (see the module doc)."""
    source = source_for(source)
    if source.local_path is not None and not source.local_path.exists():
        raise SourceNotFound("no such file or folder", path=source.label)
    layout = read_layout(source)
    probe = _check_headers(layout)
    fps = probe.pop("rate") or DEFAULT_FPS
    if not 0 < fps <= 1000:
        fps = DEFAULT_FPS
    frames = layout.groups[-1].end
    # A remote stream's fetches are timed (one level: nothing to choose, but the info panel
    # shows the throughput); its video sizes are not known until played.
    controller = AdaptiveController([("v3", 0.0)], fixed=0) if layout.remote else None
    decoder = _Decoder(layout, controller)
    duration = frames / fps
    file_bytes = layout.file_bytes
    info = {
        "frames": frames,
        "splats_min": int(layout.counts.min()),
        "splats_max": int(layout.counts.max()),
        "sh_degree": 0,
        "streams_per_group": STREAMS,
        **probe,
        "image_side": image_side(int(layout.counts.max())),
        "file_bytes": file_bytes,
        "bytes_per_frame": None if file_bytes is None else round(file_bytes / frames, 1),
        "stream_bytes": layout.stream_bytes,
        "bitrate": round(file_bytes * 8 / duration) if duration > 0 and file_bytes is not None else None,
        "streamed": layout.remote,
        "duration": duration,
        "min_max_keys": layout.keys,
        # V^3 trains in COLMAP axes, as INRIA PLY (gaussian-video.md section 1)
        "default_up": DEFAULT_UP["v3"],
    }
    media = grouped_media(groups=layout.groups, decode_group=decoder.group, fps=fps, format=FORMAT_NAME,
                          reader=READER_NAME, path=str(layout.folder), info=info, close=decoder.close)  # fmt: skip
    media.adaptive = controller  # type: ignore[attr-defined]
    return media


def read_group_images(folder: str | os.PathLike[str], group: int) -> Iterator[list[np.ndarray]]:
    """The raw decoded images of one group, frame by frame: 20 uint8 arrays (copies) per frame.
    For checks and tools; playback goes through :func:`open_v3`."""
    folder = Path(folder)
    containers: list[Any] = []
    runs: list[Iterator[Any]] = []
    try:
        for stream in range(STREAMS):
            path = folder / group_dir_name(group) / stream_name(stream)
            containers.append(_open_video(path))
            runs.append(_pictures(containers[-1], path))
        while True:
            pictures = [next(run, None) for run in runs]
            if any(p is None for p in pictures):
                return
            yield [read_planes(p, 1)[0].copy() for p in pictures]
    finally:
        for run in runs:
            run.close()
        for container in containers:
            container.close()


# Writing -----------------------------------------------------------------------------------------


def _encode_video(path: Path, images: list[np.ndarray], qp: int, rate: Fraction) -> None:
    """One video: ``images`` (uint8 [side, side]) in the luma of yuvj444p H.264 pictures,
    libx264 at constant ``qp`` with its defaults otherwise (what VideoGS's ffmpeg call does)."""
    height, width = images[0].shape
    time_base = 1 / rate
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(CODEC, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
        stream.options = {"qp": str(qp)}
        for index, image in enumerate(images):
            frame = make_frame([image], PIX_FMT)
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _frame_rate(fps: float) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not 0 < float(fps) <= 1000:
        raise InvalidArgument(f"fps must be a number in (0, 1000], got {fps!r:.40}")
    return Fraction(fps).limit_denominator(1001)


def _write_json(path: Path, data: Any) -> int:
    text = json.dumps(data, indent=4)  # VideoGS writes its tables with indent 4
    path.write_text(text, encoding="ascii")
    return len(text)


def write_v3(frames: Iterable[SplatCloud], out_dir: str | os.PathLike[str], *, group_size: int = 10, qp: int = 25,
             fps: float = 30, progress: Callable[[int, int | None], None] | None = None) -> dict:  # fmt: skip
    """Pack ``frames`` into a V^3 stream folder ``out_dir``, exactly as VideoGS lays it out
    (see the module doc), cut into groups of ``group_size`` frames (the last may be shorter).

    Every frame of a group must hold the same Gaussians in the same order (V^3 trains them
    so); their count is checked. SH bands above the DC term are dropped (one warning). The
    folder is written beside ``out_dir`` under a temporary name and renamed when complete, so
    a failure leaves nothing; an existing ``out_dir`` must be an empty folder. ``progress`` is
    called with (frames written, total or None). Returns a summary: bytes, frames, groups,
    splats, bytes per video index, seconds.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or not 1 <= group_size <= 10000:
        raise InvalidArgument(f"group_size must be an integer in 1..10000, got {group_size!r:.40}")
    if isinstance(qp, bool) or not isinstance(qp, int) or not 0 <= qp <= 51:
        raise InvalidArgument(f"qp must be an integer in 0..51, got {qp!r:.40}")
    rate = _frame_rate(fps)
    out = Path(out_dir)
    try:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise OutputError("already exists and is not an empty folder; remove it or name another", path=out)
    except OSError as exc:
        raise OutputError(f"cannot use this folder ({exc.strerror or exc})", path=out) from exc
    total = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:64]}.", suffix=".partial", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror or exc})", path=out) from exc
    try:
        summary = _write_groups(frames, tmp, out, group_size, qp, rate, total, progress)
        os.chmod(tmp, 0o777 & ~current_umask())
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, HoloscopeError):
            raise
        raise OutputError(f"cannot write ({exc.strerror or exc})", path=out) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["path"] = str(out)
    return summary


def _write_groups(frames: Iterable[SplatCloud], folder: Path, label: Path, group_size: int, qp: int, rate: Fraction,
                  total: int | None, progress: Callable[[int, int | None], None] | None) -> dict:  # fmt: skip
    """Quantise and encode into ``folder`` (the temporary one; ``label`` is what messages name)."""
    group_info: dict[str, dict] = {}
    viewer_min_max: dict[str, dict] = {}
    min_max: dict[str, Any] = {}
    stream_bytes = [0] * STREAMS
    pending: list[np.ndarray] = []  # the current group's images, [20, side, side] per frame
    group_count = 0
    warned = False
    index = -1
    splats: list[int] = []

    def flush() -> None:
        nonlocal group_count, pending
        group = group_count
        first = group * group_size
        last = first + len(pending) - 1
        group_info[str(group)] = {"frame_index": [first, last], "name_index": [first, last]}
        group_dir = folder / group_dir_name(group)
        group_dir.mkdir()
        for stream in range(STREAMS):
            path = group_dir / stream_name(stream)
            _encode_video(path, [images[stream] for images in pending], stream_qp(stream, qp), rate)
            stream_bytes[stream] += path.stat().st_size
        group_count += 1
        pending = []
        if progress is not None:
            progress(last + 1, total)

    for index, cloud in enumerate(frames):
        if isinstance(cloud, Frame):
            cloud = cloud.payload
        if not isinstance(cloud, SplatCloud):
            raise InvalidArgument(f"frame {index} is a {type(cloud).__name__}, not a SplatCloud")
        if cloud.count == 0:
            raise InvalidArgument(f"frame {index} holds no Gaussians")
        if cloud.count > MAX_SPLATS:
            raise InvalidArgument(f"frame {index} holds {cloud.count:,} Gaussians, more than {MAX_SPLATS:,}")
        if cloud.sh.shape[1] > 1 and not warned:
            log.warning("V^3 stores SH degree 0 only: the higher SH bands of frame %d on are dropped", index)
            warned = True
        if pending and cloud.count != splats[-1]:
            raise InvalidArgument(f"frame {index} holds {cloud.count:,} Gaussians but its group (group "
                                  f"{group_count}) started with {splats[-1]:,}: V^3 needs the same Gaussians, "
                                  f"in the same order, throughout a group")  # fmt: skip
        if not pending:
            side = image_side(cloud.count)
            budget.require(group_size * STREAMS * side * side + 20 * cloud.count * ATTRIBUTE_COUNT * 8,
                           what=f"a group of {group_size} frames of {cloud.count:,} Gaussians", path=label)  # fmt: skip
        try:
            images, table = quantize_frame(cloud)
        except InvalidArgument as exc:
            raise InvalidArgument(f"frame {index} {exc}") from None
        pending.append(images)
        splats.append(cloud.count)
        viewer_min_max[str(index)] = {"num": cloud.count, "info": table}
        min_max[f"{index}_num"] = cloud.count
        for attribute in range(ATTRIBUTE_COUNT):
            min_max[f"{index}_{attribute}_min"] = table[2 * attribute]
            min_max[f"{index}_{attribute}_max"] = table[2 * attribute + 1]
        if len(pending) == group_size:
            flush()
    if pending:
        flush()
    if index < 0:
        raise InvalidArgument("no frames to write")
    json_bytes = _write_json(folder / FULL_MIN_MAX_NAME, min_max)
    json_bytes += _write_json(folder / MIN_MAX_NAME, viewer_min_max)
    json_bytes += _write_json(folder / GROUP_INFO_NAME, group_info)
    video_bytes = sum(stream_bytes)
    return {
        "bytes": video_bytes + json_bytes,
        "video_bytes": video_bytes,
        "frames": index + 1,
        "groups": group_count,
        "splats_min": min(splats),
        "splats_max": max(splats),
        "bytes_per_frame": round((video_bytes + json_bytes) / (index + 1), 1),
        "stream_bytes": stream_bytes,
        "qp": qp,
        "fps": float(rate),
    }
