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

Every count and offset is checked against the file size before any slice is taken, so a
truncated or forged file raises :class:`CorruptStream`.
"""

from __future__ import annotations

import logging
import math
import struct
from pathlib import Path

import numpy as np

from holoscope.codecs.formats.common import read_source_bytes, MAX_SPLATS, check_count, make_cloud, static_splat_media
from holoscope.core.errors import CorruptStream, EmptyMedia
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
    return np.array(order, np.intp).reshape(-1, 3)


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


def read_ksplat(path: str | Path) -> SplatCloud:
    """Read a ``.ksplat`` file into an activated :class:`SplatCloud`."""
    path = Path(path)
    data = read_source_bytes(path)
    size = len(data)
    if size < MAIN_HEADER_BYTES:
        raise CorruptStream(f"{size:,} bytes is shorter than the {MAIN_HEADER_BYTES}-byte .ksplat header", path=path)
    major, minor = data[0], data[1]
    if major != 0 or minor < 1:
        raise CorruptStream(f"unsupported .ksplat version {major}.{minor} (expected 0.1 or later)", path=path)
    (max_sections,) = struct.unpack_from("<I", data, 4)
    (total,) = struct.unpack_from("<I", data, 16)
    (mode,) = struct.unpack_from("<H", data, 20)
    sh_lo, sh_hi = _sh_range(*struct.unpack_from("<ff", data, 36))
    if mode not in _MODES:
        raise CorruptStream(f"unknown compression mode {mode} (expected 0, 1 or 2)", path=path)
    check_count(max_sections, path=path, available=size - MAIN_HEADER_BYTES, bytes_each=SECTION_HEADER_BYTES,
                what="sections")  # fmt: skip
    check_count(total, path=path, what="splats")

    headers = np.frombuffer(data, _SECTION_DTYPE, count=max_sections, offset=MAIN_HEADER_BYTES)
    sections = _layout(headers, mode, size, path)
    found = sum(s["splat_count"] for s in sections)
    if found != total:
        raise CorruptStream(f"the header promises {total:,} splats but the sections hold {found:,}", path=path)
    if total == 0:
        raise EmptyMedia("the file holds zero splats", path=path)
    degree = max((s["sh_degree"] for s in sections if s["splat_count"]), default=0)

    means = np.empty((total, 3), np.float32)
    scales = np.empty((total, 3), np.float32)
    quats = np.empty((total, 4), np.float32)
    rgba = np.empty((total, 4), np.uint8)
    sh = np.zeros((total, sh_coeff_count(degree), 3), np.float32)
    start = 0
    for s in sections:
        count = s["splat_count"]
        if count == 0:
            continue
        rows = slice(start, start + count)
        records = np.frombuffer(data, _splat_dtype(mode, s["sh_degree"]), count=count, offset=s["splats_at"])
        if mode == 0:
            means[rows] = records["pos"]
        else:
            means[rows] = _dequantise(data, s, records["pos"], path)
        scales[rows] = records["scale"]
        quats[rows] = records["rot"]
        rgba[rows] = records["rgba"]
        if s["sh_degree"]:
            raw = records["sh"]
            if mode == 2:
                with np.errstate(over="ignore", invalid="ignore"):  # absurd header ranges: dropped below
                    values = (sh_lo + raw.astype(np.float32) * np.float32(1 / 255) * (sh_hi - sh_lo)).astype(np.float32)
            else:
                values = raw.astype(np.float32)
            order = sh_component_order(s["sh_degree"])
            sh[rows, 1 : 1 + len(order)] = values[:, order]
        start += count

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
        stride = splat_base + 3 * (sh_coeff_count(s["sh_degree"]) - 1) * sh_bytes
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


def _dequantise(data: bytes, s: dict, quantised: np.ndarray, path: Path) -> np.ndarray:
    """u16 bucket-relative positions [n, 3] -> world positions, through the bucket centres."""
    count = s["splat_count"]
    capacity, full, partial = s["bucket_capacity"], s["full_buckets"], s["partial_buckets"]
    where = f"section {s['index']}"
    in_full = min(count, full * capacity)
    bucket = np.empty(count, np.int64)
    bucket[:in_full] = np.arange(in_full, dtype=np.int64) // max(capacity, 1)
    if count > in_full:
        lengths = np.frombuffer(data, "<u4", count=partial, offset=s["partials_at"]).astype(np.int64)
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
    centres = np.frombuffer(data, centre_dtype, count=used, offset=s["buckets_at"])["c"].astype(np.float64)
    quant_range = s["quant_range"] or DEFAULT_QUANT_RANGE
    with np.errstate(over="ignore", invalid="ignore"):
        step = np.float64(s["block_size"]) / 2.0 / quant_range
        return ((quantised.astype(np.float64) - quant_range) * step + centres[bucket]).astype(np.float32)


def open_ksplat(path: Path) -> Media:
    cloud = read_ksplat(path)
    return static_splat_media(cloud, path=path, fmt=FORMAT_NAME, reader=READER_NAME)
