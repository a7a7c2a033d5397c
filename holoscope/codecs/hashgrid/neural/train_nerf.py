"""Train a NeRF on a transforms.json dataset as instant-ngp's ``train_nerf`` does
(``testbed_nerf.cu``, ``configs/nerf/base.json``; hashgrid.md §4, §6), in torch, and return the
snapshot instant-ngp opens (density grid included).

Rules followed:

- Network: hash grid (8 levels x 4 features, 2^19 entries by default; :func:`nerf_config`),
  density MLP 64 x 1 hidden whose first output is log-density, RGB MLP 64 x 2 hidden on the
  density MLP's 16 outputs and degree-4 spherical harmonics of the view direction; sigmoid
  colour (sRGB-encoded, ``linear_colors = false``) (:class:`.field.NerfField`).
- A batch: ``rays`` rays, ray i from training view ``i * n / rays`` (each view gets an equal
  share, as ``image_idx`` assigns them), at a random pixel's centre; rays marched through the
  occupancy grid (:mod:`.train_rays`, :mod:`.train_grid`); samples after ``T < 1e-4``
  dropped; rays without samples skipped.
- Random background colour per ray (``random_bg_color``, on by default): uniform sRGB in
  [0, 1)^3 behind the ray's remaining transmittance, and behind the target's alpha.
- Loss: Huber (delta 0.1, / 5) summed over channels, averaged over the batch's rays; plus
  instant-ngp's two density nudges (``compute_loss_kernel_train_nerf``), scaled as its fp16
  build applies them (/128): raise negative log-densities while the grid's mean density is
  below 0.01, lower log-densities above -10 within 0.1 of the camera.
- Adam (:class:`.train_common.TcnnAdam`); the stored weights are the 0.95 EMA of the trained
  ones (``Ema`` in the config), as tiny-cuda-nn serialises its inference parameters.
- Batch size: given ``samples``, rays per batch adapt after each step so that the compacted
  samples approach it (``rays *= samples / measured``, rounded up to a multiple of 16 where
  instant-ngp rounds to 256 for its 2^18, at most 2^18); at most 16x ``samples`` are marched
  (``max_samples``) and ``samples`` trained (whole rays, in a random order), as instant-ngp
  bounds its buffers.
- Density grid (:mod:`.train_grid`): instant-ngp's first update evaluates every cell; then an
  update every ``clamp(step / 16, 1, 16)`` steps, of ``grid_samples`` points (see there for
  the CPU sweep and decay).
- Density is ``exp`` of the log-density clamped at 15 (past which alpha is 1 anyway).
- Held out: every ``holdout_every``-th frame (0, 8, 16 ...) is not trained on; the result's PSNR
  is their mean, rendered from the stored document (fp16 weights, fp16 density grid rebuilt
  into a bitfield as a reader does) by the inference renderer (:mod:`.march`: instant-ngp's
  rules) through each view's own intrinsics and lens, over black.
- Deterministic for a seed on one device and thread count.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from holoscope.codecs.hashgrid import occupancy as occ
from holoscope.codecs.hashgrid.dataset import NerfDataset
from holoscope.codecs.hashgrid.neural.field import FieldLayout, NerfField
from holoscope.codecs.hashgrid.neural.network import run_mlp
from holoscope.codecs.hashgrid.neural.train_common import (Clock, FitResult, Progress, TcnnAdam, WeightEma,
                                                            check_budget, check_device, huber_ngp, init_params,
                                                            psnr_of, readable)  # fmt: skip
from holoscope.codecs.hashgrid.neural.train_encoding import grid_features
from holoscope.codecs.hashgrid.neural.train_grid import DECAY as GRID_DECAY
from holoscope.codecs.hashgrid.neural.train_grid import DensityGrid, update_interval
from holoscope.codecs.hashgrid.neural.train_rays import (TRAIN_MIN_TRANSMITTANCE, CameraSet, Stepping, aabb_intersect,
                                                          composite, cone_angle_for, march, transmittance)  # fmt: skip
from holoscope.codecs.hashgrid.snapshot import parse_snapshot
from holoscope.codecs.hashgrid.writer import NerfExtras, SnapshotConfig, snapshot_document
from holoscope.core import budget
from holoscope.core.errors import InvalidArgument

MAX_RAYS = 1 << 18
BATCH_GRANULARITY = 16  # instant-ngp: 256, for batches 8x larger than a CPU's
MAX_DENSITY_LOG = 15.0  # exp(15) * dt saturates alpha; clamping keeps exp finite
REG_SCALE = 1.0 / 128  # instant-ngp's fp16 loss scale, which its density nudges are not multiplied by
NEAR_DISTANCE = 0.1
EVAL_RAYS = 1 << 14


def nerf_config(aabb_scale: int = 1, *, log2_table: int = 19, levels: int = 8, features: int = 4) -> SnapshotConfig:
    """instant-ngp's current NeRF config (``base.json``: L8 F4 T2^19); ``log2_table`` 15..17
    suits CPU budgets (``small.json`` is 2^15)."""
    return SnapshotConfig(mode="nerf", n_levels=levels, features=features, log2_table=log2_table, base_resolution=16,
                          width=64, hidden=1, rgb_width=64, rgb_hidden=2, aabb_scale=aabb_scale)  # fmt: skip


def split_views(n: int, holdout_every: int) -> tuple[list[int], list[int]]:
    """(training views, held-out views): every ``holdout_every``-th view from 0 is held out
    (none when 0, or when only one view)."""
    if holdout_every <= 0 or n < 2:
        return list(range(n)), []
    held = [i for i in range(n) if i % holdout_every == 0]
    return [i for i in range(n) if i % holdout_every], held


def fit_nerf(dataset: NerfDataset, *, config: SnapshotConfig | None = None, steps: int, seconds: float | None = None,
             rays: int = 4096, samples: int | None = 1 << 15, seed: int = 0, device: str = "cpu",
             progress: Progress | None = None, holdout_every: int = 8, grid_samples: int = 1 << 18,
             params_type: str = "__half", eval_views: int | None = None) -> FitResult:  # fmt: skip
    """Train on ``dataset`` for ``steps`` steps or ``seconds`` of training, whichever ends first
    (see the module doc). ``rays`` is the first batch's ray count (fixed when ``samples`` is
    None); ``samples`` the compacted samples a step aims at (instant-ngp: 2^18; 2^15 suits a
    CPU); ``grid_samples`` the points each density-grid update evaluates. ``config`` defaults to
    :func:`nerf_config`; its aabb_scale is the dataset's. ``progress(done, steps, note)`` after
    each step, the note holding the loss and the batch's PSNR. ``eval_views`` scores only that
    many of the held-out views (evenly spread; rendering one costs about as much as 100 steps,
    far more for a barely trained model whose rays never turn opaque); None scores all."""
    clock = Clock(None)
    steps, seconds = check_budget(steps, seconds)
    clock.limit = seconds
    for name, value, top in (("rays", rays, MAX_RAYS), ("grid_samples", grid_samples, 1 << 24)):
        if type(value) is not int or not 1 <= value <= top:
            raise InvalidArgument(f"{name} must be 1..{top:,}, got {value!r}")
    if samples is not None and (type(samples) is not int or not 1 <= samples <= 1 << 22):
        raise InvalidArgument(f"samples must be 1..{1 << 22:,} or None, got {samples!r}")
    if eval_views is not None and (type(eval_views) is not int or eval_views < 0):
        raise InvalidArgument(f"eval_views must be a count (0 for none) or None, got {eval_views!r}")
    if type(holdout_every) is not int or holdout_every < 0:
        raise InvalidArgument(f"holdout_every must be 0 (none) or a positive integer, got {holdout_every!r}")
    config = dataclasses.replace(config or nerf_config(), aabb_scale=dataset.aabb_scale)
    if config.mode != "nerf":
        raise InvalidArgument(f"fit_nerf needs a NeRF config, not {config.mode!r}")
    dev = check_device(device)
    train_ids, held_ids = split_views(len(dataset), holdout_every)

    mlps, levels, features, _, aabb_scale = config.layout()
    n_matrix = sum(m.params for m in mlps)
    n_params = n_matrix + sum(lv.size for lv in levels) * features
    cascades = occ.max_cascade(aabb_scale) + 1
    budget.require(n_params * 4 * 7 + cascades * occ.GRID_CELLS * 16 + dataset.images.nbytes,
                   what=f"training a {n_params:,}-parameter NeRF")  # fmt: skip
    layout = FieldLayout(mlps, levels, features, aabb_scale)

    torch.manual_seed(seed)
    init_gen = torch.Generator().manual_seed(seed)
    params = init_params(mlps, n_params - n_matrix, init_gen).to(dev).requires_grad_()
    adam, ema = TcnnAdam(params, n_matrix), WeightEma(params)
    gen = torch.Generator(device=dev).manual_seed(seed + 1)
    grid_gen = torch.Generator(device=dev).manual_seed(seed + 2)

    cameras = CameraSet([dataset.frames[i] for i in train_ids], dataset.width, dataset.height, dev)
    images = torch.from_numpy(dataset.images[train_ids]).to(dev).reshape(len(train_ids), -1, 4)
    grid = DensityGrid(aabb_scale, dev)
    grid.mark_seen(cameras, grid_gen)
    lo, hi = layout.aabb
    stepping = Stepping(cone_angle_for(aabb_scale))

    def density(points: torch.Tensor) -> torch.Tensor:
        field = NerfField(layout, params.detach())
        return torch.cat([torch.exp(field.raw_density(points[i : i + (1 << 16)])[:, 0].clamp(max=MAX_DENSITY_LOG))
                          for i in range(0, points.shape[0], 1 << 16)])  # fmt: skip

    grid.evaluate_all(density, grid_gen)  # instant-ngp's first update: every cell
    history: list[tuple[int, float, float]] = []
    n_rays, loss_value, done = rays, math.nan, 0
    for step in range(steps):
        if clock.expired():
            break
        if step and step % update_interval(step) == 0:
            if step < 256:  # instant-ngp evaluates every cell: decay as much per evaluation of a cell
                uniform, decay = grid_samples, GRID_DECAY ** min(1.0, grid_samples / max(1, grid.n_seen))
            else:
                uniform, decay = grid_samples // 2, GRID_DECAY
            grid.update(density, uniform, grid_samples - uniform, grid_gen, decay=decay)
        batch = _train_batch(params, layout, cameras, images, grid, stepping, lo, hi, n_rays, samples, gen)
        if batch is None:  # no ray met an occupied cell: nothing to learn from this batch
            done = step + 1
            if progress is not None:
                progress(done, steps, "no samples")
            continue
        loss, photometric, mse, measured = batch
        loss.backward()
        adam.step()
        ema.update(params)
        done = step + 1
        loss_value = float(photometric.detach()) / 3  # per channel, as instant-ngp reports it
        history.append((done, clock.elapsed, psnr_of(mse)))
        if samples is not None and measured:
            n_rays = int(n_rays * samples / measured)
            n_rays = min(max(BATCH_GRANULARITY, -(-n_rays // BATCH_GRANULARITY) * BATCH_GRANULARITY), MAX_RAYS)
        if progress is not None:
            progress(done, steps, f"loss {loss_value:.5f} PSNR {psnr_of(mse):.2f} dB, {measured} samples, "
                                  f"occupied {100 * grid.occupied_fraction():.1f}%")  # fmt: skip

    weights = ema.weights(params).cpu().numpy()
    view = train_ids[0] if train_ids else 0
    extras = NerfExtras(density_grid=grid.values.cpu().numpy(), dataset_scale=dataset.transform.scale,
                        dataset_offset=dataset.transform.offset, up=dataset.up, is_hdr=False,
                        images=[_image_meta(dataset, i) for i in range(len(dataset))])  # fmt: skip
    frame = dataset.frames[view]
    document = readable(snapshot_document(
        config, weights, params_type=params_type, nerf=extras, camera_matrix=frame.c2w, fov_axis=1,
        relative_focal_length=(frame.focal[0] / dataset.height, frame.focal[1] / dataset.height),
        training_step=done, loss=loss_value))  # fmt: skip
    seconds_spent = clock.elapsed
    scored = held_ids
    if eval_views is not None and eval_views < len(held_ids):
        scored = [held_ids[int(k * len(held_ids) / eval_views)] for k in range(eval_views)]
    view_psnr = [psnr_of(_mse(render_view(document, dataset, i, device=dev), dataset, i)) for i in scored]
    psnr = float(np.mean(view_psnr)) if view_psnr else math.nan
    return FitResult(document, (dataset.width, dataset.height), psnr, done, seconds_spent, n_params, loss_value,
                     history, view_psnr, scored)  # fmt: skip


def _train_batch(params, layout, cameras: CameraSet, images, grid: DensityGrid, stepping: Stepping, lo: float,
                 hi: float, n_rays: int, target: int | None, gen: torch.Generator):  # fmt: skip
    """(loss to train on, its photometric part, batch MSE, compacted samples before the cap) of one
    batch, or None when no ray has a sample."""
    dev = params.device
    n_views, width, height = len(cameras), cameras.width, cameras.height
    view = torch.div(torch.arange(n_rays, device=dev) * n_views, n_rays, rounding_mode="floor")
    px = torch.randint(width, (n_rays,), generator=gen, device=dev)
    py = torch.randint(height, (n_rays,), generator=gen, device=dev)
    background = torch.rand((n_rays, 3), generator=gen, device=dev)
    jitter = torch.rand(n_rays, generator=gen, device=dev)
    # march in a random order, so the rays a full sample buffer drops are random ones
    perm = torch.randperm(n_rays, generator=gen, device=dev)
    view, px, py, background, jitter = view[perm], px[perm], py[perm], background[perm], jitter[perm]
    o, d = cameras.rays(view, px, py)
    near, far = aabb_intersect(o, d, lo, hi)
    marched = march(o, d, near, far, grid.occupancy, grid.max_cascade, stepping, jitter,
                    max_samples=None if target is None else 16 * target)  # fmt: skip
    if len(marched) == 0:
        return None
    positions = marched.positions(o, d)
    field = NerfField(layout, params.detach())
    with torch.no_grad():  # compaction: only samples the ray still sees through get trained
        raw = torch.cat([field.raw_density(positions[i : i + (1 << 16)])[:, 0]
                         for i in range(0, positions.shape[0], 1 << 16)])  # fmt: skip
        tau = torch.exp(raw.clamp(max=MAX_DENSITY_LOG)) * marched.dt
        keep = transmittance(tau, marched.ray) >= TRAIN_MIN_TRANSMITTANCE
        measured = int(keep.sum())  # before the cap, so that the next batch's rays adapt down
        if target is not None and measured > target:
            # at most ``target`` compacted samples (instant-ngp's buffer): whole rays, in order
            last = int(marched.ray[torch.nonzero(keep).squeeze(1)[target - 1]])
            keep &= marched.ray < last
    samples = marched.select(keep)
    positions = positions[keep]
    field = NerfField(layout, params)
    features = grid_features(field.unit(positions), field.table, layout.levels, layout.features)
    raw = run_mlp(features, field.density_mlp, field.matrices[0])
    rgb = field.colour(raw, d[samples.ray])
    log_density = raw[:, 0]
    colour, opacity = composite(torch.exp(log_density.clamp(max=MAX_DENSITY_LOG)), rgb, samples, n_rays)

    hit = torch.zeros(n_rays, dtype=torch.bool, device=dev)
    hit[samples.ray] = True
    pixels = images[view, py * width + px].float() / 255.0
    alpha = pixels[:, 3:4]
    target_rgb = pixels[:, :3] * alpha + (1 - alpha) * background
    prediction = colour + (1 - opacity)[:, None] * background
    photometric = huber_ngp(prediction[hit], target_rgb[hit]).sum() / n_rays
    nudge = torch.zeros_like(log_density)
    if grid.mean() < occ.MIN_OPTICAL_THICKNESS:  # an (almost) empty grid: raise negative log-densities
        nudge = nudge - 1e-4 * (log_density.detach() < 0)
    depth = (positions - o[samples.ray]).norm(dim=-1)
    nudge = nudge + 1e-4 * ((log_density.detach() > -10) & (depth < NEAR_DISTANCE))
    loss = photometric + REG_SCALE * (nudge * log_density).sum()
    mse = float(((prediction[hit].detach().clamp(0, 1) - target_rgb[hit]) ** 2).mean())
    return loss, photometric, mse, measured


def _image_meta(dataset: NerfDataset, i: int) -> dict:
    f = dataset.frames[i]
    return {"path": f.path, "focal_length": list(f.focal), "principal_point": list(f.principal),
            "resolution": [dataset.width, dataset.height], "xform": f.c2w}  # fmt: skip


# -- evaluation ---------------------------------------------------------------------------------


def render_view(document: dict, dataset: NerfDataset, index: int, *, device: str | torch.device = "cpu") -> np.ndarray:
    """Frame ``index`` of the dataset (its own intrinsics and lens) rendered from a NeRF
    snapshot document by the inference renderer (:class:`.renderer.SceneRenderer`'s marcher:
    instant-ngp's rules) over black -> float32 [H, W, 3], sRGB-encoded, in [0, 1]."""
    from holoscope.codecs.hashgrid.neural.march import over_background
    from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer

    dev = torch.device(device)
    renderer = SceneRenderer(parse_snapshot(document), device=str(dev))
    cameras = CameraSet([dataset.frames[index]], dataset.width, dataset.height, dev)
    w, h = dataset.width, dataset.height
    ys, xs = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    out = torch.zeros(h * w, 3, device=dev)
    with torch.inference_mode():
        for start in range(0, h * w, EVAL_RAYS):
            px, py = xs[start : start + EVAL_RAYS], ys[start : start + EVAL_RAYS]
            o, d = cameras.rays(torch.zeros_like(px), px, py)
            rgb, alpha = renderer.marcher.march(o, d)
            out[start : start + EVAL_RAYS] = over_background(rgb, alpha, (0.0, 0.0, 0.0, 1.0))
    return out.clamp(0, 1).reshape(h, w, 3).cpu().numpy()


def _mse(rendered: np.ndarray, dataset: NerfDataset, index: int) -> float:
    rgba = dataset.images[index].astype(np.float64) / 255.0
    target = rgba[..., :3] * rgba[..., 3:4]  # on black, the background the held-out views are rendered on
    return float(np.mean((rendered.astype(np.float64) - target) ** 2))


__all__ = ["fit_nerf", "nerf_config", "render_view", "split_views"]
