"""The occupancy bitfield of a NeRF snapshot on the render device, looked up as instant-ngp's
``density_grid_occupied_at`` looks it up (hashgrid.md §6; the layout and its rebuild from fp16
density values are :mod:`holoscope.codecs.hashgrid.occupancy`).

A point's cascade is ``mip_from_pos`` (``frexp(max|p - 0.5|)``'s exponent + 1, clamped to
0..max_cascade); its cell in cascade m is ``trunc(((p - 0.5) * 2^-m + 0.5) * 128)``; a cell outside
0..127 is empty. Without a populated grid every point inside the aabb counts as occupied.

For skipping empty space in large strides, each empty cell also gets its *empty radius*: an r
(up to 112) such that the cube of (2r + 1)^3 cells around it in its cascade is empty. Inside a
cascade that another one encloses, cells past the grid's edge count as occupied (points there
are looked up in the coarser cascade); past the edge of the outermost cascade they count as
empty (points there are outside every grid, hence empty). The radius is exact up to 7 and a
lower bound beyond (from the same search on the grid pooled 2x, 4x, 8x and 16x). Its emptiness is
that of the grid with every cascade OR-ed with the finer ones pooled into it (as instant-ngp's
bitfield is), so every point inside the cube lies in an empty cell of its own cascade.

The march looks cells up in one flat uint8 table, :attr:`OccupancyGrid.code`, of 130^3 cells a
cascade (the grid and a border of outside cells): 0 for an occupied cell, 1 + the empty radius for
an empty one, 1 for the border (empty, radius 0).
"""

from __future__ import annotations

import numpy as np
import torch

from holoscope.codecs.hashgrid.occupancy import GRID_SIZE, max_cascade, occupancy_of

MAX_RADIUS = 15  # empty_radius's default search
SKIP_RADIUS = 7  # skip_radius's search at each pooling level
POOL_LEVELS = 4  # the search also runs on the grid pooled 2x, 4x, 8x, 16x: radii up to 16 * 7
PAD = GRID_SIZE + 2  # the code table's cells per axis: the grid and one outside cell either side


def _dilate(occupied: np.ndarray, closed: np.ndarray | None = None) -> np.ndarray:
    """One cell of 26-neighbour dilation of [C, n, n, n] bools; outside the grid counts as
    occupied in the cascades ``closed`` marks (all by default)."""
    out = occupied
    for axis in (1, 2, 3):
        grown = out.copy()
        lower = [slice(None)] * 4
        upper = [slice(None)] * 4
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        grown[tuple(lower)] |= out[tuple(upper)]
        grown[tuple(upper)] |= out[tuple(lower)]
        edge = [slice(None) if closed is None else np.flatnonzero(closed)] + [slice(None)] * 3
        for end in (0, -1):  # the grid's faces touch the outside, which counts as occupied
            edge[axis] = end
            grown[tuple(edge)] = True
        out = grown
    return out


def empty_radius(occupied: np.ndarray, limit: int = MAX_RADIUS, closed: np.ndarray | None = None) -> np.ndarray:
    """uint8 [C, n, n, n]: for each empty cell the largest r <= limit with the (2r + 1)^3 cube of
    cells around it empty (0 for occupied cells too); outside the grid counts as occupied in the
    cascades ``closed`` marks (all by default), as empty in the others."""
    radius = np.zeros(occupied.shape, np.uint8)
    grown = occupied
    for _ in range(limit):
        grown = _dilate(grown, closed)
        free = ~grown
        if not free.any():
            break
        radius += free
    return radius


def _pool2(occupied: np.ndarray) -> np.ndarray:
    """[..., n, n, n] bools OR-ed over 2x2x2 blocks -> [..., n/2, n/2, n/2]."""
    out = occupied[..., 0::2, :, :] | occupied[..., 1::2, :, :]
    out = out[..., 0::2, :] | out[..., 1::2, :]
    return out[..., 0::2] | out[..., 1::2]


def pooled_closure(bits: np.ndarray) -> np.ndarray:
    """Every cascade m >= 1 OR-ed with cascade m - 1 (already so closed) pooled 2x2x2 into its central
    64^3 cells (``bitfield_max_pool``): a no-op on instant-ngp's own bitfields."""
    out = bits.copy()
    half, quarter = GRID_SIZE // 2, GRID_SIZE // 4
    for m in range(1, out.shape[0]):
        out[m, quarter : quarter + half, quarter : quarter + half, quarter : quarter + half] |= _pool2(out[m - 1])
    return out


def skip_radius(occupied: np.ndarray, levels: int = POOL_LEVELS) -> np.ndarray:
    """uint8 [C, 128, 128, 128]: an empty radius of every cell of a cascaded grid (the largest up
    to 7, else twice that of its block of the grid pooled 2x, when larger, recursively): outside
    the grid counts as occupied, except around the outermost cascade. ``occupied`` is pooled-closed."""
    closed = np.arange(occupied.shape[0]) < occupied.shape[0] - 1
    grids = [occupied]
    for _ in range(levels):
        grids.append(_pool2(grids[-1]))
    radius = None
    for grid in reversed(grids):  # coarsest first: a block's cube of radius r holds its cells' of 2r
        own = empty_radius(grid, SKIP_RADIUS, closed)
        if radius is not None:
            c, n = radius.shape[:2]
            up = np.broadcast_to((radius * 2)[:, :, None, :, None, :, None], (c, n, 2, n, 2, n, 2))
            own = np.maximum(own, up.reshape(own.shape))
        radius = own
    return radius


class OccupancyGrid:
    """Occupancy of cascades 0..max_cascade, ``None`` bits meaning everything occupied."""

    def __init__(self, bits: np.ndarray | None, max_cascade: int, device: str | torch.device = "cpu") -> None:
        self.max_cascade = max_cascade
        self.bits = self.radius = self.code = self.bounds = None
        if bits is not None:
            bits = np.ascontiguousarray(bits, bool).reshape(-1, GRID_SIZE, GRID_SIZE, GRID_SIZE)
            if bits.shape[0] != max_cascade + 1:
                raise ValueError(f"{bits.shape[0]} cascade(s) of occupancy bits for max_cascade {max_cascade}")
            self.bits = torch.as_tensor(bits, device=device).reshape(-1)
            radius = skip_radius(pooled_closure(bits))
            self.radius = torch.as_tensor(radius, device=device).reshape(-1)
            code = np.ones((bits.shape[0], PAD, PAD, PAD), np.uint8)  # the border: outside, empty, radius 0
            code[:, 1:-1, 1:-1, 1:-1] = np.where(bits, 0, radius + 1)
            self.code = torch.as_tensor(code, device=device).reshape(-1)
            self.bounds = occupied_bounds(bits)

    @classmethod
    def of(cls, snapshot, device: str | torch.device = "cpu") -> "OccupancyGrid":
        return cls(occupancy_of(snapshot), max_cascade(snapshot.aabb_scale), device)

    @property
    def everything(self) -> bool:
        return self.bits is None

    def cascade_of(self, points: torch.Tensor) -> torch.Tensor:
        """``mip_from_pos`` of NGP points [N, 3] -> int64 [N]."""
        _, exponent = torch.frexp((points - 0.5).abs().amax(dim=-1))
        return (exponent.to(torch.int64) + 1).clamp(0, self.max_cascade)

    @staticmethod
    def cells(points: torch.Tensor, mip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cells [N, 3] clamped to the grid, flat index [N] into [cascade, x, y, z], inside [N]) of
        NGP points in cascade ``mip``."""
        scale = torch.ldexp(torch.ones_like(points[:, 0]), -mip.to(torch.int32))[:, None]
        cells = (((points - 0.5) * scale + 0.5) * GRID_SIZE).to(torch.int64)  # truncation, as C's float -> int
        inside = ((cells >= 0) & (cells < GRID_SIZE)).all(dim=-1)
        cells = cells.clamp(0, GRID_SIZE - 1)
        flat = ((mip * GRID_SIZE + cells[:, 0]) * GRID_SIZE + cells[:, 1]) * GRID_SIZE + cells[:, 2]
        return cells, flat, inside

    def occupied_at(self, points: torch.Tensor, mip: torch.Tensor) -> torch.Tensor:
        """Whether each NGP point [N, 3] is in an occupied cell of cascade ``mip`` [N]."""
        if self.bits is None:
            return torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
        _, flat, inside = self.cells(points, mip)
        return inside & self.bits[flat]

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each NGP point is in an occupied cell of its own cascade."""
        return self.occupied_at(points, self.cascade_of(points))

    def lookup(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The march's lookup of NGP points given axis first, [3, ...] (the grid populated):
        (code [...] from :attr:`code`, cell coordinates x [3, ...] in the point's cascade (its cell
        is ``trunc(x)``; the arithmetic of :meth:`cells`), the cell clamped to -1..128 [3, ...]
        (float), the cascade [...] int32 or None with one cascade)."""
        q = points - 0.5
        if self.max_cascade == 0:
            mip = None
            x = torch.add(GRID_SIZE / 2, q, alpha=GRID_SIZE)  # ((p - 0.5) + 0.5) * 128, exactly
        else:
            _, exponent = torch.frexp(torch.maximum(torch.maximum(q[0].abs(), q[1].abs()), q[2].abs()))
            mip = (exponent + 1).clamp_(0, self.max_cascade)
            x = q * torch.ldexp(torch.full_like(q[0], float(GRID_SIZE)), -mip) + GRID_SIZE / 2  # 2^-m exactly
        cell = x.to(torch.int32).clamp_(-1, GRID_SIZE)  # truncation; -1 and 128: the border (NaN too)
        index = (cell[0] * PAD + cell[1]) * PAD + cell[2] + (PAD * PAD + PAD + 1)
        if mip is not None:
            index = index + mip * PAD**3
        code = self.code.index_select(0, index.reshape(-1)).reshape(index.shape)
        return code, x, cell.to(x.dtype), mip


def occupied_bounds(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) NGP corners of a box that holds every point a lookup finds occupied (cells are
    looked up by truncation, so a cell 0 also takes in the cell below it), a margin of 1e-3 of a
    cascade's cell wide; None when nothing is occupied."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for m in range(bits.shape[0]):
        size = 2.0**m / GRID_SIZE
        corner = 0.5 - size * GRID_SIZE / 2
        for axis in range(3):
            occupied = np.flatnonzero(bits[m].any(axis=tuple(a for a in range(3) if a != axis)))
            if occupied.size:
                first, last = int(occupied[0]), int(occupied[-1])
                lo[axis] = min(lo[axis], corner + (first - (first == 0) - 1e-3) * size)
                hi[axis] = max(hi[axis], corner + (last + 1 + 1e-3) * size)
    return (lo, hi) if np.all(lo <= hi) else None


__all__ = ["OccupancyGrid", "empty_radius", "occupied_bounds", "pooled_closure", "skip_radius"]
