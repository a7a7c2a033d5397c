"""tiny-cuda-nn's multiresolution hash encoding in torch (hashgrid.md §5), vectorised per level:
every corner of every point of a level is gathered at once, no per-sample Python.

Per level l: ``p = x * scale_l + 0.5``, ``cell = floor(p)``, ``frac = p - cell``; the 2^D corners
``cell + bits(k)`` are indexed densely (``x + y*res + z*res^2``) on dense levels, else hashed
with the CoherentPrime hash ``x*1 ^ y*2654435761 ^ z*805459861`` in wrapping uint32 arithmetic;
either index is taken mod the level's size. Corner features are blended n-linearly. The output
is level-major, ``[N, L*F]``, as the MLP that follows expects. ``x * scale + 0.5`` is two
float32 roundings here; where CUDA fuses it into one FMA a point within an ulp of a cell
boundary can land in the neighbouring cell (a continuity-preserving difference of ~1e-7).
"""

from __future__ import annotations

import torch

from holoscope.codecs.hashgrid.levels import Level

PRIMES = (1, 2654435761, 805459861, 3674653429)
MASK32 = 0xFFFFFFFF


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


def encode(points: torch.Tensor, table: torch.Tensor, levels: tuple[Level, ...], features: int) -> torch.Tensor:
    """``points`` [N, D] in [0, 1] (float32) through the grid whose parameters are ``table``
    (all levels back to back, entry-major: ``(offset + index) * F + f``) -> [N, L*F] float32."""
    n, dims = points.shape
    grid = table.reshape(-1, features)
    bits = torch.tensor([[(k >> d) & 1 for d in range(dims)] for k in range(1 << dims)], dtype=torch.int64,
                        device=points.device)  # fmt: skip
    out = []
    for level in levels:
        p = points * torch.tensor(level.scale, dtype=torch.float32) + 0.5
        cell = torch.floor(p)
        frac = p - cell
        corners = cell.to(torch.int64)[:, None, :] + bits[None]  # [N, 2^D, D]
        index = corner_index(corners, level) + level.offset
        values = grid[index]  # [N, 2^D, F]
        weights = torch.where(bits[None].bool(), frac[:, None, :], 1 - frac[:, None, :]).prod(-1)  # [N, 2^D]
        out.append((values * weights[..., None]).sum(1))
    return torch.cat(out, dim=1)


__all__ = ["PRIMES", "corner_index", "encode"]
