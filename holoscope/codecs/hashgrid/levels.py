"""The levels of a tiny-cuda-nn multiresolution hash grid, as tiny-cuda-nn lays them out
(hashgrid.md §5): growth factor, per-level scale and resolution, table size, offset, and whether
a level is dense or hashed. No torch: ``holoscope info`` and the parameter-count check before
any evaluation use it.

The arithmetic is float32, with the C library's ``expf`` / ``logf`` / ``exp2f`` / ``log2f`` as
instant-ngp's host code calls them (through ctypes where libm is there): float64, or numpy's own
float32 functions, put some levels one vertex off, and a dense level of the wrong size shifts
every later offset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from holoscope.core.errors import InvalidArgument

MAX_BASES = {1: 0xFFFFFFFF, 2: 0xFFFF, 3: 0x659, 4: 0xFF}  # tcnn grid_index: dense indexing up to this resolution
MAX_LEVELS = 128
MAX_LOG2_TABLE = 32


@lru_cache(maxsize=1)
def _libm():
    name = ctypes.util.find_library("m")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    for fn in ("expf", "logf", "exp2f", "log2f"):
        getattr(lib, fn).restype = ctypes.c_float
        getattr(lib, fn).argtypes = [ctypes.c_float]
    return lib


def _f32(name: str, x: float) -> np.float32:
    """``name``f(x) in float32: the C library's when there is one, else numpy's float32 ufunc."""
    lib = _libm()
    if lib is not None:
        return np.float32(getattr(lib, name)(float(np.float32(x))))
    ufunc = {"expf": np.exp, "logf": np.log, "exp2f": np.exp2, "log2f": np.log2}[name]
    return np.float32(ufunc(np.float32(x)))


def growth_factor(levels: int, base_resolution: int, max_resolution: float) -> np.float32:
    """``b = exp(ln(max_resolution / base_resolution) / (levels - 1))`` in float32, as
    instant-ngp's ``reset_network`` computes ``per_level_scale``; ``max_resolution`` is
    2048 * aabb_scale for NeRF, 2048 for SDF, max(width, height) / 2 for images."""
    if levels < 2:
        return np.float32(1.0)
    ratio = np.float32(max_resolution) / np.float32(base_resolution)
    return _f32("expf", np.float32(_f32("logf", ratio)) / np.float32(levels - 1))


@dataclass(frozen=True)
class Level:
    index: int
    scale: float  # float32 value: exp2(l * log2 b) * Nmin - 1
    resolution: int  # vertices per side: ceil(scale) + 1
    size: int  # table entries: min(roundup8(resolution^D), 2^T)
    offset: int  # entries before this level
    dense: bool  # indexed x + y*res + ... instead of hashed

    def params(self, features: int) -> int:
        return self.size * features


def grid_levels(levels: int, dims: int, log2_table: int, base_resolution: int,
                per_level_scale: float) -> tuple[Level, ...]:  # fmt: skip
    """Every level of the grid, with offsets laid out as tiny-cuda-nn's ``GridEncodingTemplated``
    lays them out."""
    if not 1 <= levels <= MAX_LEVELS:
        raise InvalidArgument(f"a hash grid has 1..{MAX_LEVELS} levels, got {levels}")
    if dims not in MAX_BASES:
        raise InvalidArgument(f"a hash grid has 1..4 input dimensions, got {dims}")
    if not 1 <= log2_table <= MAX_LOG2_TABLE:
        raise InvalidArgument(f"log2 of the table size must be 1..{MAX_LOG2_TABLE}, got {log2_table}")
    if not 1 <= base_resolution <= 1 << 20:
        raise InvalidArgument(f"the base resolution must be 1..{1 << 20}, got {base_resolution}")
    b = np.float32(per_level_scale)
    if not (math.isfinite(float(b)) and 1.0 <= float(b) <= 64.0):
        raise InvalidArgument(f"the per-level scale must be within 1..64, got {per_level_scale}")
    log2_b = _f32("log2f", b)
    out, offset = [], 0
    for level in range(levels):
        scale = np.float32(_f32("exp2f", np.float32(level) * log2_b) * np.float32(base_resolution)) - np.float32(1)
        resolution = int(math.ceil(float(scale))) + 1
        full = resolution**dims
        size = min(-(-full // 8) * 8, 1 << log2_table)
        dense = full <= size and resolution <= MAX_BASES[dims]
        out.append(Level(level, float(scale), resolution, size, offset, dense))
        offset += size
    return tuple(out)


def grid_params(levels: tuple[Level, ...], features: int) -> int:
    return sum(level.params(features) for level in levels)


__all__ = ["Level", "MAX_BASES", "grid_levels", "grid_params", "growth_factor"]
