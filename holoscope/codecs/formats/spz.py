"""Niantic SPZ: reader for versions 1-4 and writer for versions 3 and 4 (splat-formats.md §3.2).

Layouts (all little-endian):

* **Legacy, versions 1-3**: one gzip stream (or, rarely, the same bytes not gzipped) holding a
  16-byte header ``"NGSP", u32 version, u32 count, u8 shDegree, u8 fractionalBits, u8 flags,
  u8 reserved``, optional extension records when ``flags & 0x2``, then the attribute arrays
  back to back: positions, alphas, colours, scales, rotations, SH.
* **Version 4**: not gzipped. A 32-byte header ``"NGSP", u32 4, u32 count, u8 shDegree,
  u8 fractionalBits, u8 flags, u8 numStreams, u32 tocByteOffset, 12 reserved bytes``; extension
  records in ``[32, tocByteOffset)``; a table of contents of ``numStreams`` x ``{u64 compressed,
  u64 uncompressed}``; then one zstd frame per attribute array, in the same order (5 streams for
  SH degree 0, 6 otherwise).

Attribute encodings (per splat):

========== ===================== ===============================================================
array      bytes                 decoded as
========== ===================== ===============================================================
positions  9 (v1: 6)             signed int24 / 2^fractionalBits (v1: float16)
alphas     1                     activated opacity a / 255 (the file stores sigmoid * 255)
colours    3                     f_dc = (c / 255 - 0.5) / 0.15 (0.15, not C0: room beyond [0,1])
scales     3                     log sigma = s / 16 - 10
rotations  3 (v1-2) / 4 (v3+)    v1-2: xyz = b / 127.5 - 1, w = sqrt(1 - |xyz|^2);
                                 v3+: "smallest three" packed in a u32 (below)
sh         3 x dim               (b - 128) / 128, coefficient-major, colour innermost;
                                 dim = 3 / 8 / 15 / 24 for degree 1 / 2 / 3 / 4
========== ===================== ===============================================================

Smallest three: bits 30-31 hold the index of the largest component in x, y, z, w order; the
other three are 10-bit fields (a sign bit over a 9-bit magnitude m, value m / 511 * sqrt(1/2))
read from the low bits upward and assigned to indices 3 -> 0, skipping the largest; the largest
is sqrt(1 - sum of the others' squares), positive.

Degree-4 SH data (24 coefficients) is read and its degree-4 band dropped: holoscope renders up
to degree 3. Extension records (Adobe's safe-orbit camera and the like) are skipped without
being parsed, except a v4 file's coordinate-system record (see *Orientation*): in legacy streams the arrays are taken as the last bytes of the stream, in v4 the
TOC offset says where they end. (One record type written by some older builds of Niantic's
library, Adobe's SH min/max quantisation, rescales SH; it is not applied, so such a file's SH
decode with the default (b - 128) / 128.)

Orientation
-----------
holoscope reads and writes SPZ **raw**: the cloud gets the axes the file stores, exactly as
splat-transform does and as Niantic's own library does with its default (unspecified)
coordinate system, which is also what its ``ply_to_spz`` tool writes (PLY axes, usually RDF,
y down). SPZ's README calls RUB (OpenGL, y up) the format's default, so files from tools that
convert to it when packing look upside down next to PLY scenes. ``flip=(1, -1, -1)`` converts
between the two (RUB <-> RDF, a 180° turn about x, so no mirroring) through
:func:`holoscope.core.splat_math.flip_axes`; the reader applies it after decoding and the writer
before encoding, so writing with ``flip=s`` and reading back with ``flip=s`` gives the cloud
back (up to quantisation), and the flip itself is exact. The viewer's up-axis toggle covers
the same case interactively.

The default up axis (``Media.info["default_up"]``) is +Y, as the specification's RUB says,
unless a version 4 file carries Niantic's ``SPZ_ADOBE_coordinate_system`` extension record
(type ``0xADBE0003``, one u32 of the ``CoordinateSystem`` enum, in ``[32, tocByteOffset)`` when
``flags & 0x2``): that records the frame the data is stored in, so a Y-up system gives +Y, a
Y-down one (RDF, PLY's) -Y and a Z-up one +Z (``info["coordinate_system"]`` names it). SPZ
made from a COLMAP PLY by tools that store raw (splat-transform, SuperSplat, ``ply_to_spz``)
holds RDF without saying so and opens upside down: choose -Y (remembered per file).

Safety: every count is checked before anything is allocated, against ``MAX_SPLATS`` and against
the most data the bytes present could hold. Each stream is held to its codec's own ceiling
(deflate's 1032:1, zstd's 32768:1: a constant array, every alpha 255 or every rotation the
identity, really does compress that far). The payload as a whole is held to a plausibility
bound: beyond ``PLAUSIBLE_FREE_BYTES`` it may be at most ``MAX_PLAUSIBLE_RATIO`` (64) times the
compressed bytes. Real scenes compress 1.5-3:1 (positions, scales, rotations and colours are
noisy measurements; with all-zero SH a file still stays near 10:1); to pass 64:1 nearly every
splat must repeat its neighbour in every attribute, which no captured or trained scene does, and
small files (a test scene of identical splats) are never held to it. Then, before anything is
inflated, :func:`_require_memory` asks the decode budget for the cloud's arrays plus the file
and the inflated bytes held alongside, so a plausible file too large for this machine is
refused up front, naming what it would need. Gzip is inflated in one pass that never yields more
than the header implies, so a decompression bomb stops there, and zlib checks the member's
CRC32 and length trailer itself (a stream cut short, even inside its trailer, or followed by
other data, is refused); a zstd frame that declares a different size than the header promises
is refused before it is inflated, one that inflates to any other size or is followed by other
bytes in its stream is refused, and zstd checks each frame's checksum. No loop runs over splats
in Python.

Speed
-----
A legacy stream is inflated a step of input at a time, and each run of ``DECODE_ROWS`` splats
of each array is decoded on worker threads as soon as its bytes are out, while the calling
thread inflates on (zlib, zstd and numpy's ufuncs release the GIL; when the threads fall behind,
the calling thread decodes runs it has just inflated, still in its cache, between steps). The
payload is never gathered into one buffer. Version 4's streams are independent: the threads
inflate and decode the small ones while the calling thread inflates the SH stream, whose
decoding is then shared out. Decoding writes straight into the cloud's float32 arrays: SH bytes
already have the cloud's [N, K, 3] layout (b ^ 0x80 read as int8, times 1/128), positions are
read as int32 through a 3-byte-stride view of the bytes, smallest-three fields go through a
1024-entry table. Every value decoded from bytes is finite and every quaternion unit by
construction (see ``_Decoder``), so there is no finiteness or normalisation pass over the
cloud. Files under ``PARALLEL_MIN_SPLATS`` splats are decoded on the calling thread alone, in
the same runs.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Self

import numpy as np

from holoscope.codecs.formats.common import (
    MAX_SPLATS,
    atomic_output,
    check_count,
    make_cloud,
    normalize_quats,
    read_source_bytes,
    require_nonempty,
    static_splat_media,
)
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.core.media import Media
from holoscope.core.splat_math import flip_axes
from holoscope.core.sources import Source, source_for

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.spz"
MAGIC = b"NGSP"
LEGACY_HEADER = struct.Struct("<4sIIBBBB")  # magic, version, count, shDegree, fractionalBits, flags, reserved
V4_HEADER = struct.Struct("<4sIIBBBBI12x")  # ..., flags, numStreams, tocByteOffset, reserved
TOC_ENTRY_BYTES = 16
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
EXTENSION_RECORD = struct.Struct("<II")  # type, byteLength; the payload follows
EXT_COORDINATE_SYSTEM = 0xADBE0003  # SPZ_ADOBE_coordinate_system: one u32, the storage frame
MAX_EXTENSION_RECORDS = 1024  # real files hold one or two
# Niantic's CoordinateSystem enum (src/cc/splat-types.h), by value: the letters give the
# directions of +x, +y, +z (Left/Right, Up/Down, Back/Front); 9-16 list +z's direction last.
COORDINATE_SYSTEMS = ("UNSPECIFIED", "LDB", "RDB", "LUB", "RUB", "LDF", "RDF", "LUF", "RUF",
                      "LFD", "RFD", "LFU", "RFU", "LBD", "RBD", "LBU", "RBU")  # fmt: skip
COLOR_SCALE = 0.15
SQRT1_2 = float(np.sqrt(0.5))
SH_DIM = (0, 3, 8, 15, 24)  # coefficients per channel beyond DC, for SH degree 0..4
MAX_KEPT_SH = 15  # degree 3
WRITABLE_VERSIONS = (3, 4)
DEFAULT_FRACTIONAL_BITS = 12  # ~0.24 mm, the reference writer's choice
INT24_MAX = (1 << 23) - 1
SH1_BITS, SH_REST_BITS = 5, 4  # the reference writer's SH quantisation
GZIP_LEVEL = 6  # zlib's default, as the reference writer uses
ZSTD_LEVEL = 12
PACK_ROWS = 1 << 16  # splats quantised at a time by the writer

# Upper bounds on what a compressed byte can expand to: deflate's longest match (258 bytes)
# costs at least 2 bits, and a zstd block (at most 128 KiB) costs at least 4 bytes.
MAX_DEFLATE_RATIO = 1032
MAX_ZSTD_RATIO = 32768
# Beyond this much payload, a file must hold at least 1/64 of it (see "Safety" above).
MAX_PLAUSIBLE_RATIO = 64
PLAUSIBLE_FREE_BYTES = 16 << 20
# Extension records of legacy streams sit between the header and the arrays, with no length
# in the header: allow this much for them (real records are a few dozen bytes).
LEGACY_EXTENSION_ALLOWANCE = 1 << 20


# Reading pipeline (see "Speed" in the module docstring).
PEEK_INPUT_BYTES = 1 << 12  # gzip input inflated to find the SPZ header (grown if it takes more)
INFLATE_INPUT_BYTES = 1 << 20  # gzip input inflated per step (~2.5 MB of splat data)
DECODE_ROWS = 1 << 15  # splats per decode job
PARALLEL_MIN_SPLATS = 1 << 16  # below this, everything runs on the calling thread
MAX_THREADS = 8  # decode threads besides the calling one, at most
MAX_WAIT = 0.02  # seconds a job may wait for a thread before the calling thread runs jobs too

# Peak memory of a read, for the decode budget: the cloud's arrays times PEAK_FACTOR, plus the
# file and the inflated bytes that may be held beside them (see _read_legacy and _read_v4), plus
# RUN_SCRATCH bytes a row for the run each decoding thread works on (version 1-2 rotations are
# normalised in float64, ~110 bytes a row; a run straddling two inflated pieces is joined, up to
# 72 more). Measured with tracemalloc on 1M-splat files of every container and version, SH 0, 3
# and 4, the peak less those terms is at most 0.96 x the cloud; version 1 goes through
# make_cloud (float64 quaternions, a copy when splats are dropped): at most 2.29 x.
PEAK_FACTOR = 1.15
PEAK_FACTOR_V1 = 3.0
RUN_SCRATCH = 256


def _layout(version: int, sh_degree: int) -> list[tuple[str, int]]:
    """(array name, bytes per splat) in file order."""
    arrays = [
        ("positions", 6 if version == 1 else 9),
        ("alphas", 1),
        ("colors", 3),
        ("scales", 3),
        ("rotations", 3 if version < 3 else 4),
    ]
    if sh_degree > 0:
        arrays.append(("sh", SH_DIM[sh_degree] * 3))
    return arrays


def _check_sh_degree(sh_degree: int, path: Path) -> None:
    if sh_degree >= len(SH_DIM):
        raise CorruptStream(f"SH degree {sh_degree} in the header is not 0-4", path=path)


# Reading ----------------------------------------------------------------------------------


def read_spz(path: Source | str | Path | bytes, *, flip: tuple[int, int, int] | None = None) -> SplatCloud:
    """Read an SPZ file (versions 1-4, gzipped or raw) into an activated :class:`SplatCloud`.

    The cloud is in the axes the file stores (see the module docstring, *Orientation*);
    ``flip`` = (+-1, +-1, +-1) mirrors axes after decoding, e.g. ``(1, -1, -1)`` for a file
    written in RUB (y up) to be shown in holoscope's RDF-like PLY convention.
    ``metadata['format_info']`` holds ``spz_version``, ``fractional_bits``, ``antialiased`` and
    the file's ``sh_degree`` (the cloud keeps at most degree 3).
    """
    source = source_for(path)
    path = source.label
    data = read_source_bytes(source)
    try:
        if data[:4] == MAGIC:
            if len(data) >= 8 and int.from_bytes(data[4:8], "little") >= 4:
                cloud = _read_v4(data, path)
            else:
                cloud = _read_legacy(data, path, gzipped=False)
        elif data[:2] == b"\x1f\x8b":
            cloud = _read_legacy(data, path, gzipped=True)
        elif not data:
            raise CorruptStream("file is empty", path=path)
        else:
            raise CorruptStream("not an SPZ file: neither the NGSP magic nor a gzip stream", path=path)
    except BudgetExceeded:
        raise
    except MemoryError as exc:  # the estimate fell short of what this process can get
        raise BudgetExceeded("ran out of memory while decoding", path=path) from exc
    dropped = cloud.metadata["dropped_nonfinite"]
    if dropped:
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, cloud.count + dropped)
    if flip is not None:
        cloud = flip_axes(cloud, flip)
    return cloud


def _peek_gzip_header(data: bytes, path: Path) -> bytes:
    """The first bytes of the gzip member's payload, inflating no more input than it takes (a
    growing prefix: the gzip header before them may carry a file name or comment of any length)."""
    view = memoryview(data)
    prefix = PEEK_INPUT_BYTES
    while True:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(view[:prefix], LEGACY_HEADER.size)
        except zlib.error as exc:
            raise CorruptStream(f"damaged gzip stream ({exc})", path=path) from exc
        if len(head) >= LEGACY_HEADER.size or prefix >= len(data):
            return head
        prefix *= 16


def _read_legacy(data: bytes, path: Path, *, gzipped: bool) -> SplatCloud:
    head = _peek_gzip_header(data, path) if gzipped else data[: LEGACY_HEADER.size]
    if len(head) < LEGACY_HEADER.size:
        raise CorruptStream("truncated SPZ header", path=path)
    magic, version, count, sh_degree, frac_bits, flags, _ = LEGACY_HEADER.unpack(head)
    if magic != MAGIC:
        raise CorruptStream("not an SPZ stream: no NGSP magic after gunzip", path=path)
    if version not in (1, 2, 3):
        raise CorruptStream(f"unsupported SPZ version {version} in a legacy stream (1-3 expected)", path=path)
    _check_sh_degree(sh_degree, path)
    layout = _layout(version, sh_degree)
    per_splat = sum(size for _, size in layout)
    has_extensions = bool(flags & FLAG_EXTENSIONS)
    if gzipped:
        count = check_count(count, path=path)
        _check_inflatable(count * per_splat, len(data), MAX_DEFLATE_RATIO, "gzip", path)
        _check_plausible(count * per_splat, len(data), path)
    else:
        count = check_count(count, path=path, available=len(data) - LEGACY_HEADER.size, bytes_each=per_splat)
    require_nonempty(count, path)
    needed = LEGACY_HEADER.size + count * per_splat
    limit = needed + (LEGACY_EXTENSION_ALLOWANCE if has_extensions else 0)
    if not gzipped and len(data) > limit:
        raise CorruptStream(f"{len(data) - needed:,} bytes beyond what the header describes", path=path)
    # Inflated bytes held beside the cloud: none for a raw stream (the file is the payload), the
    # payload when it is decoded as it comes (runs may queue), twice it when it is joined.
    inflated = 0 if not gzipped else count * per_splat * (2 if has_extensions else 1)
    _require_memory(count, version, sh_degree, len(data) + inflated, path)
    decoder = _Decoder(count, version, sh_degree, frac_bits)
    names = [name for name, _ in layout]
    with _Jobs(_thread_count(count)) as jobs:
        payload: bytes | None = None  # the whole payload, where it is not decoded as it comes
        if not gzipped:
            payload, produced, complete = data, len(data), True
        elif not has_extensions:  # the arrays follow the header: decode each run as it is inflated
            splitter = _Splitter(decoder, jobs, names, skip=LEGACY_HEADER.size)
            produced, complete = _inflate_gzip(data, limit, path, splitter.add)
        else:  # the records' length is known only at the end: decode then
            pieces: list[bytes] = []
            produced, complete = _inflate_gzip(data, limit, path, pieces.append)
            payload = b"".join(pieces)
        if produced < needed:
            raise CorruptStream(
                f"header promises {count:,} splats ({needed:,} bytes) but the stream holds {produced:,} bytes: "
                "truncated",
                path=path,
            )
        if not complete:
            raise CorruptStream("truncated gzip stream: its CRC32 and length trailer is missing or cut", path=path)
        if payload is not None:
            # Extension records (if any) sit between the header and the arrays: the arrays end the stream.
            _Splitter(decoder, jobs, names, skip=produced - count * per_splat).add(payload)
        jobs.finish()
    info = {"spz_version": version, "fractional_bits": frac_bits, "antialiased": bool(flags & FLAG_ANTIALIASED),
            "sh_degree": sh_degree}  # fmt: skip
    return decoder.cloud(path, info)


def _inflate_gzip(data: bytes, limit: int, path: Path, add: Callable[[bytes], None]) -> tuple[int, bool]:
    """Inflate the gzip member ``data`` a step of input at a time, handing each piece of output
    to ``add``; return (bytes inflated, whether the member ended there with nothing after it).

    One pass, bounded: zlib never returns more than ``limit`` + 1 bytes in all, so a
    decompression bomb stops at the limit. zlib checks the member's CRC32 and length trailer
    itself when it reaches the end (a mismatch raises), so a member that ends is intact; one cut
    short (even inside its 8-byte trailer) does not end, and the caller reports it.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    view = memoryview(data)
    produced = 0
    for start in range(0, len(data), INFLATE_INPUT_BYTES):
        try:
            piece = inflater.decompress(view[start : start + INFLATE_INPUT_BYTES], limit + 1 - produced)
        except zlib.error as exc:
            raise CorruptStream(f"damaged gzip stream ({exc})", path=path) from exc
        produced += len(piece)
        if produced > limit:
            raise CorruptStream(f"gzip stream inflates beyond the {limit:,} bytes its header allows", path=path)
        if piece:
            add(piece)
        if inflater.eof:
            if inflater.unused_data or start + INFLATE_INPUT_BYTES < len(data):
                raise CorruptStream("data after the end of the gzip stream", path=path)
            return produced, True
    return produced, False


def _read_v4(data: bytes, path: Path) -> SplatCloud:
    if len(data) < V4_HEADER.size:
        raise CorruptStream("truncated SPZ v4 header", path=path)
    _, version, count, sh_degree, frac_bits, flags, n_streams, toc_offset = V4_HEADER.unpack_from(data)
    if version != 4:
        raise CorruptStream(f"unsupported SPZ version {version} (holoscope reads 1-4)", path=path)
    _check_sh_degree(sh_degree, path)
    layout = _layout(4, sh_degree)
    if n_streams != len(layout):
        raise CorruptStream(
            f"header declares {n_streams} streams; SH degree {sh_degree} needs {len(layout)}", path=path
        )
    if toc_offset < V4_HEADER.size:
        raise CorruptStream(f"table of contents at byte {toc_offset}, inside the 32-byte header", path=path)
    toc_end = toc_offset + n_streams * TOC_ENTRY_BYTES
    if toc_end > len(data):
        raise CorruptStream("the table of contents lies beyond the end of the file: truncated", path=path)
    toc = [struct.unpack_from("<QQ", data, toc_offset + i * TOC_ENTRY_BYTES) for i in range(n_streams)]
    stream_bytes = len(data) - toc_end
    per_splat = sum(size for _, size in layout)
    count = check_count(count, path=path)
    _check_inflatable(count * per_splat, stream_bytes, MAX_ZSTD_RATIO, "zstd", path)
    require_nonempty(count, path)
    compressed_bytes = sum(compressed for compressed, _ in toc)
    if compressed_bytes > stream_bytes:
        raise CorruptStream(
            f"the table of contents lists {compressed_bytes:,} compressed bytes but only "
            f"{stream_bytes:,} follow it: truncated",
            path=path,
        )
    # The frames, not whatever follows them: padding cannot make a bomb look plausible.
    _check_plausible(count * per_splat, compressed_bytes, path)
    # Every stream is checked before anything is inflated or allocated.
    frames: dict[str, memoryview] = {}
    offset = toc_end
    view = memoryview(data)  # frames are handed to zstd without copying them out
    for (name, size), (compressed, uncompressed) in zip(layout, toc, strict=True):
        expected = count * size
        if uncompressed != expected:
            raise CorruptStream(
                f"{name} stream is {uncompressed:,} bytes in the table of contents, but {count:,} splats "
                f"x {size} bytes = {expected:,}",
                path=path,
            )
        _check_inflatable(expected, compressed, MAX_ZSTD_RATIO, f"zstd {name}", path)
        frame = view[offset : offset + compressed]
        offset += compressed
        _check_zstd_frame(frame, expected, name, path)
        frames[name] = frame
    # Every stream may be inflated at once (the threads inflate theirs while this one inflates SH).
    _require_memory(count, 4, sh_degree, len(data) + count * per_splat, path)
    decoder = _Decoder(count, 4, sh_degree, frac_bits)

    def inflate(name: str) -> bytes:
        return _inflate_zstd(frames[name], count * decoder.sizes[name], name, path)

    def inflate_and_decode(name: str) -> None:
        _Splitter(decoder, _Jobs(0), [name]).add(inflate(name))

    # The streams are independent and zstd releases the GIL: the largest (SH, unless there is
    # none) is inflated here while the threads inflate and decode the others, largest first;
    # then its decoding is shared out. Colours go with SH (see _Decoder), so they are inflated
    # here too, first. (Inflating SH a piece at a time to decode it meanwhile was tried: zstd
    # then competes with the decoding for memory and is no faster overall.)
    own = ["colors", "sh"] if "sh" in frames else ["positions"]
    with _Jobs(_thread_count(count)) as jobs:
        for name in sorted(frames.keys() - own, key=decoder.sizes.get, reverse=True):
            jobs.submit(inflate_and_decode, name)
        splitter = _Splitter(decoder, jobs, own)
        for name in own:
            splitter.add(inflate(name))
        jobs.finish()
    info = {"spz_version": 4, "fractional_bits": frac_bits, "antialiased": bool(flags & FLAG_ANTIALIASED),
            "sh_degree": sh_degree}  # fmt: skip
    if flags & FLAG_EXTENSIONS:
        system = _coordinate_system(data, V4_HEADER.size, toc_offset)
        if system is not None:
            info["coordinate_system"] = COORDINATE_SYSTEMS[system]
    return decoder.cloud(path, info)


def _coordinate_system(data: bytes, start: int, end: int) -> int | None:
    """The value of the first valid ``SPZ_ADOBE_coordinate_system`` record among the extension
    records ``[u32 type][u32 byteLength][payload]`` in ``data[start:end]``, else None.

    Like Niantic's reader: a record whose length runs past the zone ends the scan, unknown types
    are skipped, and a coordinate-system record whose payload is short or whose value is not a
    defined system (0-16) is ignored. Nothing here can fail the read: the records only inform.
    At most ``MAX_EXTENSION_RECORDS`` are looked at (a forged zone of empty records is cheap).
    """
    end = min(end, len(data))
    offset = start
    for _ in range(MAX_EXTENSION_RECORDS):
        if offset + EXTENSION_RECORD.size > end:
            return None
        kind, length = EXTENSION_RECORD.unpack_from(data, offset)
        offset += EXTENSION_RECORD.size
        if length > end - offset:
            return None
        if kind == EXT_COORDINATE_SYSTEM and length >= 4:
            value = int.from_bytes(data[offset : offset + 4], "little")
            if value < len(COORDINATE_SYSTEMS):
                return value
        offset += length
    return None


def up_for_coordinate_system(name: str | None) -> str | None:
    """holoscope's up axis for an SPZ coordinate system name ("RUB", "RDF", ...), or None when
    there is none (no name, or a Z-down system, which no holoscope up axis shows upright).

    Y-up systems (xUx) -> "+y", Y-down (xDx) -> "-y", Z-up (xxU) -> "+z"; UNSPECIFIED in the
    record is RUB, as Niantic's library resolves it.
    """
    if name is None or name not in COORDINATE_SYSTEMS:
        return None
    if name == "UNSPECIFIED":
        return "+y"
    if name[1] in "UD":
        return "+y" if name[1] == "U" else "-y"
    return "+z" if name[2] == "U" else None


def _require_memory(count: int, version: int, sh_degree: int, held: int, path: Path) -> None:
    """Ask the decode budget for a read of ``count`` splats before anything is inflated or
    allocated for them: the cloud (SH kept up to degree 3) and the reader's temporaries, plus
    ``held`` bytes alongside it (the file, inflated streams) and each thread's run scratch."""
    scratch = (_thread_count(count) + 1) * min(count, DECODE_ROWS) * RUN_SCRATCH
    factor = PEAK_FACTOR_V1 if version == 1 else PEAK_FACTOR
    budget.require_splats(count, min(sh_degree, 3), path=path, peak_factor=factor, extra=held + scratch)


def _check_inflatable(needed: int, compressed: int, ratio: int, what: str, path: Path) -> None:
    """Refuse a header whose arrays could not fit in the compressed bytes present, before
    anything is allocated for them."""
    if needed > compressed * ratio:
        raise CorruptStream(
            f"the header promises {needed:,} bytes of splat data, more than {compressed:,} bytes of {what} "
            f"can hold (at most {ratio}:1): truncated or damaged",
            path=path,
        )


def _check_plausible(needed: int, compressed: int, path: Path) -> None:
    """Refuse a payload no real scene compresses to (see "Safety" in the module docstring)."""
    if needed > PLAUSIBLE_FREE_BYTES and needed > compressed * MAX_PLAUSIBLE_RATIO:
        raise CorruptStream(
            f"the header promises {needed:,} bytes of splat data from {compressed:,} compressed bytes "
            f"({needed / max(compressed, 1):,.0f}:1); real SPZ files compress under {MAX_PLAUSIBLE_RATIO}:1: "
            "damaged or a decompression bomb",
            path=path,
        )


def _check_zstd_frame(frame: memoryview, expected: int, name: str, path: Path) -> None:
    import zstandard

    # A frame that declares its size is inflated into a buffer of that size whatever limit is
    # asked for, so a forged size is refused here, before any allocation.
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise CorruptStream(f"{name} stream is not a zstd frame ({exc})", path=path) from exc
    if declared != -1 and declared != expected:
        raise CorruptStream(f"{name} stream declares {declared:,} bytes, expected {expected:,}", path=path)


def _inflate_zstd(frame: memoryview, expected: int, name: str, path: Path) -> bytes:
    """Inflate one zstd frame (checked by :func:`_check_zstd_frame`) in one bounded call: it
    must come to exactly ``expected`` bytes and fill ``frame``. zstd checks that the frame is
    complete and its checksum, if it has one."""
    import zstandard

    try:
        out = zstandard.ZstdDecompressor().decompress(frame, max_output_size=expected + 1, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise CorruptStream(f"damaged zstd {name} stream ({exc})", path=path) from exc
    if len(out) != expected:
        raise CorruptStream(f"{name} stream inflates to {len(out):,} bytes, expected {expected:,}", path=path)
    return out


# Decoding ---------------------------------------------------------------------------------


def _thread_count(count: int) -> int:
    """Worker threads for decoding ``count`` splats besides the calling thread (which inflates):
    none for small files, where starting threads costs more than it saves."""
    if count < PARALLEL_MIN_SPLATS:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus - 1, MAX_THREADS))


class _Jobs:
    """Decode jobs run on a few threads while the calling thread inflates: zlib, zstd and numpy's
    ufuncs release the GIL, so they really run side by side. The threads take the oldest jobs;
    when they fall behind (a job has waited more than ``MAX_WAIT`` seconds), the calling thread
    runs the newest itself between inflate steps. With no threads, a job runs when it is
    submitted. Jobs write disjoint parts of the output arrays and share nothing else, so which
    thread runs one changes nothing in the result."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="holoscope-spz") if threads else None
        # (future, fn, args, when submitted), oldest first; those not started yet are the newest.
        self._queue: deque[tuple[Future, Callable[..., None], tuple, float]] = deque()

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        if self._pool is None:
            fn(*args)
            return
        self._queue.append((self._pool.submit(fn, *args), fn, args, time.monotonic()))
        self._settle(MAX_WAIT)

    def finish(self) -> None:
        """Wait for every job (running here those not started yet), raising the first error."""
        self._settle(-1.0)
        while self._queue:
            self._queue.popleft()[0].result()

    def _settle(self, max_wait: float) -> None:
        """Collect finished jobs (raising the first error); then, while the oldest job no thread
        has started has waited more than ``max_wait`` seconds, run the newest here."""
        while self._queue and self._queue[0][0].done():
            self._queue.popleft()[0].result()
        while True:
            waiting = 0
            for future, _, _, _ in reversed(self._queue):
                if future.running() or future.done():
                    break
                waiting += 1
            if not waiting or time.monotonic() - self._queue[-waiting][3] <= max_wait:
                return
            job = self._queue.pop()
            if not job[0].cancel():  # a thread has just taken it
                self._queue.append(job)
                return
            job[1](*job[2])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:  # on an error, drop the jobs not started and wait for the rest
            self._pool.shutdown(wait=True, cancel_futures=True)


class _Decoder:
    """Decodes the packed arrays into the output arrays, any run of splats at a time, so that
    decoding can start on the splats already inflated, on several threads.

    Every value decodes from a byte or a fixed-point integer and is finite by construction
    (int24 / 2^frac, exp(b / 16 - 10) <= exp(5.94), b / 255, table lookups), so the cloud is
    built directly, without :func:`make_cloud`'s finiteness pass; only version 1's half-float
    positions can be NaN or infinite, and those clouds do go through :func:`make_cloud`, which
    drops such splats. Version 3+ quaternions come out unit by construction (see
    :func:`_smallest_three`), so they skip the float64 normalisation too; version 1-2 ones are
    normalised.
    """

    def __init__(self, n: int, version: int, sh_degree: int, frac_bits: int) -> None:
        self.n, self.version, self.sh_degree, self.frac_bits = n, version, sh_degree, frac_bits
        self.sizes = dict(_layout(version, sh_degree))
        self.sh_kept = min(SH_DIM[sh_degree], MAX_KEPT_SH)
        self.means = np.empty((n, 3), np.float32)
        self.scales = np.empty((n, 3), np.float32)
        self.quats = np.empty((n, 4), np.float32)
        self.opacities = np.empty(n, np.float32)
        self.sh = np.empty((n, 1 + self.sh_kept, 3), np.float32)
        # int24 / 2^frac, computed as (int24 << 8) / 2^(frac + 8) from an int32 read straight out
        # of the bytes: exact in float32 (an int24 fits its mantissa, the scale is a power of
        # two), unless the product could fall below float32's normal range, where float64
        # arithmetic then a single rounding gives the same, correctly rounded, value.
        self._pos_scale = 2.0 ** -(frac_bits + 8)
        self._pos_dtype = np.float32 if frac_bits + 8 <= 126 else np.float64
        # Colours fill sh[:, 0], which shares cache lines with the rest of each row of sh: two
        # threads writing the same lines slow each other down several times over, so with SH
        # the colours of a run of rows are decoded by the job that decodes its SH, from
        # ``colors_raw`` (set by the _Splitter, which meets the colours before the SH).
        self.colors_with_sh = "sh" in self.sizes
        self.colors_raw = np.empty(0, np.uint8)
        self._decoders: dict[str, Callable[[np.ndarray, int, int], None]] = {
            "positions": self._positions, "alphas": self._alphas, "colors": self._colors,
            "scales": self._scales, "rotations": self._rotations, "sh": self._sh,
        }  # fmt: skip

    def decode(self, name: str, parts: list[memoryview], lo: int, hi: int) -> None:
        """Decode rows [lo, hi) of array ``name`` from its bytes, given in one or more parts."""
        raw = parts[0] if len(parts) == 1 else b"".join(parts)
        self._decoders[name](np.frombuffer(raw, np.uint8), lo, hi)

    def cloud(self, path: Path, info: dict) -> SplatCloud:
        if self.version == 1:  # half floats can be NaN or infinite: make_cloud drops those splats
            return make_cloud(self.means, self.scales, self.quats, self.opacities, self.sh, path=path,
                              format_info=info)  # fmt: skip
        cloud = SplatCloud(means=self.means, scales=self.scales, quats=self.quats, opacities=self.opacities,
                           sh=self.sh)  # fmt: skip
        cloud.metadata.update({"dropped_nonfinite": 0, "format_info": info})
        return cloud

    # One method per array: the bytes of rows [lo, hi) -> the output rows [lo, hi).

    def _positions(self, raw: np.ndarray, lo: int, hi: int) -> None:
        out = self.means[lo:hi].reshape(-1)
        if self.version == 1:
            out[:] = raw.view("<f2")
            return
        # Each little-endian int24 is read as an int32 together with the byte after it (a view
        # of the bytes with a 3-byte stride, no copy); shifted left by 8, that is the int24
        # times 256, sign included. The last one has no byte after it in the run: read alone.
        words = np.ndarray((len(out) - 1,), "<i4", buffer=raw, strides=(3,))
        np.multiply(np.left_shift(words, 8), self._pos_scale, out=out[:-1], dtype=self._pos_dtype)
        out[-1] = int.from_bytes(raw[-3:].tobytes(), "little", signed=True) * 2.0**-self.frac_bits

    def _alphas(self, raw: np.ndarray, lo: int, hi: int) -> None:
        np.multiply(raw, np.float32(1 / 255), out=self.opacities[lo:hi], dtype=np.float32)

    def _colors(self, raw: np.ndarray, lo: int, hi: int) -> None:
        dc = self.sh[lo:hi, 0]
        np.multiply(raw.reshape(-1, 3), np.float32(1 / 255), out=dc, dtype=np.float32)
        dc -= np.float32(0.5)
        dc /= np.float32(COLOR_SCALE)

    def _scales(self, raw: np.ndarray, lo: int, hi: int) -> None:
        out = self.scales[lo:hi]
        np.multiply(raw.reshape(-1, 3), np.float32(1 / 16), out=out, dtype=np.float32)
        out -= np.float32(10)
        np.exp(out, out=out)

    def _sh(self, raw: np.ndarray, lo: int, hi: int) -> None:
        self._colors(self.colors_raw[lo * 3 : hi * 3], lo, hi)
        # b ^ 0x80 read as int8 is b - 128; times 1/128 is exact in float32. SPZ stores SH
        # coefficient-major, colour innermost, like the cloud: no transpose, one float pass.
        centred = np.bitwise_xor(raw, np.uint8(0x80)).view(np.int8)
        coeffs = centred.reshape(hi - lo, SH_DIM[self.sh_degree], 3)[:, : self.sh_kept]
        np.multiply(coeffs, np.float32(1 / 128), out=self.sh[lo:hi, 1:], dtype=np.float32)

    def _rotations(self, raw: np.ndarray, lo: int, hi: int) -> None:
        if self.version < 3:
            self.quats[lo:hi] = normalize_quats(_first_three(raw.reshape(-1, 3)))
        else:
            _smallest_three(raw.view("<u4"), self.quats[lo:hi])


class _Splitter:
    """Cuts a byte stream holding some of the arrays back to back (after ``skip`` bytes), arriving
    in pieces of any length, into runs of ``DECODE_ROWS`` whole rows (fewer at an array's end)
    and hands each run to ``jobs`` as soon as it is complete. Runs are decoded from the pieces
    in place; only a run that straddles two pieces is joined (in its job). The payload is never
    gathered into one big buffer: that would cost a copy and as much fresh memory again.
    """

    def __init__(self, decoder: _Decoder, jobs: _Jobs, names: list[str], skip: int = 0) -> None:
        self._decoder, self._jobs = decoder, jobs
        self._arrays = iter(names)
        self._skip = skip
        self._parts: list[memoryview] = []  # bytes of the current array not handed out yet
        self._parts_bytes = 0
        self._next_array()

    def _next_array(self) -> None:
        self._name = next(self._arrays, None)
        if self._name is not None:
            self._size = self._decoder.sizes[self._name]
            self._left = self._decoder.n * self._size  # bytes of it still to come
            self._row = 0  # rows handed out so far

    def add(self, piece: bytes | memoryview) -> None:
        view = memoryview(piece)[self._skip :]
        self._skip -= len(piece) - len(view)
        while len(view) and self._name is not None:
            part, view = view[: self._left], view[self._left :]
            self._parts.append(part)
            self._parts_bytes += len(part)
            self._left -= len(part)
            if self._left:
                self._hand_out(final=False)
                continue
            if self._name == "colors" and self._decoder.colors_with_sh:
                self._decoder.colors_raw = np.frombuffer(b"".join(self._parts), np.uint8)
                self._parts, self._parts_bytes = [], 0
            else:
                self._hand_out(final=True)
            self._next_array()

    def _hand_out(self, *, final: bool) -> None:
        if self._name == "colors" and self._decoder.colors_with_sh:
            return
        while True:
            rows = min(self._parts_bytes // self._size, DECODE_ROWS)
            if not rows or (rows < DECODE_ROWS and not final):
                return
            need = rows * self._size
            run: list[memoryview] = []
            while need:
                part = self._parts[0]
                if len(part) <= need:
                    run.append(self._parts.pop(0))
                    need -= len(part)
                else:
                    run.append(part[:need])
                    self._parts[0] = part[need:]
                    need = 0
            self._parts_bytes -= rows * self._size
            self._jobs.submit(self._decoder.decode, self._name, run, self._row, self._row + rows)
            self._row += rows


def _first_three(packed: np.ndarray) -> np.ndarray:
    """Versions 1-2: xyz = b / 127.5 - 1, w = sqrt(1 - |xyz|^2) >= 0 -> [N, 4] w-first."""
    xyz = packed.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1)
    w = np.sqrt(np.maximum(np.float32(0), 1 - np.einsum("ij,ij->i", xyz, xyz)))
    return np.concatenate([w[:, None], xyz], axis=1)


# A smallest-three 10-bit field (sign bit over a 9-bit magnitude) -> its value.
_FIELD_VALUES = np.arange(512, dtype=np.float32) * np.float32(SQRT1_2 / 511)
_FIELD_VALUES = np.concatenate([_FIELD_VALUES, -_FIELD_VALUES])


def _smallest_three(comp: np.ndarray, out: np.ndarray) -> None:
    """Version 3+: u32 smallest-three -> ``out`` [N, 4], w first, unit length.

    Field k (from the low bits) goes to the k-th index from 3 down that is not the largest's;
    the largest is sqrt(1 - the others' squares). That is unit length to float32 rounding
    whenever the three squares sum to at most 1, which they always do for a real quaternion
    (at most 3/4: the largest component's square is at least 1/4); damaged or random bytes may
    exceed it, and only then are the three rescaled to unit length (the largest being 0).
    """
    largest = (comp >> 30).astype(np.uint8)
    f0, f1, f2 = (np.take(_FIELD_VALUES, (comp >> shift) & 0x3FF) for shift in (0, 10, 20))
    squares = f0 * f0
    squares += f1 * f1
    squares += f2 * f2
    biggest = np.subtract(np.float32(1), squares)
    np.maximum(biggest, np.float32(0), out=biggest)
    np.sqrt(biggest, out=biggest)
    over = squares > 1
    if over.any():
        norm = np.sqrt(squares[over])
        for f in (f0, f1, f2):
            f[over] /= norm
    # Per largest index (x, y, z, w = 0..3), (x, y, z, w) are: 0 -> (big, f2, f1, f0),
    # 1 -> (f2, big, f1, f0), 2 -> (f2, f1, big, f0), 3 -> (f2, f1, f0, big).
    is_x, is_w = largest == 0, largest == 3
    out[:, 0] = np.where(is_w, biggest, f0)
    out[:, 1] = np.where(is_x, biggest, f2)
    out[:, 2] = np.where(is_x, f2, np.where(largest == 1, biggest, f1))
    out[:, 3] = np.where(is_w, f0, np.where(largest == 2, biggest, f1))


def open_spz(source: Source) -> Media:
    """Open an SPZ file as one-frame Media, in the file's own axes (no flip). Its default up
    axis follows the v4 coordinate-system extension when the file has one, else the format's
    (RUB, +Y up: see *Orientation*)."""
    cloud = read_spz(source)
    up = up_for_coordinate_system(cloud.metadata.get("format_info", {}).get("coordinate_system"))
    return static_splat_media(cloud, source=source, fmt="spz", reader=READER_NAME, default_up=up)


# Writing ----------------------------------------------------------------------------------


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (C's ``std::round``, as the reference writer)."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round(x), 0, 255).astype(np.uint8)


def fractional_bits_for(means: np.ndarray) -> int:
    """12 fractional bits (~0.24 mm) when every position fits int24 with them, as the reference
    writer uses; otherwise the most bits that still fit (stored in the header, which every
    reader honours). Positions beyond +-8,388,607 units cannot be stored at all."""
    extent = float(np.max(np.abs(means))) if len(means) else 0.0
    for bits in range(DEFAULT_FRACTIONAL_BITS, -1, -1):
        if _round(np.float64(extent) * 2.0**bits) <= INT24_MAX:
            return bits
    raise InvalidArgument(
        f"positions reach {extent:g} units from the origin; SPZ stores at most +-{INT24_MAX:,} "
        "(24-bit fixed point): recentre or rescale the scene first"
    )


def pack_arrays(cloud: SplatCloud, frac_bits: int) -> list[tuple[str, bytes]]:
    """The attribute arrays of ``cloud`` in file order (v3+ encodings: smallest-three rotations),
    quantised like the reference writer, ``PACK_ROWS`` splats at a time (the float64 work of a
    whole SH-3 cloud would take over 1 KB a splat)."""
    n = cloud.count
    packed = {name: np.empty(n * size, np.uint8) for name, size in _layout(3, cloud.sh_degree)}
    for lo in range(0, n, PACK_ROWS):
        hi = min(lo + PACK_ROWS, n)
        for name, rows in _pack_rows(cloud, slice(lo, hi), frac_bits).items():
            size = len(packed[name]) // n
            packed[name][lo * size : hi * size] = rows.reshape(-1)
    return [(name, packed.pop(name).tobytes()) for name in list(packed)]


def _pack_rows(cloud: SplatCloud, rows: slice, frac_bits: int) -> dict[str, np.ndarray]:
    """Splats ``rows`` of each array, as uint8 arrays of their bytes."""
    fixed = _round(cloud.means[rows].astype(np.float64) * 2.0**frac_bits).astype("<i4")
    out = {
        "positions": fixed.view(np.uint8).reshape(-1, 4)[:, :3],
        "alphas": _to_u8(cloud.opacities[rows].astype(np.float64) * 255),
        "colors": _to_u8(cloud.sh[rows, 0].astype(np.float64) * (COLOR_SCALE * 255) + 127.5),
    }
    with np.errstate(divide="ignore"):
        log_scales = np.log(np.maximum(cloud.scales[rows].astype(np.float64), 1e-30))
    out["scales"] = _to_u8((log_scales + 10) * 16)
    out["rotations"] = _pack_smallest_three(cloud.quats[rows]).view(np.uint8)
    if cloud.sh_degree > 0:
        out["sh"] = _pack_sh(cloud.sh[rows, 1:])
    return out


def _pack_smallest_three(quats: np.ndarray) -> np.ndarray:
    q = normalize_quats(quats).astype(np.float64)[:, [1, 2, 3, 0]]  # x, y, z, w
    n = len(q)
    largest = np.argmax(np.abs(q), axis=1)
    # q and -q are the same rotation: make the largest component positive (its sign is not stored).
    q *= np.where(q[np.arange(n), largest] < 0, -1.0, 1.0)[:, None]
    comp = largest.astype(np.uint32)
    for i in range(4):  # the four components, lowest index in the highest field
        magnitude = np.minimum(np.floor(511 * np.abs(q[:, i]) / SQRT1_2 + 0.5), 511).astype(np.uint32)
        field = ((q[:, i] < 0).astype(np.uint32) << 9) | magnitude
        comp = np.where(largest != i, (comp << 10) | field, comp)
    return comp.astype("<u4")


def _pack_sh(rest: np.ndarray) -> np.ndarray:
    """[N, K, 3] SH beyond DC -> uint8 (coefficient-major, colour innermost), 5 bits for the
    degree-1 band and 4 bits for higher ones, rounded to the centre of the kept bucket."""
    q = _round(rest.astype(np.float64) * 128) + 128
    bucket = np.full(rest.shape[1], 1 << (8 - SH_REST_BITS), np.float64)
    bucket[:3] = 1 << (8 - SH1_BITS)
    bucket = bucket[None, :, None]
    q = np.floor((q + bucket // 2) / bucket) * bucket
    return np.clip(q, 0, 255).astype(np.uint8)


def write_spz(cloud: SplatCloud, path: str | Path, *, version: int = 3,
              flip: tuple[int, int, int] | None = None) -> None:  # fmt: skip
    """Write ``cloud`` as SPZ, atomically (a failure leaves nothing behind).

    ``version=3`` (default) writes the legacy gzip stream with smallest-three rotations: every
    SPZ reader reads it, including those released before version 4 existed (Niantic's library
    refuses versions newer than its own, and gzip-only readers cannot open a raw v4 file).
    ``version=4`` writes per-attribute zstd streams (with frame checksums): on a synthetic
    100k-splat SH3 scene it is ~3% smaller (26.0 vs 26.8 bytes per splat) and loads about twice
    as fast (16 vs 31 ms here), but only current readers accept it. The default is the file a
    user can hand to anyone; ask for 4 where the readers are known to be current.

    Quantisation follows the reference writer: positions 24-bit fixed point with 12 fractional
    bits (fewer, chosen adaptively and stored in the header, when the scene extends beyond
    +-2048 units: see :func:`fractional_bits_for`), opacity and colour 8 bits, log-scale in
    1/16 steps over [-10, 5.94], rotations 9 bits per component, SH 5 bits (degree 1) and 4
    bits (degrees 2-3). ``flip`` mirrors axes before encoding (the inverse of the same
    ``flip`` given to :func:`read_spz`). The antialiased flag is kept when the cloud came from
    an SPZ that set it.
    """
    path = Path(path)
    if version not in WRITABLE_VERSIONS:
        raise InvalidArgument(f"SPZ version {version} cannot be written; choose 3 or 4", path=path)
    if cloud.count == 0:
        raise InvalidArgument("nothing to write: the cloud holds zero splats", path=path)
    if cloud.count > MAX_SPLATS:
        raise InvalidArgument(f"{cloud.count:,} splats is beyond what holoscope writes ({MAX_SPLATS:,})", path=path)
    for name in ("means", "scales", "quats", "opacities", "sh"):
        if not np.isfinite(getattr(cloud, name)).all():
            raise InvalidArgument(f"cannot write non-finite {name} to SPZ", path=path)
    if flip is not None:
        cloud = flip_axes(cloud, flip)
    try:
        frac_bits = fractional_bits_for(cloud.means)
    except InvalidArgument as exc:
        raise InvalidArgument(str(exc), path=path) from None
    arrays = pack_arrays(cloud, frac_bits)
    flags = FLAG_ANTIALIASED if cloud.metadata.get("format_info", {}).get("antialiased") else 0
    n, degree = cloud.count, cloud.sh_degree
    with atomic_output(path) as fh:
        if version == 3:
            deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            fh.write(deflate.compress(LEGACY_HEADER.pack(MAGIC, 3, n, degree, frac_bits, flags, 0)))
            for _, data in arrays:
                fh.write(deflate.compress(data))
            fh.write(deflate.flush())
        else:
            import zstandard

            zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, write_content_size=True)
            frames = [zstd.compress(data) for _, data in arrays]
            fh.write(V4_HEADER.pack(MAGIC, 4, n, degree, frac_bits, flags, len(frames), V4_HEADER.size))
            for frame, (_, data) in zip(frames, arrays, strict=True):
                fh.write(struct.pack("<QQ", len(frame), len(data)))
            for frame in frames:
                fh.write(frame)
