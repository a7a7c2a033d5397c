"""A NeRF snapshot's density grid and occupancy bitfield, laid out as instant-ngp lays them out
(hashgrid.md §2 and §6; ``nerf_device.cuh``, ``testbed_nerf.cu``). numpy only.

Rules followed:

- The grid is 128^3 cells per cascade, ``max_cascade + 1`` cascades with ``max_cascade =
  ceil(log2(aabb_scale))``; cascade m covers NGP ``[0.5 - 2^(m-1), 0.5 + 2^(m-1)]^3``.
- Cells are in Morton order, ``expand(x) | expand(y) << 1 | expand(z) << 2``; the flat index of a
  density value is ``morton + m * 128^3``.
- A point's cascade is ``frexp(max|p - 0.5|)``'s exponent plus one, clamped to 0..max_cascade;
  its cell is ``trunc(((p - 0.5) * 2^-m + 0.5) * 128)`` (C's float-to-int truncation), outside
  the cascade when not within 0..127.
- The bitfield is rebuilt from the fp16 values as ``update_density_grid_mean_and_bitfield``
  does on load: the mean is ``sum(max(v, 0)) / 128^3`` over cascade 0 only (negative "never
  seen" cells count as 0 in the sum, but do count in the divisor); a cell is occupied when its
  value is ``> min(0.01, mean)``. Then every cascade m >= 1 is OR-ed with cascade m - 1
  max-pooled 2x2x2 into its central 64^3 cells (``bitfield_max_pool``).
- 8 Morton-consecutive cells per byte, cell ``8 * i + j`` in bit j (least significant first).

Arrays returned here are indexed ``[cascade, x, y, z]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from holoscope.core.errors import CorruptStream

GRID_SIZE = 128  # NERF_GRIDSIZE()
GRID_CELLS = GRID_SIZE**3
NERF_CASCADES = 8  # instant-ngp's compile-time limit: aabb_scale <= 128
MIN_OPTICAL_THICKNESS = np.float32(0.01)  # NERF_MIN_OPTICAL_THICKNESS()
OCCUPANCY_KEY = "holoscope_occupancy"  # holoscope's own packed bitfield, used as-is when present


def max_cascade(aabb_scale: int) -> int:
    """``ceil(log2(aabb_scale))``, as ``load_nerf_post`` counts it (0 for aabb_scale <= 1)."""
    m = 0
    while (1 << m) < aabb_scale:
        m += 1
    return m


def _expand(v: np.ndarray) -> np.ndarray:
    """Spread the low 10 bits of ``v`` two bits apart (``expand_bits``)."""
    v = v.astype(np.uint32) & np.uint32(0x3FF)
    v = (v * np.uint32(0x00010001)) & np.uint32(0xFF0000FF)
    v = (v * np.uint32(0x00000101)) & np.uint32(0x0F00F00F)
    v = (v * np.uint32(0x00000011)) & np.uint32(0xC30C30C3)
    v = (v * np.uint32(0x00000005)) & np.uint32(0x49249249)
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_expand` on every third bit."""
    v = v.astype(np.uint32) & np.uint32(0x49249249)
    v = (v | (v >> np.uint32(2))) & np.uint32(0xC30C30C3)
    v = (v | (v >> np.uint32(4))) & np.uint32(0x0F00F00F)
    v = (v | (v >> np.uint32(8))) & np.uint32(0xFF0000FF)
    v = (v | (v >> np.uint32(16))) & np.uint32(0x0000FFFF)
    return v


def morton_encode(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Morton codes (uint32) of integer cells 0..1023 per axis."""
    return _expand(np.asarray(x)) | (_expand(np.asarray(y)) << np.uint32(1)) | (_expand(np.asarray(z)) << np.uint32(2))


def morton_decode(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, z) of Morton codes."""
    c = np.asarray(codes, np.uint32)
    return _compact(c), _compact(c >> np.uint32(1)), _compact(c >> np.uint32(2))


@lru_cache(maxsize=1)
def _grid_morton() -> np.ndarray:
    """Morton code of every cell of a 128^3 grid, indexed [x, y, z] (read-only, cached)."""
    i = np.arange(GRID_SIZE, dtype=np.uint32)
    codes = morton_encode(i[:, None, None], i[None, :, None], i[None, None, :])
    codes.setflags(write=False)
    return codes


def morton_to_grid(values: np.ndarray) -> np.ndarray:
    """[..., 128^3] values in Morton order -> [..., 128, 128, 128] indexed [x, y, z]."""
    return np.asarray(values)[..., _grid_morton()]


def grid_to_morton(grid: np.ndarray) -> np.ndarray:
    """[..., 128, 128, 128] indexed [x, y, z] -> [..., 128^3] in Morton order."""
    grid = np.asarray(grid)
    out = np.empty(grid.shape[:-3] + (GRID_CELLS,), grid.dtype)
    out[..., _grid_morton()] = grid
    return out


def cascade_of(points: np.ndarray, max_cascade: int) -> np.ndarray:
    """The cascade (int) each NGP-space point [N, 3] is looked up in (``mip_from_pos``)."""
    extent = np.abs(np.asarray(points, np.float32) - np.float32(0.5)).max(axis=-1)
    _, exponent = np.frexp(extent)
    return np.clip(exponent + 1, 0, max_cascade).astype(np.int64)


def cell_of(points: np.ndarray, cascade: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cells [N, 3] int64, inside [N] bool) of NGP-space points in their cascades
    (``cascaded_grid_idx_at``: truncation towards zero, outside unless 0..127 on every axis)."""
    p = np.asarray(points, np.float32)
    scale = np.ldexp(np.float32(1), -np.asarray(cascade)).astype(np.float32)[..., None]
    q = ((p - np.float32(0.5)) * scale + np.float32(0.5)) * np.float32(GRID_SIZE)
    cells = np.trunc(q).astype(np.int64)
    inside = np.all((cells >= 0) & (cells < GRID_SIZE), axis=-1)
    return cells, inside


def pack_bits(occupancy: np.ndarray) -> bytes:
    """Bool [cascades, 128, 128, 128] ([x, y, z]) -> the bitfield bytes, cascades one after
    another, 8 Morton-consecutive cells per byte, least significant bit first."""
    occupancy = np.asarray(occupancy, bool)
    if occupancy.ndim != 4 or occupancy.shape[1:] != (GRID_SIZE,) * 3:
        raise ValueError(f"occupancy must be [cascades, {GRID_SIZE}, {GRID_SIZE}, {GRID_SIZE}], got {occupancy.shape}")
    return np.packbits(grid_to_morton(occupancy), axis=-1, bitorder="little").tobytes()


def unpack_bits(data: bytes | memoryview, cascades: int) -> np.ndarray:
    """The bitfield bytes of ``cascades`` cascades -> bool [cascades, 128, 128, 128] ([x, y, z])."""
    raw = np.frombuffer(data, np.uint8)
    if raw.size != cascades * GRID_CELLS // 8:
        raise CorruptStream(f"the occupancy bitfield holds {raw.size:,} bytes, {cascades} cascade(s) of "
                            f"{GRID_SIZE}^3 cells need {cascades * GRID_CELLS // 8:,}")  # fmt: skip
    bits = np.unpackbits(raw.reshape(cascades, GRID_CELLS // 8), axis=-1, bitorder="little").astype(bool)
    return morton_to_grid(bits)


def threshold(density: np.ndarray) -> np.float32:
    """``min(0.01, mean)`` with instant-ngp's mean: ``sum(max(v, 0)) / 128^3`` over cascade 0."""
    first = np.asarray(density, np.float32).reshape(-1)[:GRID_CELLS]
    mean = np.float32(np.maximum(first, 0).sum(dtype=np.float64) / GRID_CELLS)
    return min(MIN_OPTICAL_THICKNESS, mean)


def _max_pool_into(coarse: np.ndarray, fine: np.ndarray) -> None:
    """OR ``fine`` (the cascade inside), pooled 2x2x2, into the central 64^3 cells of ``coarse``."""
    half, quarter = GRID_SIZE // 2, GRID_SIZE // 4
    pooled = fine.reshape(half, 2, half, 2, half, 2).any(axis=(1, 3, 5))
    coarse[quarter : quarter + half, quarter : quarter + half, quarter : quarter + half] |= pooled


def bitfield_from_density(density: np.ndarray, cascades: int) -> np.ndarray:
    """Occupancy bool [cascades, 128, 128, 128] ([x, y, z]) from density values (128^3 x
    cascades, Morton order, cascades one after another), as instant-ngp rebuilds it on load."""
    values = np.asarray(density, np.float32).reshape(-1)
    if values.size != cascades * GRID_CELLS:
        raise CorruptStream(f"the density grid holds {values.size:,} values, {cascades} cascade(s) of "
                            f"{GRID_SIZE}^3 need {cascades * GRID_CELLS:,}")  # fmt: skip
    occupied = morton_to_grid(values.reshape(cascades, GRID_CELLS) > threshold(values))
    for m in range(1, cascades):
        _max_pool_into(occupied[m], occupied[m - 1])
    return occupied


def occupancy_of(snapshot) -> np.ndarray | None:
    """The occupancy of a NeRF snapshot, bool [max_cascade + 1, 128, 128, 128] ([x, y, z]), from
    ``snapshot.holoscope_occupancy`` (packed bitfield) when present, else rebuilt from
    ``snapshot.density_grid_binary`` (fp16). None when the grid was never populated (empty):
    every cell counts as occupied, as instant-ngp renders an untrained model."""
    snap = snapshot.document.get("snapshot") or {}
    cascades = max_cascade(snapshot.aabb_scale) + 1
    size = snap.get("density_grid_size", GRID_SIZE)
    if size != GRID_SIZE:
        raise CorruptStream(f"the density grid is {size!r} cells a side; instant-ngp's is {GRID_SIZE}")
    packed = snap.get(OCCUPANCY_KEY)
    if packed is not None:
        if not isinstance(packed, (bytes, memoryview)):
            raise CorruptStream(f"snapshot.{OCCUPANCY_KEY} is a {type(packed).__name__}, not binary")
        return unpack_bits(packed, cascades)
    blob = snap.get("density_grid_binary", b"")
    if not isinstance(blob, (bytes, memoryview)):
        raise CorruptStream(f"snapshot.density_grid_binary is a {type(blob).__name__}, not binary")
    if len(blob) == 0:
        return None
    if len(blob) != cascades * GRID_CELLS * 2:
        raise CorruptStream(f"the density grid holds {len(blob):,} bytes; aabb_scale {snapshot.aabb_scale} needs "
                            f"{cascades} cascade(s) of {GRID_SIZE}^3 fp16 values ({cascades * GRID_CELLS * 2:,} bytes)")  # fmt: skip
    return bitfield_from_density(np.frombuffer(blob, np.float16), cascades)


__all__ = ["GRID_CELLS", "GRID_SIZE", "NERF_CASCADES", "OCCUPANCY_KEY", "bitfield_from_density", "cascade_of",
           "cell_of", "grid_to_morton", "max_cascade", "morton_decode", "morton_encode", "morton_to_grid",
           "occupancy_of", "pack_bits", "threshold", "unpack_bits"]  # fmt: skip
