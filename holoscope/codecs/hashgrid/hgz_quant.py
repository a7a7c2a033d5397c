"""The numeric half of ``.hgz`` (the container is :mod:`.hgz`): per-level quantisation of hash
tables, the code streams zstd compresses, the dense-level row predictor, and HollowNeRF-style
pruning (which table entries occupied space can reach). numpy only.

Quantisation (per level, over the entries kept): ``lo = min``, ``step = (max - min) / (2^bits -
1)`` in float32, ``code = clip(rint((v - lo) / step), 0, 2^bits - 1)``, decoded as ``lo + step *
code`` in float32, so the error is at most half a step. A constant level has ``step = 0``.

Code streams (what was measured to pay, in the module docstring of :mod:`.hgz`): the codes of an
entry's features stay together (entry-major, as the table stores them); 2..4-bit codes are packed
``8 // bits`` to a byte, least significant first (an entry's features become one joint symbol for
zstd's Huffman stage); 5..8-bit codes are one byte each; 9..16-bit codes are split into two byte
planes (high bytes, low bytes), each its own stream.

Row predictor (dense levels, not pruned): the level's lattice ``[z][y][x]`` (``x + y*res +
z*res^2``, z absent in 2D) is coded as residuals ``(code - pred) mod 2^bits`` with ``pred`` the
median of the previous row's codes at ``x - 1``, ``x``, ``x + 1`` (the same slice ``z`` and
feature; 0 outside the lattice and on row 0). Each row depends only on the previous one, so the
decoder runs one vectorised step per row. Entries past ``res^D`` (the table's round-up to 8) are
stored as they are.
"""

from __future__ import annotations

import numpy as np

from holoscope.codecs.hashgrid.levels import Level
from holoscope.core.errors import CorruptStream, InvalidArgument

MIN_BITS, MAX_BITS = 2, 16
PRIMES = (1, 2654435761, 805459861)  # tiny-cuda-nn's CoherentPrime (neural.encoding's, without torch)
PREDICTORS = ("none", "row-median")
OCCUPANCY_SIDE = 128  # density-grid cells a side, per cascade
# A hashed level whose occupied space covers more than this many times its table size is kept
# whole: with a uniform hash, only e^-FAR of the entries would go unused.
FAR = 4.0
ENUMERATE_CHUNK = 1 << 22  # vertices indexed per numpy step while marking reachable entries
EDGE = 1e-3  # lattice units added around every occupied box: float rounding never drops a vertex


# --- quantisation ---------------------------------------------------------------------------------


def quantise(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.float32, np.float32]:
    """(codes uint16 shaped like ``values``, lo, step) of float values at ``bits`` bits."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise InvalidArgument(f"hash tables are quantised to {MIN_BITS}..{MAX_BITS} bits, not {bits}")
    v = np.asarray(values, np.float32)
    if v.size == 0:
        return np.zeros(v.shape, np.uint16), np.float32(0), np.float32(0)
    if not np.isfinite(v).all():
        raise InvalidArgument("the hash table holds values that are not finite (NaN or infinity)")
    lo, hi = np.float32(v.min()), np.float32(v.max())
    top = (1 << bits) - 1
    with np.errstate(over="ignore"):
        step = np.float32((hi - lo) / np.float32(top))
    if not np.isfinite(step):
        raise InvalidArgument(f"a level's values span {lo}..{hi}, too wide to quantise in float32")
    if step == 0:
        return np.zeros(v.shape, np.uint16), lo, np.float32(0)
    codes = np.clip(np.rint((v - lo) / step), 0, top).astype(np.uint16)
    return codes, lo, step


def dequantise(codes: np.ndarray, lo: float, step: float) -> np.ndarray:
    return (np.float32(lo) + np.float32(step) * codes.astype(np.float32)).astype(np.float32)


# --- code streams ---------------------------------------------------------------------------------


def per_byte(bits: int) -> int:
    """Codes one byte holds: several when they fit (2..4 bits), else one (two planes past 8 bits)."""
    return 8 // bits if bits <= 4 else 1


def stream_sizes(count: int, bits: int) -> list[int]:
    """Raw bytes of each stream that ``count`` codes of ``bits`` bits make."""
    if bits <= 4:
        return [-(-count // per_byte(bits))]
    return [count] if bits <= 8 else [count, count]


def pack_codes(codes: np.ndarray, bits: int) -> list[bytes]:
    """Codes (any shape, flattened in C order) -> the raw streams."""
    flat = np.ascontiguousarray(codes, np.uint16).reshape(-1)
    if bits <= 4:
        k = per_byte(bits)
        padded = np.zeros(-(-flat.size // k) * k, np.uint16)
        padded[: flat.size] = flat
        grouped = padded.reshape(-1, k)
        out = np.zeros(grouped.shape[0], np.uint16)
        for i in range(k):
            out |= grouped[:, i] << (bits * i)
        return [out.astype(np.uint8).tobytes()]
    if bits <= 8:
        return [flat.astype(np.uint8).tobytes()]
    return [(flat >> 8).astype(np.uint8).tobytes(), (flat & 0xFF).astype(np.uint8).tobytes()]


def unpack_codes(streams: list[bytes], count: int, bits: int) -> np.ndarray:
    """The raw streams -> ``count`` codes (uint16); sizes were checked against :func:`stream_sizes`."""
    if bits <= 4:
        k = per_byte(bits)
        packed = np.frombuffer(streams[0], np.uint8).astype(np.uint16)
        mask = (1 << bits) - 1
        out = np.stack([(packed >> (bits * i)) & mask for i in range(k)], axis=1).reshape(-1)
        return out[:count].copy()
    if bits <= 8:
        return np.frombuffer(streams[0], np.uint8).astype(np.uint16)
    high = np.frombuffer(streams[0], np.uint8).astype(np.uint16)
    return (high << 8) | np.frombuffer(streams[1], np.uint8)


# --- row predictor --------------------------------------------------------------------------------


def _lattice_shape(level: Level, dims: int) -> tuple[int, int, int]:
    r = level.resolution
    return (r if dims == 3 else 1, r, r)


def _row_prediction(prev: np.ndarray) -> np.ndarray:
    """Median of ``prev`` at x - 1, x, x + 1 (0 outside), for rows [..., x, F] (int32)."""
    left = np.zeros_like(prev)
    right = np.zeros_like(prev)
    left[..., 1:, :] = prev[..., :-1, :]
    right[..., :-1, :] = prev[..., 1:, :]
    return np.maximum(np.minimum(left, prev), np.minimum(np.maximum(left, prev), right))


def predict_rows(codes: np.ndarray, level: Level, dims: int, bits: int) -> np.ndarray:
    """A dense level's codes [size, F] -> residuals (same shape, uint16)."""
    z, y, x = _lattice_shape(level, dims)
    n = z * y * x
    lattice = codes[:n].astype(np.int32).reshape(z, y, x, -1)
    pred = np.zeros_like(lattice)
    pred[:, 1:] = _row_prediction(lattice[:, :-1])
    out = codes.copy()
    out[:n] = ((lattice - pred) & ((1 << bits) - 1)).reshape(n, -1).astype(np.uint16)
    return out


def unpredict_rows(residuals: np.ndarray, level: Level, dims: int, bits: int) -> np.ndarray:
    """The inverse of :func:`predict_rows`, one vectorised step per row."""
    z, y, x = _lattice_shape(level, dims)
    n = z * y * x
    lattice = residuals[:n].astype(np.int32).reshape(z, y, x, -1)
    mask = (1 << bits) - 1
    for row in range(1, y):
        lattice[:, row] = (lattice[:, row] + _row_prediction(lattice[:, row - 1])) & mask
    out = residuals.copy()
    out[:n] = lattice.reshape(n, -1).astype(np.uint16)
    return out


# --- pruning --------------------------------------------------------------------------------------


def table_index(vertices: np.ndarray, level: Level) -> np.ndarray:
    """Table index (int64) of integer vertices [N, D] on ``level``: numpy's copy of
    :func:`.neural.encoding.corner_index` (dense ``x + y*res + z*res^2``, else CoherentPrime in
    uint32 arithmetic; either mod the level's size)."""
    v = vertices.astype(np.int64)
    index = np.zeros(v.shape[0], np.int64)
    if level.dense:
        stride = 1
        for d in range(v.shape[1]):
            index += v[:, d] * stride
            stride *= level.resolution
    else:
        for d in range(v.shape[1]):
            index ^= (v[:, d] * PRIMES[d]) & 0xFFFFFFFF
    return index % level.size


def used_cells(occupancy: np.ndarray) -> list[np.ndarray]:
    """Per cascade, the occupied cells [K, 3] (x, y, z) a sample can be looked up in. A point
    goes to cascade m >= 1 only when ``max|p - 0.5| >= 2^(m-2)``, i.e. in cells with some index
    <= 32 or >= 96; the inner cells (which instant-ngp fills by max-pooling the finer cascade)
    are skipped, one ring narrower to stay clear of rounding at their border."""
    out = []
    for m in range(occupancy.shape[0]):
        cells = np.argwhere(occupancy[m])
        if m >= 1 and cells.size:
            inner = np.all((cells >= 34) & (cells <= 94), axis=1)
            cells = cells[~inner]
        out.append(cells)
    return out


def _axis_ranges(m: int, aabb: float, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each cell index 0..127 of cascade m: (first vertex, last vertex) its closed box can
    touch on a level of ``scale``, and whether the box meets the unit cube at all."""
    i = np.arange(OCCUPANCY_SIDE + 1, dtype=np.float64)
    edge = (i / OCCUPANCY_SIDE - 0.5) * 2.0**m / aabb + 0.5  # NGP cell edges -> grid input [0, 1]
    lo, hi = edge[:-1], edge[1:]
    inside = (hi >= 0.0) & (lo <= 1.0)
    lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    first = np.floor(lo * scale + 0.5 - EDGE).astype(np.int64)
    last = np.floor(hi * scale + 0.5 + EDGE).astype(np.int64) + 1
    return np.maximum(first, 0), last, inside


def reachable_entries(levels: tuple[Level, ...], occupancy: np.ndarray, aabb_scale: int, *,
                      method: str = "auto") -> list[np.ndarray | None]:  # fmt: skip
    """Per level, bool [size]: the entries some vertex of an occupied cell indexes (the corners
    any sample in occupied space blends), or None where the level is used whole (its occupied
    vertices outnumber its table ``FAR`` times over, estimated from the occupied volume without
    enumerating them). ``occupancy`` is bool [cascades, 128, 128, 128] ([x, y, z]). ``method``
    ("auto", "boxes", "lattice") picks how vertices are found; all give the same entries."""
    aabb = float(min(aabb_scale, 128))
    cells = used_cells(np.asarray(occupancy, bool))
    out: list[np.ndarray | None] = []
    for level in levels:
        scale = float(level.scale)
        volume = sum(len(c) * (2.0**m / OCCUPANCY_SIDE / aabb * scale) ** 3 for m, c in enumerate(cells))
        if not level.dense and volume > FAR * level.size:
            out.append(None)
            continue
        used = np.zeros(level.size, bool)
        for m, c in enumerate(cells):
            if len(c):
                _mark_cascade(used, level, c, *_axis_ranges(m, aabb, scale), method)
        out.append(used)
    return out


def _mark_cascade(used: np.ndarray, level: Level, cells: np.ndarray, first: np.ndarray, last: np.ndarray,
                  inside: np.ndarray, method: str = "auto") -> None:  # fmt: skip
    """Mark the entries of every vertex of the cells' boxes, by whichever costs less: the
    distinct boxes enumerated vertex by vertex (cells whose boxes coincide on a coarse level
    merged first), or the covered vertices of the cascade's whole lattice, built separably."""
    cells = cells[np.all(inside[cells], axis=1)]
    if not len(cells):
        return
    # cells with the same vertex range on every axis have the same box: dedup through the
    # (at most 128) distinct ranges per axis, in a 128^3 table rather than a sort
    _, first_of, axis_class = np.unique(np.stack([first, last], 1), axis=0, return_index=True, return_inverse=True)
    axis_class = axis_class.reshape(-1)
    n = len(first_of)
    seen = np.zeros(n**3, bool)
    k = axis_class[cells]
    seen[(k[:, 0] * n + k[:, 1]) * n + k[:, 2]] = True
    key = np.flatnonzero(seen)
    rep = first_of[np.stack([key // (n * n), (key // n) % n, key % n], 1)]  # a cell index per axis with that range
    boxes = np.concatenate([first[rep], last[rep]], axis=1)  # [U, 6]
    width = int((boxes[:, 3:] - boxes[:, :3]).max()) + 1
    lo, hi = int(first[inside].min()), int(last[inside].max())
    if method == "lattice" or method == "auto" and (hi - lo + 1) ** 3 < len(boxes) * width**3:
        _mark_lattice(used, level, cells, first, last, lo, hi)
        return
    offsets = np.stack(np.meshgrid(*[np.arange(width)] * 3, indexing="ij"), -1).reshape(-1, 3)
    per_chunk = max(1, ENUMERATE_CHUNK // len(offsets))
    for start in range(0, len(boxes), per_chunk):
        chunk = boxes[start : start + per_chunk]
        verts = chunk[:, None, :3] + offsets[None]  # [B, W^3, 3]
        ok = np.all(verts <= chunk[:, None, 3:], axis=2)
        used[table_index(verts[ok], level)] = True


def _covering(occupied: np.ndarray, axis: int, first: np.ndarray, last: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Along ``axis``, cells -> vertices lo..hi: vertex v is covered where some occupied cell
    with ``first <= v <= last`` is (a contiguous run of cells: ranges grow with the index)."""
    v = np.arange(lo, hi + 1)
    start = np.searchsorted(last, v, side="left")  # the first cell whose range reaches v
    stop = np.searchsorted(first, v, side="right")  # one past the last cell whose range starts by v
    counts = np.cumsum(np.moveaxis(occupied, axis, 0), axis=0, dtype=np.int32)
    counts = np.concatenate([np.zeros((1,) + counts.shape[1:], np.int32), counts])
    return np.moveaxis((counts[stop] - counts[start]) > 0, 0, axis)


def _mark_lattice(used: np.ndarray, level: Level, cells: np.ndarray, first: np.ndarray, last: np.ndarray,
                  lo: int, hi: int) -> None:  # fmt: skip
    occupied = np.zeros((OCCUPANCY_SIDE,) * 3, bool)
    occupied[cells[:, 0], cells[:, 1], cells[:, 2]] = True
    side = hi - lo + 1
    slab = max(1, ENUMERATE_CHUNK // (side * side))
    along_x = _covering(occupied, 0, first, last, lo, hi)  # [V, 128, 128]
    for start in range(0, side, slab):
        part = _covering(_covering(along_x[start : start + slab], 1, first, last, lo, hi), 2, first, last, lo, hi)
        verts = np.argwhere(part) + (lo + start, lo, lo)
        used[table_index(verts, level)] = True


def check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise InvalidArgument(f"hash tables are quantised to {MIN_BITS}..{MAX_BITS} bits, not {bits!r}")
    return bits


def check_codes(codes: np.ndarray, bits: int, label) -> None:
    if codes.size and int(codes.max()) >= 1 << bits:
        raise CorruptStream(f"a {bits}-bit level holds code {int(codes.max())}", path=label)


__all__ = ["FAR", "MAX_BITS", "MIN_BITS", "PREDICTORS", "check_bits", "dequantise", "pack_codes", "per_byte",
           "predict_rows", "quantise", "reachable_entries", "stream_sizes", "table_index", "unpack_codes",
           "unpredict_rows", "used_cells"]  # fmt: skip
