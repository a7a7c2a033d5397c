"""Fit an image with a hash grid as instant-ngp's image mode does (``testbed_image.cu``
``train_image``, ``configs/image/base.json``), and return the snapshot instant-ngp opens.

Rules followed:

- Config: 16 levels x 2 features, 2^24 entries, base resolution 16, per-level scale from
  max(W, H) / 2; MLP 64 wide, 2 hidden layers, 3 outputs, no output activation; L2 loss.
- Training positions: instant-ngp's default ``Stratified`` random mode (a batch of 4^k
  positions is one uniform point per cell of a 2^k x 2^k grid over the image; other batch
  sizes are plain uniform), each snapped to its pixel centre (``snap_to_pixel_centers``, on
  by default), so the target is that pixel: u = (x + 0.5) / W, v = (y + 0.5) / H, row 0 on top.
- Targets are sRGB-encoded (``linear_colors = false``): :func:`..dataset.load_image_target`.
- Adam lr 1e-2, betas 0.9/0.99, eps 1e-15, L2 1e-6 on matrices; zero-gradient grid entries
  untouched (:class:`.train_common.TcnnAdam`). Batch 2^16 by default (instant-ngp: 2^18).
- The stored weights are the 0.95 EMA of the trained ones (``ema``), as instant-ngp's NeRF config
  has it; its image config has the ``Ema`` wrapper commented out. At 2^16 a batch, Adam at 1e-2
  spikes every few hundred steps (batch PSNR dropping by up to 5 dB for a step or two), and a
  budget can end on one: on albert after 900 steps the plain weights gave 40.13 dB, their EMA
  42.85 dB (0.9: 42.45, 0.99: 42.91). ``ema=None`` stores the plain weights.
- Deterministic for a seed on one device and thread count.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from holoscope.codecs.hashgrid.dataset import load_image_target
from holoscope.codecs.hashgrid.levels import grid_params
from holoscope.codecs.hashgrid.neural.network import render_image, run_mlp
from holoscope.codecs.hashgrid.neural.train_common import (EMA_DECAY, Clock, FitResult, Progress, TcnnAdam, WeightEma,
                                                            check_budget, check_device, init_params, psnr_of,
                                                            readable)  # fmt: skip
from holoscope.codecs.hashgrid.neural.train_encoding import grid_features
from holoscope.codecs.hashgrid.snapshot import parse_snapshot
from holoscope.codecs.hashgrid.writer import SnapshotConfig, snapshot_document
from holoscope.core import budget
from holoscope.core.errors import InvalidArgument

MAX_BATCH = 1 << 22


def image_config() -> SnapshotConfig:
    """instant-ngp's ``configs/image/base.json``."""
    return SnapshotConfig(mode="image", n_levels=16, features=2, log2_table=24, base_resolution=16, width=64,
                          hidden=2)  # fmt: skip


def training_positions(batch: int, width: int, height: int, generator: torch.Generator,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(pixel-centre positions [batch, 2] in [0, 1], flat pixel indices [batch]) of one batch."""
    uv = torch.rand((batch, 2), generator=generator, device=device)
    log2 = batch.bit_length() - 1
    if batch == 1 << log2 and log2 % 2 == 0:  # stratified: one point per cell of a side x side grid
        side = 1 << (log2 // 2)
        i = torch.arange(batch, device=device)
        cell = torch.stack([i % side, i // side], dim=1).float()
        uv = (uv + cell) / side
    size = torch.tensor([width, height], device=device)
    pixel = torch.minimum((uv * size).long(), size - 1)
    centres = (pixel.float() + 0.5) / size
    return centres, pixel[:, 1] * width + pixel[:, 0]


def fit_image(image: np.ndarray | str | Path, *, config: SnapshotConfig | None = None, steps: int,
              seconds: float | None = None, batch: int = 1 << 16, seed: int = 0, device: str = "cpu",
              progress: Progress | None = None, params_type: str = "__half",
              ema: float | None = EMA_DECAY) -> FitResult:  # fmt: skip
    """Fit ``image`` (float32 [H, W, 3] sRGB-encoded targets, or a picture file read with
    :func:`load_image_target`) for ``steps`` steps or ``seconds`` of training, whichever ends
    first. ``progress(done, steps, note)`` is called after each step, the note holding the batch
    loss and PSNR. The result's PSNR is the whole image rendered from the document's parameters
    (``params_type``, fp16 by default as instant-ngp saves) against the targets."""
    clock = Clock(None)
    steps, seconds = check_budget(steps, seconds)
    clock.limit = seconds
    if isinstance(image, (str, Path)):
        image = load_image_target(image)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidArgument(f"an image to fit is [H, W, 3], got {list(image.shape)}")
    if not np.issubdtype(image.dtype, np.floating) or not np.isfinite(image).all():
        raise InvalidArgument("an image to fit holds finite float samples")
    if ema is not None and not (isinstance(ema, float) and 0.0 <= ema < 1.0):
        raise InvalidArgument(f"ema must be a decay in [0, 1) or None, got {ema!r}")
    if type(batch) is not int or not 1 <= batch <= MAX_BATCH:
        raise InvalidArgument(f"batch must be 1..{MAX_BATCH}, got {batch!r}")
    config = config or image_config()
    if config.mode != "image":
        raise InvalidArgument(f"fit_image needs an image-mode config, not {config.mode!r}")
    dev = check_device(device)
    height, width = image.shape[:2]
    mlps, levels, features, _, _ = config.layout((width, height))
    n_matrix = sum(m.params for m in mlps)
    n_params = n_matrix + grid_params(levels, features)
    # parameters, gradient, two moments, step counts, plus the image and a batch's activations
    budget.require(n_params * 4 * 5 + image.size * 4 * 2 + batch * 4 * (len(levels) * features * 6 + 64 * 8),
                   what=f"training a {n_params:,}-parameter image model")  # fmt: skip

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    params = init_params(mlps, n_params - n_matrix, generator).to(dev).requires_grad_()
    adam = TcnnAdam(params, n_matrix)
    average = WeightEma(params, ema) if ema is not None else None
    shape = mlps[0]
    targets = torch.from_numpy(np.ascontiguousarray(image, np.float32)).reshape(-1, 3).to(dev)
    batch_gen = torch.Generator(device=dev).manual_seed(seed)

    history: list[tuple[int, float, float]] = []
    loss_value, done = math.nan, 0
    for step in range(steps):
        if clock.expired():
            break
        positions, pixels = training_positions(batch, width, height, batch_gen, dev)
        matrices = _matrices(params, shape)
        prediction = run_mlp(grid_features(positions, params[n_matrix:], levels, features), shape, matrices)
        loss = torch.mean((prediction - targets[pixels]) ** 2)
        loss.backward()
        adam.step()
        if average is not None:
            average.update(params)
        done = step + 1
        loss_value = float(loss.detach())
        history.append((done, clock.elapsed, psnr_of(loss_value)))
        if progress is not None:
            progress(done, steps, f"loss {loss_value:.5f} PSNR {psnr_of(loss_value):.2f} dB")

    values = (average.weights(params) if average is not None else params.detach()).cpu().numpy()
    document = readable(snapshot_document(config, values, params_type=params_type, training_step=done, loss=loss_value))
    psnr = image_psnr(document, image, device=dev)
    return FitResult(document, (width, height), psnr, done, clock.elapsed, n_params, loss_value, history)


def _matrices(params: torch.Tensor, shape) -> list[torch.Tensor]:
    out, at = [], 0
    for rows, cols in shape.matrices:
        out.append(params[at : at + rows * cols].view(rows, cols))
        at += rows * cols
    return out


def image_psnr(document: dict, image: np.ndarray, *, device: str | torch.device = "cpu") -> float:
    """PSNR (dB) of an image-mode document rendered at pixel centres (clamped to [0, 1], as
    :func:`.network.render_image` gives it) against ``image`` (also clamped)."""
    height, width = image.shape[:2]
    snapshot = parse_snapshot(document, image_size=(width, height))
    rendered = render_image(snapshot, width, height, device=device)
    mse = float(np.mean((rendered.astype(np.float64) - np.clip(image, 0, 1)) ** 2))
    return psnr_of(mse)


__all__ = ["fit_image", "image_config", "image_psnr", "load_image_target", "training_positions"]
