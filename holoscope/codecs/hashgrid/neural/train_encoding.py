"""The hash encoding for training: :mod:`.encoding`'s indices and weights, with a backward pass
that scatters all of a batch's gradient into the table at once.

Autograd through :func:`.encoding.encode` works, but its gathers run chunk by chunk, and each
chunk's backward allocates and fills a gradient the size of the whole table: for a 2^19-entry
NeRF grid that is most of a training step. Here the forward pass keeps each corner's table row
and weight ([L, 2^D, N], a few tens of MB for a batch), and the backward pass adds
``weight * dL/dfeature`` into one zero table with one ``scatter_add_``. Values are those of
:func:`.encoding.encode` (same indices, same weights multiplied in the same order).
"""

from __future__ import annotations

import torch

from holoscope.codecs.hashgrid.levels import Level
from holoscope.codecs.hashgrid.neural.encoding import encode, encoder


def _in_unit_cube(points: torch.Tensor) -> bool:
    lo, hi = torch.aminmax(points)
    return bool(lo >= 0) and bool(hi <= 1)  # NaN compares false: the exact path


class _GridFeatures(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points: torch.Tensor, table: torch.Tensor, enc) -> torch.Tensor:  # type: ignore[override]
        n, f, n_levels = points.shape[0], enc.features, len(enc.levels)
        with torch.no_grad():
            p = points.t().contiguous()[None] * enc.scale  # [L, D, N]
            p += 0.5
            cell = torch.floor(p)
            frac = p.sub_(cell)
            fast = enc.fast_ok and points.device.type == "cpu" and _in_unit_cube(points)
            idx = enc.indices(cell, fast)  # [L, K, N]
            w = enc.weights(frac)  # [L, K, N]
            values = table.view(-1, f).index_select(0, idx.view(-1)).view(n_levels, -1, n, f)
            out = (values * w[..., None]).sum(1)  # [L, N, F]
        ctx.save_for_backward(idx, w)
        ctx.shape = (n, f, n_levels, table.numel())
        return out.transpose(0, 1).reshape(n, n_levels * f)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        idx, w = ctx.saved_tensors
        n, f, n_levels, size = ctx.shape
        g = grad.reshape(n, n_levels, f).transpose(0, 1)  # [L, N, F]
        contrib = w[..., None] * g[:, None]  # [L, K, N, F]
        table_grad = torch.zeros((size // f, f), dtype=grad.dtype, device=grad.device)
        # a row index broadcast over the F columns: scatter_add_ is ~4x faster than index_add_ on CPU
        rows = idx.reshape(-1, 1).long().expand(-1, f)
        table_grad.scatter_add_(0, rows, contrib.reshape(-1, f))
        return None, table_grad.view(-1), None


def grid_features(points: torch.Tensor, table: torch.Tensor, levels: tuple[Level, ...],
                  features: int) -> torch.Tensor:  # fmt: skip
    """:func:`.encoding.encode`, differentiable w.r.t. ``table`` with one scatter a batch
    (points get no gradient)."""
    if not (torch.is_grad_enabled() and table.requires_grad) or points.shape[0] == 0:
        return encode(points, table, levels, features)
    enc = encoder(levels, features, points.shape[1], points.device)
    return _GridFeatures.apply(points, table, enc)


__all__ = ["grid_features"]
