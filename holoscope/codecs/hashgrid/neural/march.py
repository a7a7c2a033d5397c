"""Ray marching of a NeRF snapshot with instant-ngp's inference rules (hashgrid.md §6;
``nerf_device.cuh``, ``testbed_nerf.cu`` ``NerfTracer``), vectorised in torch, CPU or CUDA.

Rules followed:

- A ray starts at ``max(entry into the render aabb, 0) + 1e-6`` and is dropped unless that point
  is inside (``init_rays_with_payload_kernel_nerf``; near distance 0).
- Steps live in instant-ngp's "stepping space": with ``cone_angle`` 0 (aabb_scale <= 1) a step is
  ``sqrt(3)/1024``; otherwise (1/256) steps grow as ``t * (1 + c)`` between ``sqrt(3)/1024`` and
  ``sqrt(3)``, i.e. ``dt = calc_dt(t) = from_stepping_space(to_stepping_space(t) + 1) - t``.
- Before each sample the ray skips unoccupied cells (``if_unoccupied_advance_to_next_occupied_voxel``):
  at an empty cell of the point's cascade instant-ngp climbs to the coarsest empty cascade around
  it and advances a whole number of steps (at least one) past that cell's boundary, until it finds
  an occupied cell or leaves the render aabb (inclusive bounds). That lands on the first point of
  the ray's step lattice in an occupied cell, which is what :meth:`Marcher.skip_empty` finds.
- A sample at t uses the interval ``dt = calc_dt(t)`` after it: ``alpha = 1 - exp(-density * dt)``,
  ``weight = alpha * (1 - A)``, colour and opacity accumulate front to back; when the opacity
  passes ``1 - 0.01`` (``render_min_transmittance``) colour and opacity are divided by it and the
  ray stops (``composite_kernel_nerf``). A finished ray whose opacity is <= 0.001 is dropped
  (``compact_kernel_nerf``).
- Waves, as ``NerfTracer::trace``: every live ray generates its next K samples with the occupancy
  test alone, the field is evaluated on all of them in one batch, they are composited in order,
  and finished rays drop out. K grows as rays finish (a sample budget per wave); at most
  10,000 steps a ray (``MARCH_ITER``).

Deliberately not done: the first frame's low-discrepancy jitter of the start (up to one step; this
marcher is deterministic), lens distortion, rolling shutter, depth of field, envmaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from holoscope.codecs.hashgrid.neural.density_grid import OccupancyGrid
from holoscope.codecs.hashgrid.occupancy import GRID_SIZE
from holoscope.core.errors import Cancelled, CorruptStream

NERF_STEPS = 1024
SQRT3 = float(np.float32(1.73205080757))
MIN_STEP = float(np.float32(SQRT3) / np.float32(NERF_STEPS))  # MIN_CONE_STEPSIZE()
MAX_STEP = float(np.float32(MIN_STEP) * np.float32(128 * NERF_STEPS / GRID_SIZE))  # MAX_CONE_STEPSIZE(): sqrt(3)
MAX_DEPTH = 16384.0
MIN_TRANSMITTANCE = 0.01
MIN_HIT_OPACITY = 0.001
MARCH_ITER = 10000
MAX_STEPS_PER_WAVE = 32
START_OFFSET = 1e-6


def cone_angle_of(aabb_scale: int) -> float:
    """``load_nerf_post``: fixed steps in unit-cube scenes, exponential steps in larger ones."""
    return 0.0 if aabb_scale <= 1 else 1.0 / 256.0


class Stepping:
    """instant-ngp's stepping space for one cone angle (float32 constants, as the device computes them)."""

    def __init__(self, cone_angle: float) -> None:
        self.cone = float(cone_angle)
        self.exponential = self.cone > 1e-5
        if self.exponential:
            f = np.float32
            self.log1p_c = float(np.log(f(1) + f(self.cone)))
            lc = f(self.log1p_c)
            self.a = float((np.log(f(MIN_STEP)) - np.log(lc)) / lc)
            self.b = float((np.log(f(MAX_STEP)) - np.log(lc)) / lc)
            self.at = float(np.exp(f(self.a) * lc))
            self.bt = float(np.exp(f(self.b) * lc))

    def to_space(self, t: torch.Tensor) -> torch.Tensor:
        if not self.exponential:
            return t / MIN_STEP
        inner = torch.log(t.clamp_min(1e-30)) / self.log1p_c
        return torch.where(t <= self.at, (t - self.at) / MIN_STEP + self.a,
                           torch.where(t <= self.bt, inner, (t - self.bt) / MAX_STEP + self.b))  # fmt: skip

    def from_space(self, n: torch.Tensor) -> torch.Tensor:
        if not self.exponential:
            return n * MIN_STEP
        inner = torch.exp(n.clamp(self.a, self.b) * self.log1p_c)
        return torch.where(n <= self.a, (n - self.a) * MIN_STEP + self.at,
                           torch.where(n <= self.b, inner, (n - self.b) * MAX_STEP + self.bt))  # fmt: skip

    def dt(self, t: torch.Tensor) -> torch.Tensor:
        """``calc_dt``: one step from t."""
        if not self.exponential:
            return torch.full_like(t, MIN_STEP)
        return self.from_space(self.to_space(t) + 1.0) - t


@dataclass
class RenderBox:
    """The render aabb (NGP) and its ``render_aabb_to_local`` rotation."""

    lo: np.ndarray
    hi: np.ndarray
    to_local: np.ndarray = field(default_factory=lambda: np.eye(3))

    @classmethod
    def of(cls, snapshot) -> "RenderBox":
        """instant-ngp's render box: ``snapshot.render_aabb`` if stored, else the dataset's render
        aabb clipped to the scene aabb ``[0.5 +- aabb_scale/2]^3``, else that aabb. Stored boxes
        are clipped to the scene aabb here too (nothing is trained outside it), and an empty box
        (instant-ngp's default is min +inf, max -inf) stands for the scene aabb."""
        s = float(min(snapshot.aabb_scale, 128))
        scene_lo, scene_hi = np.full(3, 0.5 - s / 2), np.full(3, 0.5 + s / 2)
        snap = snapshot.document.get("snapshot") or {}
        dataset = (snap.get("nerf") or {}).get("dataset")
        dataset = dataset if isinstance(dataset, dict) else {}
        lo, hi = scene_lo, scene_hi
        for box in (dataset.get("render_aabb"), snap.get("render_aabb")):
            if box is not None:
                blo, bhi = np.maximum(_box(box)[0], scene_lo), np.minimum(_box(box)[1], scene_hi)
                lo, hi = (blo, bhi) if np.all(bhi >= blo) else (scene_lo, scene_hi)
        to_local = snap.get("render_aabb_to_local", dataset.get("render_aabb_to_local"))
        return cls(lo, hi, np.eye(3) if to_local is None else _matrix3(to_local))


def _box(value) -> tuple[np.ndarray, np.ndarray]:
    try:
        lo = np.array(value["min"], np.float64).reshape(3)
        hi = np.array(value["max"], np.float64).reshape(3)
    except (TypeError, KeyError, ValueError):
        raise CorruptStream("the snapshot's render_aabb is not {min: [x, y, z], max: [x, y, z]}") from None
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise CorruptStream("the snapshot's render_aabb is not a number")
    return lo, hi


def _matrix3(value) -> np.ndarray:
    try:
        m = np.array(value, np.float64).reshape(3, 3)
    except (TypeError, ValueError):
        raise CorruptStream("the snapshot's render_aabb_to_local is not a 3x3 matrix") from None
    if not np.all(np.isfinite(m)):
        raise CorruptStream("the snapshot's render_aabb_to_local is not finite")
    return m


@dataclass
class MarchStats:
    """What a march cost: samples the field evaluated, waves, rays that hit something."""

    samples: int = 0
    waves: int = 0
    rays: int = 0
    hits: int = 0


class Marcher:
    """Marches rays through a NeRF field (``field(points, dirs) -> (density [N], rgb [N, 3])``,
    NGP space) with the snapshot's occupancy grid and render aabb."""

    def __init__(self, field_fn: Callable, grid: OccupancyGrid, box: RenderBox, cone_angle: float,
                 device: str | torch.device = "cpu", *, wave_samples: int = 1 << 18,
                 min_transmittance: float = MIN_TRANSMITTANCE) -> None:  # fmt: skip
        self.field = field_fn
        self.min_transmittance = min_transmittance  # instant-ngp's render_min_transmittance
        self.grid = grid
        self.stepping = Stepping(cone_angle)
        self.device = torch.device(device)
        self.lo = torch.tensor(box.lo, dtype=torch.float32, device=self.device)
        self.hi = torch.tensor(box.hi, dtype=torch.float32, device=self.device)
        self.identity = bool(np.allclose(box.to_local, np.eye(3)))
        self.to_local = torch.tensor(box.to_local, dtype=torch.float32, device=self.device)
        self.wave_samples = wave_samples

    # geometry ---------------------------------------------------------------------------------
    def _local(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.identity else v @ self.to_local.T

    def contains(self, pos: torch.Tensor) -> torch.Tensor:
        p = self._local(pos)
        return ((p >= self.lo) & (p <= self.hi)).all(dim=-1)

    def entry(self, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """Slab-test entry distance into the box (inf where missed)."""
        o, d = self._local(origins), self._local(dirs)
        t1, t2 = (self.lo - o) / d, (self.hi - o) / d
        near = torch.nan_to_num(torch.minimum(t1, t2), nan=-math.inf).amax(dim=1)
        far = torch.nan_to_num(torch.maximum(t1, t2), nan=math.inf).amin(dim=1)
        return torch.where(near <= far, near, torch.full_like(near, math.inf))

    def skip_empty(self, t: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """``if_unoccupied_advance_to_next_occupied_voxel`` for every ray: t itself if its cell is
        occupied, else the first point of its step lattice ``from_space(to_space(t) + k)`` in an
        occupied cell, or MAX_DEPTH once the ray leaves the box.

        instant-ngp walks the empty cells (climbing to the coarsest empty cascade around the point)
        and lands on the first lattice point past each cell's boundary. Every lattice point it
        passes over lies in an empty cell (a coarser cascade's bit includes the finer ones pooled
        into it) and the first point of each cell is visited, so it stops at exactly the first
        lattice point in an occupied cell. That point is found here in longer strides: from an
        empty cell the ray jumps to the first lattice point past the empty cube around it (the
        grid's empty radius), nearly (within 1e-3 of a step, for rounding) but never past an
        occupied cell."""
        t = t.clone()
        n0 = self.stepping.to_space(t)
        k = torch.zeros_like(t)
        tk = t.clone()
        todo = torch.arange(t.shape[0], device=t.device)
        for _ in range(1 << 16):  # a handful of strides a ray; cell by cell only beside geometry
            if todo.numel() == 0:
                break
            o, d = origins[todo], dirs[todo]
            pos = o + d * tk[:, None]
            gone = (tk >= MAX_DEPTH) | ~self.contains(pos)
            if self.grid.everything:
                t[todo] = torch.where(gone, torch.full_like(tk, MAX_DEPTH), tk)
                break
            mip = self.grid.cascade_of(pos)
            cells, flat, inside = self.grid.cells(pos, mip)
            stop = gone | (inside & self.grid.bits[flat])
            t[todo[stop]] = torch.where(gone[stop], torch.full_like(tk[stop], MAX_DEPTH), tk[stop])
            go = ~stop
            todo, pos, d, mip, cells, tk, k = todo[go], pos[go], d[go], mip[go], cells[go], tk[go], k[go]
            radius = torch.where(inside[go], self.grid.radius[flat[go]].to(torch.int64), 0)[:, None]
            # the empty cube of cells [c - r, c + r] in cascade m, in NGP units
            size = torch.ldexp(torch.ones_like(tk), mip.to(torch.int32))[:, None] / GRID_SIZE
            corner = 0.5 - size * (GRID_SIZE / 2)
            lo, hi = corner + (cells - radius) * size, corner + (cells + radius + 1) * size
            dist = torch.nan_to_num((torch.where(d > 0, hi, lo) - pos) / d, nan=math.inf, posinf=math.inf)
            exit_t = tk + dist.amin(dim=1).clamp_min(0.0)
            n_exit = self.stepping.to_space(exit_t) - n0[todo] - 1e-3
            k = torch.maximum(torch.ceil(n_exit), k + 1)
            tk = self.stepping.from_space(n0[todo] + k)
        return t

    # marching ---------------------------------------------------------------------------------
    def march(self, origins: torch.Tensor, dirs: torch.Tensor, *, cancelled: Callable[[], bool] | None = None,
              stats: MarchStats | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(premultiplied colour [N, 3] as the network outputs it, opacity [N]) of rays [N, 3]
        (NGP space, unit directions)."""
        stats = stats if stats is not None else MarchStats()
        n = origins.shape[0]
        stats.rays += n
        origins = origins.to(self.device, torch.float32)
        dirs = dirs.to(self.device, torch.float32)
        rgb = torch.zeros((n, 3), device=self.device)
        alpha = torch.zeros(n, device=self.device)

        t = self.entry(origins, dirs).clamp_min(0.0) + START_OFFSET
        alive = torch.isfinite(t) & self.contains(origins + dirs * torch.nan_to_num(t, posinf=0.0)[:, None])
        t = torch.where(alive, t, torch.full_like(t, MAX_DEPTH))
        t = self.skip_empty(t, origins, dirs)
        rays = torch.nonzero(t < MAX_DEPTH).squeeze(1)
        steps = 0
        while rays.numel() and steps < MARCH_ITER:
            if cancelled is not None and cancelled():
                raise Cancelled("the render was cancelled")
            k = int(min(max(self.wave_samples // rays.numel(), 1), MAX_STEPS_PER_WAVE, MARCH_ITER - steps))
            t_next, finished = self._wave(rays, t, origins, dirs, rgb, alpha, k, stats)
            t[rays] = t_next
            rays = rays[~finished]
            steps += k
            stats.waves += 1
        hit = alpha > MIN_HIT_OPACITY
        stats.hits += int(hit.sum())
        return torch.where(hit[:, None], rgb, 0.0), torch.where(hit, alpha, 0.0)

    def _wave(self, rays, t_all, origins, dirs, rgb, alpha, k, stats):
        """K samples of each ray in ``rays``, evaluated in one batch and composited in order;
        returns (t after the wave, finished [len(rays)])."""
        o, d = origins[rays], dirs[rays]
        t = t_all[rays]
        m = rays.numel()
        ts = torch.zeros((k, m), device=self.device)
        dts = torch.zeros((k, m), device=self.device)
        valid = torch.zeros((k, m), dtype=torch.bool, device=self.device)
        live = torch.ones(m, dtype=torch.bool, device=self.device)
        for j in range(k):
            idx = torch.nonzero(live).squeeze(1)
            if idx.numel() == 0:
                break
            tj = self.skip_empty(t[idx], o[idx], d[idx])
            out = tj >= MAX_DEPTH
            live[idx[out]] = False
            idx, tj = idx[~out], tj[~out]
            dt = self.stepping.dt(tj)
            ts[j, idx], dts[j, idx], valid[j, idx] = tj, dt, True
            t[idx] = tj + dt

        sel = torch.nonzero(valid)  # (j, ray) pairs in j-major order
        points = o[sel[:, 1]] + d[sel[:, 1]] * ts[sel[:, 0], sel[:, 1]][:, None]
        density, colour = self.field(points, d[sel[:, 1]])
        stats.samples += int(sel.shape[0])
        sigma = torch.zeros((k, m), device=self.device)
        col = torch.zeros((k, m, 3), device=self.device)
        sigma[sel[:, 0], sel[:, 1]] = density.float()
        col[sel[:, 0], sel[:, 1]] = colour.float()

        c, a = rgb[rays], alpha[rays]
        done = torch.zeros(m, dtype=torch.bool, device=self.device)
        for j in range(k):
            step = valid[j] & ~done
            a_j = 1.0 - torch.exp(-sigma[j] * dts[j])
            w = torch.where(step, a_j * (1.0 - a), 0.0)
            c = c + col[j] * w[:, None]
            a = a + w
            full = step & (a > 1.0 - self.min_transmittance)
            c = torch.where(full[:, None], c / a[:, None], c)
            a = torch.where(full, a / a, a)
            done |= full
        rgb[rays], alpha[rays] = c, a
        return t, done | ~live


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """instant-ngp's ``srgb_to_linear`` (common_device.cuh)."""
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0.0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """instant-ngp's ``linear_to_srgb``, with its exponent 0.41666."""
    return torch.where(c < 0.0031308, 12.92 * c, 1.055 * c.clamp_min(0.0) ** 0.41666 - 0.055)


def over_background(rgb: torch.Tensor, alpha: torch.Tensor, background: tuple[float, ...],
                    exposure: float = 0.0) -> torch.Tensor:  # fmt: skip
    """The displayed sRGB colour [N, 3] in [0, 1] of marched rays (premultiplied colour as the
    network outputs it, sRGB-encoded; opacity) over an sRGB ``background`` (r, g, b[, a]), in
    linear light as instant-ngp displays it: ``shade_kernel_nerf`` converts the premultiplied
    colour to linear, ``tonemap_kernel`` adds ``(1 - A) * a_bg * linear(background)``, scales by
    ``2^exposure`` and converts back to sRGB, clamped."""
    bg = torch.tensor(list(background[:3]), dtype=torch.float32, device=rgb.device)
    bg_alpha = float(background[3]) if len(background) > 3 else 1.0
    linear = srgb_to_linear(rgb) + ((1.0 - alpha) * bg_alpha)[:, None] * srgb_to_linear(bg)[None]
    return linear_to_srgb(linear * 2.0**exposure).clamp(0.0, 1.0)


__all__ = ["MAX_DEPTH", "MAX_STEP", "MIN_STEP", "MarchStats", "Marcher", "RenderBox", "Stepping", "cone_angle_of", "linear_to_srgb",
           "over_background", "srgb_to_linear"]  # fmt: skip
