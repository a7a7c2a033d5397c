"""The networks of an Instant-NGP snapshot in torch: tiny-cuda-nn's bias-free fully fused MLPs
read from ``params_binary`` (hashgrid.md §3), and image-mode evaluation.

An MLP's matrices are row-major ``[rows, columns]`` one after another (``torch.nn.Linear``
weights without biases); inputs are zero-padded to a multiple of 16, ReLU sits between layers
and there is no output activation; padded output rows are dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from holoscope.codecs.hashgrid.neural.encoding import encode
from holoscope.codecs.hashgrid.snapshot import MlpShape, Snapshot

CPU_CHUNK = 4096  # rows per pass on CPU: a 64-wide layer's activations (1 MiB) and the features stay in L2


def parameters(snapshot: Snapshot) -> torch.Tensor:
    """``params_binary`` as float32 (fp16 snapshots are widened)."""
    dtype = np.float16 if snapshot.params_type == "__half" else np.float32
    return torch.from_numpy(np.frombuffer(snapshot.params, dtype=dtype).astype(np.float32))


def mlp_matrices(snapshot: Snapshot, params: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Each MLP's weight matrices, in storage order (the MLPs come before the grid)."""
    out, at = {}, 0
    for mlp in snapshot.mlps:
        mats = []
        for rows, cols in mlp.matrices:
            mats.append(params[at : at + rows * cols].reshape(rows, cols))
            at += rows * cols
        out[mlp.name] = mats
    return out


def run_mlp(x: torch.Tensor, shape: MlpShape, matrices: list[torch.Tensor]) -> torch.Tensor:
    """[N, inputs] -> [N, outputs]."""
    grad = torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in matrices))
    if x.device.type != "cpu" or x.shape[0] <= CPU_CHUNK or grad:
        return _mlp(x, shape, matrices)
    out = x.new_empty((x.shape[0], shape.outputs))
    for start in range(0, x.shape[0], CPU_CHUNK):  # ~2.5x faster than the whole batch at once
        out[start : start + CPU_CHUNK] = _mlp(x[start : start + CPU_CHUNK], shape, matrices)
    return out


def _mlp(x: torch.Tensor, shape: MlpShape, matrices: list[torch.Tensor]) -> torch.Tensor:
    pad = matrices[0].shape[1] - x.shape[1]
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    for w in matrices[:-1]:
        x = torch.relu_(x @ w.T)
    return x @ matrices[-1][: shape.outputs].T  # the padded output rows are never computed


def render_image(snapshot: Snapshot, width: int, height: int, *, rows: slice | None = None,
                 device: str | torch.device = "cpu", batch: int = 1 << 16) -> np.ndarray:  # fmt: skip
    """An image-mode snapshot evaluated at ``width`` x ``height`` pixel centres (u = (x + 0.5) / W,
    v = (y + 0.5) / H, row 0 at the top) -> float32 [H, W, 3] as the network outputs it (sRGB
    encoded for instant-ngp's default ``linear_colors = false``), clamped to [0, 1]. ``rows``
    evaluates only those rows (what is visible)."""
    if snapshot.mode != "image":
        raise ValueError(f"render_image needs an image-mode snapshot, not {snapshot.mode}")
    params = parameters(snapshot).to(device)
    mats = {k: [m.to(device) for m in v] for k, v in mlp_matrices(snapshot, params).items()}
    table = params[snapshot.grid_offset :]
    ys = torch.arange(height, device=device)[rows if rows is not None else slice(None)]
    xs = torch.arange(width, device=device)
    v, u = torch.meshgrid((ys.float() + 0.5) / height, (xs.float() + 0.5) / width, indexing="ij")
    points = torch.stack([u.reshape(-1), v.reshape(-1)], dim=1)
    shape = snapshot.mlps[0]
    out = torch.empty((points.shape[0], 3), device=device)
    if torch.device(device).type == "cpu":  # encode and MLP a cache-sized chunk at a time
        batch = min(batch, CPU_CHUNK)
    with torch.inference_mode():
        for start in range(0, points.shape[0], batch):
            features = encode(points[start : start + batch], table, snapshot.levels, snapshot.features)
            out[start : start + batch] = run_mlp(features, shape, mats[shape.name])
    return out.clamp_(0, 1).reshape(len(ys), width, 3).cpu().numpy()


__all__ = ["mlp_matrices", "parameters", "render_image", "run_mlp"]
