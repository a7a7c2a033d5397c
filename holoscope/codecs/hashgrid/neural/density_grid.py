"""The occupancy bitfield of a NeRF snapshot on the render device, looked up as instant-ngp's
``density_grid_occupied_at`` looks it up (hashgrid.md §6; the layout and its rebuild from fp16
density values are :mod:`holoscope.codecs.hashgrid.occupancy`).

A point's cascade is ``mip_from_pos`` (``frexp(max|p - 0.5|)``'s exponent + 1, clamped to
0..max_cascade); its cell in cascade m is ``trunc(((p - 0.5) * 2^-m + 0.5) * 128)``; a cell outside
0..127 is empty. Without a populated grid every point inside the aabb counts as occupied.
"""

from __future__ import annotations

import numpy as np
import torch

from holoscope.codecs.hashgrid.occupancy import GRID_SIZE, max_cascade, occupancy_of


class OccupancyGrid:
    """Occupancy of cascades 0..max_cascade, ``None`` bits meaning everything occupied."""

    def __init__(self, bits: np.ndarray | None, max_cascade: int, device: str | torch.device = "cpu") -> None:
        self.max_cascade = max_cascade
        self.bits = None if bits is None else torch.as_tensor(np.ascontiguousarray(bits), device=device).reshape(-1)
        if self.bits is not None and self.bits.numel() != (max_cascade + 1) * GRID_SIZE**3:
            raise ValueError(f"{self.bits.numel()} occupancy bits for {max_cascade + 1} cascade(s)")

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

    def occupied_at(self, points: torch.Tensor, mip: torch.Tensor) -> torch.Tensor:
        """Whether each NGP point [N, 3] is in an occupied cell of cascade ``mip`` [N]."""
        if self.bits is None:
            return torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
        scale = torch.ldexp(torch.ones_like(points[:, 0]), -mip.to(torch.int32))[:, None]
        cells = (((points - 0.5) * scale + 0.5) * GRID_SIZE).to(torch.int64)  # truncation, as C's float -> int
        inside = ((cells >= 0) & (cells < GRID_SIZE)).all(dim=-1)
        cells = cells.clamp(0, GRID_SIZE - 1)
        flat = ((mip * GRID_SIZE + cells[:, 0]) * GRID_SIZE + cells[:, 1]) * GRID_SIZE + cells[:, 2]
        return inside & self.bits[flat]

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each NGP point is in an occupied cell of its own cascade."""
        return self.occupied_at(points, self.cascade_of(points))


__all__ = ["OccupancyGrid"]
