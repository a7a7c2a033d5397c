"""tiny-cuda-nn's multiresolution hash encoding in torch (hashgrid.md §5), every level and every
corner of a chunk of points at once: no per-level or per-sample Python.

Per level l: ``p = x * scale_l + 0.5``, ``cell = floor(p)``, ``frac = p - cell``; the 2^D corners
``cell + bits(k)`` are indexed densely (``x + y*res + z*res^2``) on dense levels, else hashed
with the CoherentPrime hash ``x*1 ^ y*2654435761 ^ z*805459861`` in wrapping uint32 arithmetic;
either index is taken mod the level's size. Corner features are blended n-linearly. The output
is level-major, ``[N, L*F]``, as the MLP that follows expects. ``x * scale + 0.5`` is two
float32 roundings here; where CUDA fuses it into one FMA a point within an ulp of a cell
boundary can land in the neighbouring cell (a continuity-preserving difference of ~1e-7).

A :class:`GridEncoder` holds a grid's per-level constants as tensors and encodes a chunk of points
(sized to the CPU's L2, or to a few hundred MiB on a GPU) with every level and corner at once,
points innermost; :func:`encode` keeps one per (levels, features, dims, device), so its callers
need not. Two index paths give the same indices:

- exact for any input (GPU, or a point outside [0, 1]): int64, ``%`` the level size, the
  arithmetic of :func:`corner_index`;
- fast (CPU, every point in [0, 1]): int32, whose wrapping multiply keeps the hash's low 32 bits;
  a hashed level's size is a power of two, so its ``mod`` is ``& (size - 1)``; a dense corner
  lies in [0, res]^D, so its index is below ``2 * size`` and ``mod`` is one conditional
  subtraction (``%`` costs about as much as the gather).

Without autograd through the table, F=2 and F=4 rows are gathered as one float64 / complex128
element each, about half the cost of a two-dimensional ``index_select``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from holoscope.codecs.hashgrid.levels import Level

PRIMES = (1, 2654435761, 805459861, 3674653429)
MASK32 = 0xFFFFFFFF
CHUNK_FLOATS = 1 << 18  # gathered values per pass on CPU (1 MiB): a pass's work stays within L2
GPU_CHUNK_FLOATS = 1 << 26  # on a GPU (256 MiB): a march wave of 2^21 samples peaks at ~1 GiB, not ~6
_ROW_DTYPES = {2: torch.float64, 4: torch.complex128}  # a float32 row of F values as one element
_CACHE: OrderedDict[tuple, "GridEncoder"] = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()  # the viewer renders off the UI thread


def corner_index(corners: torch.Tensor, level: Level) -> torch.Tensor:
    """Table index of integer corners [..., D] (int64) on ``level``."""
    dims = corners.shape[-1]
    if level.dense:
        index = torch.zeros(corners.shape[:-1], dtype=torch.int64, device=corners.device)
        stride = 1
        for d in range(dims):
            index += corners[..., d] * stride
            stride *= level.resolution
    else:
        index = torch.zeros(corners.shape[:-1], dtype=torch.int64, device=corners.device)
        for d in range(dims):  # uint32 products: int64 multiply, keep the low 32 bits
            index ^= (corners[..., d] * PRIMES[d]) & MASK32
    return index % level.size


def _int32(v: int) -> int:
    """The int32 with the same 32 bits as ``v`` (a uint32 prime)."""
    v &= MASK32
    return v - (1 << 32) if v >= 1 << 31 else v


class GridEncoder:
    """One grid's levels as tensors on ``device``; call it with points [N, D] and the flat table.

    Work tensors are level-major with the points innermost ([L, 2^D, C] for a chunk of C points)
    so every broadcast is over outer dimensions and torch's kernels stay vectorised (broadcasting
    a size-2 inner dimension is several times slower on CPU)."""

    def __init__(self, levels: tuple[Level, ...], features: int, dims: int,
                 device: str | torch.device = "cpu") -> None:  # fmt: skip
        self.levels, self.features, self.dims = tuple(levels), features, dims
        self.device = torch.device(device)
        self.n_dense = next((i for i, lv in enumerate(levels) if not lv.dense), len(levels))
        dense, hashed = self.levels[: self.n_dense], self.levels[self.n_dense :]
        if any(lv.dense for lv in hashed):  # resolutions grow with the level, so grid_levels' always do
            raise ValueError("a grid's dense levels come before its hashed ones")
        # int32 is exact while every cell, offset + 2 * size and hash mask fit in it
        self.fast_ok = (self.device.type == "cpu" and sum(lv.size for lv in levels) < 1 << 30
                        and all(lv.resolution < 1 << 30 for lv in levels)
                        and all(lv.size & (lv.size - 1) == 0 for lv in hashed))  # fmt: skip
        scale = torch.tensor([lv.scale for lv in levels], dtype=torch.float32, device=self.device)
        self.scale = scale[:, None, None]  # [L, 1, 1]
        bits = [[(k >> d) & 1 for d in range(dims)] for k in range(1 << dims)]
        strides = [[lv.resolution**d for d in range(dims)] for lv in dense]
        corner = [[sum(s * b for s, b in zip(row, bk)) for bk in bits] for row in strides]  # [Ld, K]
        self.consts = {}
        for dtype in (torch.int32, torch.int64) if self.fast_ok else (torch.int64,):
            fast = dtype == torch.int32

            def t(values, shape):
                return torch.tensor(values, dtype=dtype, device=self.device).reshape(shape)

            # fast: a dense level's offset rides on its corner offsets, and the conditional
            # subtraction compares with offset + size; a hashed level's mod is a mask
            self.consts[dtype] = {
                "stride": t(strides, (-1, dims, 1)),
                "corner": t([[c + lv.offset * fast for c in row] for row, lv in zip(corner, dense)],
                            (-1, 1 << dims, 1)),
                "dense_size": t([lv.size for lv in dense], (-1, 1, 1)),
                "dense_limit": t([lv.size + lv.offset * fast for lv in dense], (-1, 1, 1)),
                "dense_offset": t([lv.offset for lv in dense], (-1, 1, 1)),
                # a cell whose base index reaches this has a corner at or past the level's size
                "dense_wrap": t([lv.size - sum(row) for lv, row in zip(dense, strides)], (-1, 1)),
                "primes": t([_int32(p) if fast else p for p in PRIMES[:dims]], (1, dims, 1)),
                "hash_mod": t([lv.size - fast for lv in hashed], (-1, 1, 1)),
                "hash_offset": t([lv.offset for lv in hashed], (-1, 1, 1)),
            }  # fmt: skip

    def indices(self, cell: torch.Tensor, fast: bool) -> torch.Tensor:
        """Table rows [L, 2^D, C] of every corner of the cells [L, D, C] (float, integral)."""
        dims, nd, c_n = self.dims, self.n_dense, cell.shape[-1]
        dtype = torch.int32 if fast else torch.int64
        k = self.consts[dtype]
        c = cell.to(dtype)
        out = torch.empty((len(self.levels), 1 << dims, c_n), dtype=dtype, device=cell.device)
        if nd:
            base = (c[:nd] * k["stride"]).sum(1, keepdim=True, dtype=dtype)  # [Ld, 1, C]
            idx = torch.add(base, k["corner"], out=out[:nd])  # a corner's offset from its cell's is per level
            if not fast:
                idx.remainder_(k["dense_size"]).add_(k["dense_offset"])
            elif bool((base.amax(-1) >= k["dense_wrap"]).any()):  # only cells at the far edge wrap
                # a corner is in [0, res]^D, its index below 2 * size: the mod is one subtraction
                # where idx >= limit, i.e. where (idx - limit) >> 31 + 1 is 1, not 0 (an arithmetic
                # shift: several times faster than >= and where on CPU)
                r = idx - k["dense_limit"]
                idx.sub_(r.bitwise_right_shift_(31).add_(1).mul_(k["dense_size"]))
        if nd < len(self.levels):
            lo = c[nd:] * k["primes"]  # [Lh, D, C]; (c + 1) * p is c * p + p in the same wrapping arithmetic
            pairs = torch.stack((lo, lo + k["primes"]), 2)  # [Lh, D, 2, C]
            idx = pairs[:, 0]
            for d in range(1, dims):  # bit d is the high bit of k
                idx = (idx[:, None] ^ pairs[:, d, :, None]).reshape(-1, 2 << d, c_n)
            if fast:
                idx.bitwise_and_(k["hash_mod"])
            else:
                idx.bitwise_and_(MASK32).remainder_(k["hash_mod"])
            torch.add(idx, k["hash_offset"], out=out[nd:])
        return out

    def weights(self, frac: torch.Tensor) -> torch.Tensor:
        """n-linear weights [L, 2^D, C] from the fractions [L, D, C], multiplied in axis order."""
        pairs = torch.stack((1 - frac, frac), 2)  # [L, D, 2, C]
        w = pairs[:, 0]
        for d in range(1, self.dims):
            w = (w[:, None] * pairs[:, d, :, None]).reshape(w.shape[0], 2 << d, -1)
        return w

    def __call__(self, points: torch.Tensor, table: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """[N, D] points (float32; [0, 1] takes the int32 path on CPU) -> [N, L*F] features in the
        table's dtype. ``chunk``: points per pass without autograd (default: sized to L2 on CPU, to
        a few hundred MiB of work tensors on a GPU)."""
        n, f, n_levels = points.shape[0], self.features, len(self.levels)
        k = 1 << self.dims
        if n == 0:
            return table.new_zeros((0, n_levels * f))
        grad = torch.is_grad_enabled() and (table.requires_grad or points.requires_grad)
        fast = self.fast_ok and points.device.type == "cpu" and _in_unit_cube(points)
        # a row as one element of a wider dtype: an aligned offset, float32, and no autograd through it
        rows = not (grad and table.requires_grad) and f in _ROW_DTYPES and table.dtype == torch.float32 \
            and table.is_contiguous() and table.storage_offset() % f == 0  # fmt: skip
        spread = not (grad and points.requires_grad) and f in (1, 2, 4) and table.dtype == torch.float32
        if chunk is None:  # a chunk's gathered values (L * 2^D * F floats a point) fill about L2 on CPU
            budget = CHUNK_FLOATS if points.device.type == "cpu" else GPU_CHUNK_FLOATS
            chunk = max(256, budget // (n_levels * k * f))
        xt = points.t().contiguous()  # [D, N]: points innermost
        if grad:  # one pass: each chunk's backward would fill a gradient the size of the table
            return self._chunk(xt, table, rows, fast, spread).transpose(0, 1).reshape(n, n_levels * f)
        out = torch.empty((n, n_levels, f), dtype=table.dtype, device=points.device)
        for s in range(0, n, chunk):
            part = self._chunk(xt[:, s : s + chunk], table, rows, fast, spread)  # [L, C, F]
            if rows:  # a transposing copy of whole rows is ~3x faster
                _as_rows(out[s : s + chunk]).copy_(_as_rows(part).t())
            else:
                out[s : s + chunk] = part.transpose(0, 1)
        return out.view(n, n_levels * f)

    def _chunk(self, xt: torch.Tensor, table: torch.Tensor, rows: bool, fast: bool, spread: bool) -> torch.Tensor:
        """[D, C] points -> [L, C, F] features."""
        f, k = self.features, 1 << self.dims
        p = xt[None] * self.scale  # [L, D, C]
        p += 0.5
        cell = torch.floor(p)
        frac = p.sub_(cell)
        idx = self.indices(cell, fast).view(-1)
        if rows:  # one element per row: a 1-D gather, about half the cost of a 2-D one
            values = table.view(_ROW_DTYPES[f]).index_select(0, idx).view(table.dtype)
        else:
            values = table.view(-1, f).index_select(0, idx)
        values = values.view(len(self.levels), k, -1, f)
        w = self.weights(frac).to(values.dtype)
        w = _spread(w, f) if spread else w[..., None]
        if values.requires_grad or w.requires_grad:
            return (values * w).sum(1)
        return values.mul_(w).sum(1)  # the gathered copy is ours to scale


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """float32 [..., F] (F = 2 or 4, last dimension contiguous) as [...] of float64 / complex128."""
    return t.view(_ROW_DTYPES[t.shape[-1]])[..., 0]


def _spread(w: torch.Tensor, f: int) -> torch.Tensor:
    """float32 [..., C] -> [..., C, F], each weight repeated F times: a size-F inner broadcast is
    several times slower than these complex(w, w) pairings."""
    if f == 1:
        return w[..., None]
    w = torch.view_as_real(torch.complex(w, w))  # [..., C, 2]
    if f == 2:
        return w
    w = _as_rows(w)  # each pair as one float64
    return torch.view_as_real(torch.complex(w, w)).view(torch.float32)  # [..., C, 2] float64 -> [..., C, 4]


def _in_unit_cube(points: torch.Tensor) -> bool:
    lo, hi = torch.aminmax(points)
    return bool(lo >= 0) and bool(hi <= 1)  # NaN compares false: the exact path


def encoder(levels: tuple[Level, ...], features: int, dims: int, device: str | torch.device) -> GridEncoder:
    """The grid's encoder, built once (a few small tensors) and kept for the most recent grids."""
    key = (tuple(levels), features, dims, torch.device(device))
    with _CACHE_LOCK:
        enc = _CACHE.get(key)
        if enc is not None:
            _CACHE.move_to_end(key)
            return enc
    # Built outside inference mode even when a render asks first: the cached constants must also
    # serve training, and autograd refuses to save inference tensors for backward.
    with torch.inference_mode(False):
        enc = GridEncoder(key[0], features, dims, key[3])
    with _CACHE_LOCK:
        _CACHE[key] = enc
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return enc


def encode(points: torch.Tensor, table: torch.Tensor, levels: tuple[Level, ...], features: int) -> torch.Tensor:
    """``points`` [N, D] in [0, 1] (float32) through the grid whose parameters are ``table``
    (all levels back to back, entry-major: ``(offset + index) * F + f``) -> [N, L*F] float32."""
    return encoder(levels, features, points.shape[1], points.device)(points, table)


__all__ = ["GridEncoder", "PRIMES", "corner_index", "encode", "encoder"]
