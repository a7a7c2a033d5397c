"""A NeRF snapshot's radiance field in torch, with instant-ngp's inference semantics
(hashgrid.md §6): the position grid sees ``(p - aabb.min) / aabb.diag`` in [0, 1]^3, the density
MLP's first output is log-density (density = exp), and the RGB MLP reads the density MLP's 16
outputs followed by the degree-4 spherical harmonics (16 terms) of the unit view direction in
NGP axes; colour is sigmoid (LDR, sRGB-encoded) or exp of the clamped output (HDR).

The field works on one flat parameter tensor in tiny-cuda-nn order, so training optimises the
same tensor a snapshot stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from holoscope.codecs.hashgrid.levels import Level
from holoscope.codecs.hashgrid.neural.encoding import encode
from holoscope.codecs.hashgrid.neural.network import run_mlp
from holoscope.codecs.hashgrid.snapshot import MlpShape, Snapshot

# tiny-cuda-nn sh_enc (common_device.h) up to degree 4 (16 terms), float32 constants
C0 = 0.28209479177387814
C1 = 0.48860251190291987


def sh4(d: torch.Tensor) -> torch.Tensor:
    """Degree-4 real spherical harmonics of unit directions [N, 3] -> [N, 16], in
    tiny-cuda-nn's order and signs."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xy, xz, yz, x2, y2, z2 = x * y, x * z, y * z, x * x, y * y, z * z
    return torch.stack([
        torch.full_like(x, C0),
        -C1 * y, C1 * z, -C1 * x,
        1.0925484305920792 * xy, -1.0925484305920792 * yz, 0.94617469575755997 * z2 - 0.31539156525251999,
        -1.0925484305920792 * xz, 0.54627421529603959 * x2 - 0.54627421529603959 * y2,
        0.59004358992664352 * y * (-3.0 * x2 + y2), 2.8906114426405538 * xy * z,
        0.45704579946446572 * y * (1.0 - 5.0 * z2), 0.3731763325901154 * z * (5.0 * z2 - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * z2), 1.4453057213202769 * z * (x2 - y2),
        0.59004358992664352 * x * (-x2 + 3.0 * y2),
    ], dim=1)  # fmt: skip


@dataclass
class FieldLayout:
    """Where each part of a NeRF's flat parameters is (tiny-cuda-nn order: density MLP, RGB
    MLP, grid)."""

    mlps: tuple[MlpShape, ...]
    levels: tuple[Level, ...]
    features: int
    aabb_scale: int
    is_hdr: bool = False

    @classmethod
    def of(cls, snapshot: Snapshot) -> "FieldLayout":
        dataset = ((snapshot.document.get("snapshot") or {}).get("nerf") or {}).get("dataset") or {}
        return cls(snapshot.mlps, snapshot.levels, snapshot.features, snapshot.aabb_scale,
                   bool(dataset.get("is_hdr", False)) if isinstance(dataset, dict) else False)  # fmt: skip

    @property
    def aabb(self) -> tuple[float, float]:
        """(min, max) of the cube the grid covers, per axis, in NGP units."""
        s = float(min(self.aabb_scale, 128))
        return 0.5 - s / 2, 0.5 + s / 2


class NerfField:
    """Density and colour at NGP-space points; ``params`` is the flat tensor (float32)."""

    def __init__(self, layout: FieldLayout, params: torch.Tensor) -> None:
        if len(layout.mlps) != 2:
            raise ValueError("a NeRF field has a density and an RGB MLP")
        self.layout = layout
        self.params = params
        self.density_mlp, self.rgb_mlp = layout.mlps
        at, self.matrices = 0, []
        for mlp in layout.mlps:
            mats = []
            for rows, cols in mlp.matrices:
                mats.append(params[at : at + rows * cols].view(rows, cols))
                at += rows * cols
            self.matrices.append(mats)
        self.table = params[at:]
        self.lo, hi = layout.aabb
        self.extent = hi - self.lo

    def unit(self, points: torch.Tensor) -> torch.Tensor:
        """NGP-space points -> the grid's [0, 1]^3."""
        return (points - self.lo) / self.extent

    def raw_density(self, points: torch.Tensor) -> torch.Tensor:
        """The density MLP's 16 outputs at NGP-space points [N, 3]."""
        features = encode(self.unit(points), self.table, self.layout.levels, self.layout.features)
        return run_mlp(features, self.density_mlp, self.matrices[0])

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.raw_density(points)[:, 0])

    def colour(self, raw_density: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """RGB [N, 3] from the density MLP's outputs and unit view directions (NGP axes)."""
        rgb = run_mlp(torch.cat([raw_density, sh4(dirs)], dim=1), self.rgb_mlp, self.matrices[1])
        return torch.exp(rgb.clamp(-10, 10)) if self.layout.is_hdr else torch.sigmoid(rgb)

    def __call__(self, points: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(density [N], rgb [N, 3]) at NGP-space points seen along ``dirs``."""
        raw = self.raw_density(points)
        return torch.exp(raw[:, 0]), self.colour(raw, dirs)


__all__ = ["FieldLayout", "NerfField", "sh4"]
