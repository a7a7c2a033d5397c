"""mkkellogg GaussianSplats3D ``.ksplat`` reader, compression modes 0, 1 and 2 (splat-formats.md §3.5).

Layout (little-endian):

- main header, 4096 bytes: u8 major = 0 @0, u8 minor >= 1 @1, u32 maxSections @4, u32 splatCount
  @16, u16 compressionMode @20, f32 SH min @36 / max @40 (mode 2; 0 means the default ±1.5);
- ``maxSections`` section headers of 1024 bytes: u32 splatCount @0, maxSplatCount @4,
  bucketCapacity @8, bucketCount @12, f32 spatialBlockSize @16, u16 bucketStorageSize @20,
  u32 quantizationRange @24 (0 means 32767), u32 fullBuckets @32, partialBuckets @36,
  u16 shDegree @40;
- then, per section in order: partialBuckets × u32 (lengths of the partially filled buckets),
  bucketCount × bucketStorageSize bytes (3 × f32 bucket centre first), maxSplatCount splat
  records (only the first splatCount hold splats).

Splat record by mode (then the SH components, per band and channel-major within a band:
band 1 = R×3, G×3, B×3; band 2 = R×5, G×5, B×5):

==== ============================================================= ===========
mode position / scale / rotation (w,x,y,z) / colour                   SH
==== ============================================================= ===========
0    f32 ×3 / f32 linear ×3 / f32 ×4 / u8 RGBA (44 bytes)           f32
1    u16 ×3 quantised in the bucket / f16 ×3 / f16 ×4 / RGBA (24)   f16
2    as mode 1                                                      u8 lerped in [min, max]
==== ============================================================= ===========

A quantised position is ``(u − range) · (blockSize / 2 / range) + bucket centre``. Splat i of a
section lies in bucket ``i // capacity`` while i < fullBuckets · capacity, then in the partial
buckets in order. RGB = (0.5 + C0·f_dc)·255, A = sigmoid(opacity)·255.

Every count and offset is checked against the file size before anything is read, so a
truncated or forged file raises :class:`CorruptStream`. Only what the headers say is needed is
read: the headers, then per section its partial-bucket lengths, the centres of the buckets its
splats use and its ``splatCount`` records (not the spare room, nor anything after the last
section), so an 8 GB sparse file costs what its splats cost. The decode budget is asked before
the splats are read. At most ``MAX_SECTIONS`` (65,536) sections: GaussianSplats3D writes one
per scene, or one per partition where asked to (20,000 splats each by default in the versions
that partitioned), so real files hold a handful to a few thousand; the limit keeps a forged
file of a million one-splat sections from taking minutes (65,536 take about 2 s).
"""

from __future__ import annotations

import functools
import logging
import math
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from holoscope.codecs.formats.common import (
    MAX_SPLATS,
    check_count,
    make_cloud,
    source_size,
    static_splat_media,
)
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, EmptyMedia
from holoscope.core.files import os_error
from holoscope.core.sources import Source, source_for
from holoscope.core.frames import SH_C0, SplatCloud, sh_coeff_count
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.ksplat"
FORMAT_NAME = "ksplat"
MAIN_HEADER_BYTES = 4096
SECTION_HEADER_BYTES = 1024
DEFAULT_QUANT_RANGE = 32767
DEFAULT_SH_RANGE = (-1.5, 1.5)
MAX_SH_DEGREE = 2
MAX_SECTIONS = 1 << 16
# Memory per section header: the 1024 bytes read and the Python dict _layout makes of it
# (measured: 1,772 bytes at the peak of _layout).
SECTION_COST = 2048
# Memory per partial bucket read: its u32 length, that as int64 and their running sum.
PARTIAL_COST = 20
# Peak memory of a read besides the section table and the largest section's records and bucket
# tables (centres as float64: 24 bytes a bucket more): the output arrays, per-section float64
# dequantisation and SH reordering, then make_cloud's float64 quaternion work or its copy when
# splats are dropped. Measured on one section of 1M splats, modes 0-2 and SH degrees 0-2: at
# most 2.55 x the cloud with tracemalloc, 2.81 x in resident memory (modes 1-2, SH degree 0).
PEAK_FACTOR = 3.25
# A scale of zero or below has no logarithm; the reference readers store log σ = -10 for it.
MIN_SCALE = float(np.exp(-10.0))

# Per mode: (position, scale, rotation, SH) storage types and the bytes before the SH.
_MODES = {
    0: ("<f4", "<f4", "<f4", "<f4", 44),
    1: ("<u2", "<f2", "<f2", "<f2", 24),
    2: ("<u2", "<f2", "<f2", "u1", 24),
}

_SECTION_DTYPE = np.dtype(
    {
        "names": [
            "splat_count", "max_splat_count", "bucket_capacity", "bucket_count", "block_size",
            "bucket_storage", "quant_range", "full_buckets", "partial_buckets", "sh_degree",
        ],
        "formats": ["<u4", "<u4", "<u4", "<u4", "<f4", "<u2", "<u4", "<u4", "<u4", "<u2"],
        "offsets": [0, 4, 8, 12, 16, 20, 24, 32, 36, 40],
        "itemsize": SECTION_HEADER_BYTES,
    }
)


@functools.cache
def sh_component_order(degree: int) -> np.ndarray:
    """[K-1, 3] index of each (coefficient 1..K-1, channel) among a splat's stored SH components.

    Stored per band, channel-major within the band: band 1 = R1 R2 R3 G1 G2 G3 B1 B2 B3, then
    band 2 = R4..R8 G4..G8 B4..B8.
    """
    order = []
    base = 0
    for band in range(1, degree + 1):
        width = 2 * band + 1
        for j in range(width):
            order.append([base + channel * width + j for channel in range(3)])
        base += 3 * width
    out = np.array(order, np.intp).reshape(-1, 3)
    out.setflags(write=False)  # cached: shared by every caller
    return out


@functools.cache
def _splat_dtype(mode: int, degree: int) -> np.dtype:
    pos, scale, rot, sh, fixed = _MODES[mode]
    size = np.dtype(pos).itemsize
    components = 3 * (sh_coeff_count(degree) - 1)
    names = ["pos", "scale", "rot", "rgba"]
    formats = [(pos, 3), (scale, 3), (rot, 4), ("u1", 4)]
    offsets = [0, 3 * size, 6 * size, 10 * size]
    if components:
        names.append("sh")
        formats.append((sh, components))
        offsets.append(fixed)
    itemsize = fixed + components * np.dtype(sh).itemsize
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


def _sh_range(lo: float, hi: float) -> tuple[float, float]:
    # As the reference readers: a zero (or NaN) bound means the default ±1.5.
    lo = lo if not math.isnan(lo) and lo != 0 else DEFAULT_SH_RANGE[0]
    hi = hi if not math.isnan(hi) and hi != 0 else DEFAULT_SH_RANGE[1]
    return lo, hi


def read_ksplat(path: Source | str | Path | bytes) -> SplatCloud:
    """Read a ``.ksplat`` file into an activated :class:`SplatCloud`."""
    source = source_for(path)
    path = source.label
    with source.open() as fh:
        size = source_size(fh, path)
        max_sections, total, mode, sh_range = _read_main_header(fh, size, path)
        budget.require(max_sections * SECTION_COST, what=f"{max_sections:,} section headers", path=path)
        sections = _layout(_read(fh, MAIN_HEADER_BYTES, _SECTION_DTYPE, max_sections, path), mode, size, path)
        found = sum(s["splat_count"] for s in sections)
        if found != total:
            raise CorruptStream(f"the header promises {total:,} splats but the sections hold {found:,}", path=path)
        if total == 0:
            raise EmptyMedia("the file holds zero splats", path=path)
        live = [s for s in sections if s["splat_count"]]
        degree = max(s["sh_degree"] for s in live)
        budget.require_splats(total, degree, path=path, peak_factor=PEAK_FACTOR,
                              extra=max_sections * SECTION_COST + max(map(_section_bytes, live)))  # fmt: skip

        means = np.empty((total, 3), np.float32)
        scales = np.empty((total, 3), np.float32)
        quats = np.empty((total, 4), np.float32)
        rgba = np.empty((total, 4), np.uint8)
        sh = np.zeros((total, sh_coeff_count(degree), 3), np.float32)
        start = 0
        for s in live:  # each section's records are freed before the next one's are read
            rows = slice(start, start + s["splat_count"])
            _decode_section(fh, s, mode, sh_range, path, (means[rows], scales[rows], quats[rows], rgba[rows], sh[rows]))
            start += s["splat_count"]

    with np.errstate(invalid="ignore"):
        scales = np.where(scales <= 0, np.float32(MIN_SCALE), scales)
    colour = rgba.astype(np.float32) * np.float32(1 / 255)
    sh[:, 0] = (colour[:, :3] - np.float32(0.5)) / np.float32(SH_C0)
    opacities = colour[:, 3].copy()
    # make_cloud drops rows with non-finite means, scales, opacities or SH, not quaternions: mark
    # a splat whose stored rotation is NaN or infinite through its opacity so it is dropped too.
    bad_rotation = ~np.isfinite(quats).all(axis=1)
    if bad_rotation.any():
        opacities[bad_rotation] = np.nan
        quats[bad_rotation] = (1, 0, 0, 0)
    # f32 quaternions beyond ~1e19 overflow the squared norm in normalize_quats: rescale first.
    big = np.abs(quats).max(axis=1) > 1e18
    if big.any():
        quats[big] /= np.abs(quats[big]).max(axis=1, keepdims=True)
    info = {"compression_mode": mode, "sections": max_sections, "sh_degree": degree}
    cloud = make_cloud(means, scales, quats, opacities, sh, path=path, format_info=info)
    dropped = cloud.metadata["dropped_nonfinite"]
    if dropped:
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, total)
    return cloud


def _read_main_header(fh: BinaryIO, size: int, path: Path) -> tuple[int, int, int, tuple[float, float]]:
    """(maxSections, splatCount, compressionMode, SH range) from the main header, checked."""
    if size < MAIN_HEADER_BYTES:
        raise CorruptStream(f"{size:,} bytes is shorter than the {MAIN_HEADER_BYTES}-byte .ksplat header", path=path)
    head = _read(fh, 0, np.dtype(np.uint8), MAIN_HEADER_BYTES, path).tobytes()
    major, minor = head[0], head[1]
    if major != 0 or minor < 1:
        raise CorruptStream(f"unsupported .ksplat version {major}.{minor} (expected 0.1 or later)", path=path)
    (max_sections,) = struct.unpack_from("<I", head, 4)
    (total,) = struct.unpack_from("<I", head, 16)
    (mode,) = struct.unpack_from("<H", head, 20)
    if mode not in _MODES:
        raise CorruptStream(f"unknown compression mode {mode} (expected 0, 1 or 2)", path=path)
    check_count(max_sections, path=path, available=size - MAIN_HEADER_BYTES, bytes_each=SECTION_HEADER_BYTES,
                what="sections")  # fmt: skip
    if max_sections > MAX_SECTIONS:
        raise CorruptStream(f"{max_sections:,} sections is beyond any real file (limit {MAX_SECTIONS:,})", path=path)
    check_count(total, path=path, what="splats")
    return max_sections, total, mode, _sh_range(*struct.unpack_from("<ff", head, 36))


def _section_bytes(s: dict) -> int:
    """What decoding section ``s`` holds at once besides the cloud: its records, partial-bucket
    lengths and bucket records (then centres as float64). An upper bound on the buckets read: no
    more than the section has, nor than its splats and partial buckets can reach."""
    buckets = min(s["bucket_count"], max(s["splat_count"], s["full_buckets"]) + s["partial_buckets"])
    return s["splat_count"] * s["stride"] + PARTIAL_COST * s["partial_buckets"] + (s["bucket_storage"] + 24) * buckets


def _decode_section(fh: BinaryIO, s: dict, mode: int, sh_range: tuple[float, float], path: Path,
                    out: tuple[np.ndarray, ...]) -> None:  # fmt: skip
    """Read section ``s``'s splat records and decode them into ``out`` (means, scales, quats,
    rgba, sh: views of the section's rows)."""
    means, scales, quats, rgba, sh = out
    records = _read(fh, s["splats_at"], _splat_dtype(mode, s["sh_degree"]), s["splat_count"], path)
    means[:] = records["pos"] if mode == 0 else _dequantise(fh, s, records["pos"], path)
    scales[:] = records["scale"]
    quats[:] = records["rot"]
    rgba[:] = records["rgba"]
    if s["sh_degree"]:
        raw = records["sh"]
        if mode == 2:
            lo, hi = sh_range
            with np.errstate(over="ignore", invalid="ignore"):  # absurd header ranges: dropped later
                values = (lo + raw.astype(np.float32) * np.float32(1 / 255) * (hi - lo)).astype(np.float32)
        else:
            values = raw.astype(np.float32)
        order = sh_component_order(s["sh_degree"])
        sh[:, 1 : 1 + len(order)] = values[:, order]


def _read(fh: BinaryIO, offset: int, dtype: np.dtype, count: int, path: Path) -> np.ndarray:
    """``count`` items of ``dtype`` at byte ``offset``, read straight into an array (the range
    was checked against the file size; a file that shrinks meanwhile is reported)."""
    out = np.empty(count, dtype)
    buffer = memoryview(out.view(np.uint8))
    done = 0
    try:
        fh.seek(offset)
        while done < len(buffer):
            got = fh.readinto(buffer[done:])
            if not got:
                raise CorruptStream(f"file ended at byte {offset + done:,} while it was read", path=path)
            done += got
    except OSError as exc:
        raise os_error(exc, path) from exc
    return out


def _layout(headers: np.ndarray, mode: int, size: int, path: Path) -> list[dict]:
    """Validate every section header against the file size; return where each part lies."""
    splat_base = _MODES[mode][4]
    sh_bytes = np.dtype(_MODES[mode][3]).itemsize
    offset = MAIN_HEADER_BYTES + len(headers) * SECTION_HEADER_BYTES
    sections = []
    for index, h in enumerate(headers.tolist()):
        s = dict(zip(_SECTION_DTYPE.names, h), index=index)
        where = f"section {index}"
        if s["sh_degree"] > MAX_SH_DEGREE:
            raise CorruptStream(f"{where}: SH degree {s['sh_degree']} (a .ksplat holds degree 0-2)", path=path)
        if s["splat_count"] > s["max_splat_count"]:
            raise CorruptStream(
                f"{where}: {s['splat_count']:,} splats in room for {s['max_splat_count']:,}", path=path
            )
        if s["max_splat_count"] > MAX_SPLATS:
            raise CorruptStream(
                f"{where}: room for {s['max_splat_count']:,} splats is beyond any real scene", path=path
            )
        s["stride"] = stride = splat_base + 3 * (sh_coeff_count(s["sh_degree"]) - 1) * sh_bytes
        s["partials_at"] = offset
        s["buckets_at"] = offset + 4 * s["partial_buckets"]
        s["splats_at"] = s["buckets_at"] + s["bucket_storage"] * s["bucket_count"]
        end = s["splats_at"] + stride * s["max_splat_count"]
        if end > size:
            raise CorruptStream(
                f"{where} needs bytes up to {end:,} but the file has {size:,}: truncated or damaged", path=path
            )
        sections.append(s)
        offset = end
    return sections


def _dequantise(fh: BinaryIO, s: dict, quantised: np.ndarray, path: Path) -> np.ndarray:
    """u16 bucket-relative positions [n, 3] -> world positions, through the bucket centres."""
    count = s["splat_count"]
    capacity, full, partial = s["bucket_capacity"], s["full_buckets"], s["partial_buckets"]
    where = f"section {s['index']}"
    in_full = min(count, full * capacity)
    bucket = np.empty(count, np.int64)
    bucket[:in_full] = np.arange(in_full, dtype=np.int64) // max(capacity, 1)
    if count > in_full:
        lengths = _read(fh, s["partials_at"], np.dtype("<u4"), partial, path).astype(np.int64)
        ends = np.cumsum(lengths)
        rest = count - in_full
        if partial == 0 or ends[-1] < rest:
            covered = int(ends[-1]) if partial else 0
            raise CorruptStream(
                f"{where}: {rest:,} splats lie outside the full buckets but the partial buckets hold {covered:,}",
                path=path,
            )
        bucket[in_full:] = full + np.searchsorted(ends, np.arange(rest, dtype=np.int64), side="right")
    used = int(bucket[-1]) + 1 if count else 0
    if used > s["bucket_count"]:
        raise CorruptStream(f"{where}: splats refer to bucket {used - 1:,} of {s['bucket_count']:,}", path=path)
    if s["bucket_storage"] < 12:
        raise CorruptStream(f"{where}: bucket records of {s['bucket_storage']} bytes cannot hold a centre", path=path)
    centre_dtype = np.dtype({"names": ["c"], "formats": [("<f4", 3)], "offsets": [0], "itemsize": s["bucket_storage"]})
    centres = _read(fh, s["buckets_at"], centre_dtype, used, path)["c"].astype(np.float64)
    quant_range = s["quant_range"] or DEFAULT_QUANT_RANGE
    with np.errstate(over="ignore", invalid="ignore"):
        step = np.float64(s["block_size"]) / 2.0 / quant_range
        return ((quantised.astype(np.float64) - quant_range) * step + centres[bucket]).astype(np.float32)


def open_ksplat(source: Source) -> Media:
    cloud = read_ksplat(source)
    return static_splat_media(cloud, source=source, fmt=FORMAT_NAME, reader=READER_NAME)
