"""The occupancy bitfield of a NeRF snapshot on the render device, looked up as instant-ngp's
``density_grid_occupied_at`` looks it up (hashgrid.md §6; the layout and its rebuild from fp16
density values are :mod:`holoscope.codecs.hashgrid.occupancy`).

A point's cascade is ``mip_from_pos`` (``frexp(max|p - 0.5|)``'s exponent + 1, clamped to
0..max_cascade); its cell in cascade m is ``trunc(((p - 0.5) * 2^-m + 0.5) * 128)``; a cell outside
0..127 is empty. Without a populated grid every point inside the aabb counts as occupied.

For skipping empty space in large strides, each empty cell also gets its *empty radius*: the
largest r (up to 15) such that the cube of (2r + 1)^3 cells around it in its cascade is empty
(cells past the grid's edge count as occupied). Since a cascade's bit includes the finer
cascade pooled into it, every point inside that cube lies in an empty cell of its own cascade.
"""

from __future__ import annotations

import numpy as np
import torch

from holoscope.codecs.hashgrid.occupancy import GRID_SIZE, max_cascade, occupancy_of

MAX_RADIUS = 15


def _dilate(occupied: np.ndarray) -> np.ndarray:
    """One cell of 26-neighbour dilation of [C, n, n, n] bools, outside the grid occupied."""
    out = occupied
    for axis in (1, 2, 3):
        grown = out.copy()
        lower = [slice(None)] * 4
        upper = [slice(None)] * 4
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        grown[tuple(lower)] |= out[tuple(upper)]
        grown[tuple(upper)] |= out[tuple(lower)]
        edge = [slice(None)] * 4
        for end in (0, -1):  # the grid's faces touch the outside, which counts as occupied
            edge[axis] = end
            grown[tuple(edge)] = True
        out = grown
    return out


def empty_radius(occupied: np.ndarray, limit: int = MAX_RADIUS) -> np.ndarray:
    """uint8 [C, n, n, n]: for each empty cell the largest r <= limit with the (2r + 1)^3 cube of
    cells around it empty (0 for occupied cells too)."""
    radius = np.zeros(occupied.shape, np.uint8)
    grown = occupied
    for _ in range(limit):
        grown = _dilate(grown)
        free = ~grown
        if not free.any():
            break
        radius += free
    return radius


class OccupancyGrid:
    """Occupancy of cascades 0..max_cascade, ``None`` bits meaning everything occupied."""

    def __init__(self, bits: np.ndarray | None, max_cascade: int, device: str | torch.device = "cpu") -> None:
        self.max_cascade = max_cascade
        self.bits = self.radius = None
        if bits is not None:
            bits = np.ascontiguousarray(bits, bool).reshape(-1, GRID_SIZE, GRID_SIZE, GRID_SIZE)
            if bits.shape[0] != max_cascade + 1:
                raise ValueError(f"{bits.shape[0]} cascade(s) of occupancy bits for max_cascade {max_cascade}")
            self.bits = torch.as_tensor(bits, device=device).reshape(-1)
            self.radius = torch.as_tensor(empty_radius(bits), device=device).reshape(-1)

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


__all__ = ["OccupancyGrid"]
