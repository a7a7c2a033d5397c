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
- Waves, as ``NerfTracer::trace``: every live ray takes its next K lattice points and tests them
  all with the occupancy lookup (those in occupied cells are its samples, exactly the points the
  skipping above would visit), the field is evaluated on all samples in one batch, they are
  composited in order, finished rays drop out, and a ray whose last point was empty skips to its
  next occupied one. K grows as rays finish (a point budget per wave); at most 10,000 samples a
  ray (``MARCH_ITER``). How the waves are cut changes nothing in the picture.

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

    def dt_between(self, t: torch.Tensor) -> torch.Tensor:
        """:meth:`dt` where every t lies between the fixed-step ends (``at < t``, ``t * (1 + c) < bt``):
        the same operations on the same values, without the branches that are not taken."""
        return torch.exp((torch.log(t) / self.log1p_c + 1.0) * self.log1p_c) - t

    def between(self, t_min: float, t_max: float, steps: int) -> bool:
        """Whether ``steps`` steps from anywhere in [t_min, t_max] stay where :meth:`dt_between` holds."""
        return self.exponential and t_min > self.at and t_max * (1.0 + self.cone) ** (steps + 2) < 0.999 * self.bt


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


# rows of the packed per-ray state [ROWS, m] the march and the skip carry (one index_select compacts it)
_O, _D, _INV, _SGN, _ADD = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12), slice(12, 15)
_T, _N, _TIN, _TEND, _N0, _K, _COUNT, _A = 15, 16, 17, 18, 19, 20, 21, 22
_RGB, _RGBA = slice(23, 26), slice(22, 26)  # _RGBA: opacity, then colour
ROWS = 26
SKIP_SLACK = 1e-3  # of a step: a stride stops this much short of the empty cube's exit, for rounding


class Marcher:
    """Marches rays through a NeRF field (``field(points, dirs) -> (density [N], rgb [N, 3])``,
    NGP space) with the snapshot's occupancy grid and render aabb.

    How it is fast (the field aside): per-ray state travels as one [ROWS, m] tensor, points axis
    first, so a wave is a few dozen whole-tensor operations. Every wave tests a window of K
    consecutive points of each ray's step lattice at once (one table lookup each), and the
    occupied ones are its samples, composited with cumulative products; empty space between
    windows is crossed by :meth:`_skip`, whose strides jump whole empty cubes of the grid's
    distance table. Nothing is occupied outside the occupied cells' bounding box, so a ray starts
    at its entry into that box (in whole steps) and ends at its exit; when that box lies inside the
    render box no point needs the render box test."""

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
        # rounding room for the box tests on t: positions are good to ~1e-7 of their size
        self._eps = 1e-5 * (1.0 + float(np.abs(np.concatenate([box.lo, box.hi])).max()))
        self._occupied = None  # (lo, hi): no lookup finds a point outside occupied
        self._nothing = False  # a populated grid with no occupied cell
        self._exact_box = True  # whether samples need the render box test
        if not grid.everything:
            if grid.bounds is None:
                self._nothing = True
            else:
                lo, hi = grid.bounds
                self._occupied = (torch.tensor(lo - self._eps, dtype=torch.float32, device=self.device),
                                  torch.tensor(hi + self._eps, dtype=torch.float32, device=self.device))  # fmt: skip
                self._exact_box = not (self.identity and np.all(lo - self._eps > box.lo)
                                       and np.all(hi + self._eps < box.hi))  # fmt: skip

    # geometry ---------------------------------------------------------------------------------
    def _local(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.identity else v @ self.to_local.T

    def contains(self, pos: torch.Tensor) -> torch.Tensor:
        p = self._local(pos)
        return ((p >= self.lo) & (p <= self.hi)).all(dim=-1)

    def _in_box(self, pos: torch.Tensor) -> torch.Tensor:
        """:meth:`contains` of points given axis first, [3, ...]."""
        p = pos if self.identity else (self.to_local @ pos.reshape(3, -1)).reshape(pos.shape)
        shape = (3,) + (1,) * (pos.dim() - 1)
        ok = (p >= self.lo.view(shape)) & (p <= self.hi.view(shape))
        return ok[0] & ok[1] & ok[2]

    def entry(self, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """Slab-test entry distance into the box (inf where missed)."""
        o, d = self._local(origins), self._local(dirs)
        t1, t2 = (self.lo - o) / d, (self.hi - o) / d
        near = torch.nan_to_num(torch.minimum(t1, t2), nan=-math.inf).amax(dim=1)
        far = torch.nan_to_num(torch.maximum(t1, t2), nan=math.inf).amin(dim=1)
        return torch.where(near <= far, near, torch.full_like(near, math.inf))

    def _span(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_in, t_end) of rays [m, 3]: every lattice point a sample can be at lies between them
        (the exits of the render box and of the occupied cells' box, the entry of the latter,
        with room for rounding); t_end -inf where none can be."""
        ol, dl = self._local(o), self._local(d)
        t1, t2 = (self.lo - self._eps - ol) / dl, (self.hi + self._eps - ol) / dl
        t_end = torch.nan_to_num(torch.maximum(t1, t2), nan=math.inf).amin(dim=1)
        t_in = torch.full_like(t_end, -math.inf)
        if self._occupied is not None:
            t1, t2 = (self._occupied[0] - o) / d, (self._occupied[1] - o) / d
            near = torch.nan_to_num(torch.minimum(t1, t2), nan=-math.inf).amax(dim=1)
            far = torch.nan_to_num(torch.maximum(t1, t2), nan=math.inf).amin(dim=1)
            t_in = torch.where(near <= far, near - 1e-6 * near.abs(), math.inf)
            t_end = torch.minimum(t_end, torch.where(near <= far, far, -math.inf))
        t_end = t_end * torch.where(t_end > 0, 1.0 + 1e-6, 1.0 - 1e-6)  # -inf stays -inf
        if self._nothing:
            t_end = torch.full_like(t_end, -math.inf)
        return t_in, t_end

    def _pack(self, o: torch.Tensor, d: torch.Tensor, t: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """The packed state [ROWS, m] of rays [m, 3] at t (lattice index n), nothing accumulated."""
        state = torch.zeros((ROWS, t.shape[0]), device=self.device)
        dt = d.T
        state[_O], state[_D], state[_T], state[_N] = o.T, dt, t, n
        state[_TIN], state[_TEND] = self._span(o, d)
        # a stride's exit from an empty cube [c - r, c + r + 1) of cells: bound = c + sgn r + add,
        # distance (bound - x) * inv (inv in steps of 128 cells; an axis the ray does not move along
        # has a bound behind it and inv -inf: distance +inf)
        ahead, still = dt > 0, dt == 0
        state[_INV] = torch.where(still, -math.inf, 1.0 / (dt * GRID_SIZE))
        state[_SGN] = torch.where(ahead, 1.0, -1.0)
        state[_ADD] = torch.where(ahead, 1.0, torch.where(still, -1.0, 0.0))
        return state

    def skip_empty(self, t: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """``if_unoccupied_advance_to_next_occupied_voxel`` for every ray: t itself if its cell is
        occupied, else the first point of its step lattice ``from_space(to_space(t) + k)`` in an
        occupied cell, or MAX_DEPTH once the ray leaves the box.

        instant-ngp walks the empty cells (climbing to the coarsest empty cascade around the point)
        and lands on the first lattice point past each cell's boundary. Every lattice point it
        passes over lies in an empty cell (a coarser cascade's bit includes the finer ones pooled
        into it) and the first point of each cell is visited, so it stops at exactly the first
        lattice point in an occupied cell. :meth:`_skip` finds that point in longer strides."""
        origins = origins.to(self.device, torch.float32)
        dirs = dirs.to(self.device, torch.float32)
        t = t.to(self.device, torch.float32)
        inside = (t < MAX_DEPTH) & self.contains(origins + dirs * t[:, None])
        t_out, _, gone = self._skip(self._pack(origins, dirs, t, self.stepping.to_space(t)))
        return torch.where(gone | ~inside, MAX_DEPTH, t_out)

    def _skip(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, lattice index n, gone) [m] of packed rays [ROWS, m] moved from t (index n) to the
        first point ``from_space(n + k)``, k >= 0 whole, of their step lattice in an occupied cell
        (gone: none is left before t_end). First the whole steps to the occupied box's entry, then
        strides: from an empty cell the ray jumps to the first lattice point past the empty cube
        around it (the grid's empty radius), nearly (within SKIP_SLACK of a step, for rounding)
        but never past an occupied cell. Only the rays still walking are carried along."""
        st, grid = self.stepping, self.grid
        m = state.shape[1]
        state = state.clone()
        n0 = state[_N]
        state[_N0] = n0
        k = torch.ceil(st.to_space(torch.minimum(state[_TIN], state[_TEND])) - n0 - SKIP_SLACK).clamp_min_(0.0)
        state[_K] = k
        state[_T] = torch.where(k > 0, st.from_space(n0 + k), state[_T])
        out = torch.empty((3, m), device=self.device)  # t, k, gone
        rows = torch.arange(m, device=self.device)
        for _ in range(1 << 16):  # a handful of strides a ray; cell by cell only beside geometry
            t, k = state[_T], state[_K]
            pos = state[_O] + state[_D] * t
            gone = (t > state[_TEND]) | (t >= MAX_DEPTH)
            if self._exact_box:
                gone |= ~self._in_box(pos)
            if grid.everything:
                out[:, rows] = torch.stack([t, k, gone.float()])
                break
            code, x, cell, mip = grid.lookup(pos)
            out[:, rows] = torch.stack([t, k, gone.float()])
            walking = torch.nonzero(~gone & (code != 0)).squeeze(1)
            if walking.numel() == 0:
                break
            # the exit of the empty cube of cells [c - r, c + r] (r = code - 1), in t
            r = code.to(x.dtype) - 1.0
            dist = (cell + state[_SGN] * r + state[_ADD] - x) * state[_INV]
            dist = torch.minimum(torch.minimum(dist[0], dist[1]), dist[2])
            if mip is not None:
                dist = torch.ldexp(dist, mip)
            n_exit = st.to_space(t + dist.clamp_min(0.0)) - state[_N0] - SKIP_SLACK
            k = torch.maximum(torch.ceil(n_exit), k + 1.0)
            state[_K], state[_T] = k, st.from_space(state[_N0] + k)
            if walking.numel() < rows.numel():
                state, rows = state.index_select(1, walking), rows.index_select(0, walking)
        return out[0], n0 + out[1], out[2] > 0.5

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
        result = torch.zeros((4, n), device=self.device)  # opacity, colour

        t = self.entry(origins, dirs).clamp_min(0.0) + START_OFFSET
        alive = torch.isfinite(t) & self.contains(origins + dirs * torch.nan_to_num(t, posinf=0.0)[:, None])
        rays = torch.nonzero(alive & (t < MAX_DEPTH)).squeeze(1)
        state = self._pack(origins[rays], dirs[rays], t[rays], self.stepping.to_space(t[rays]))
        deep = bool((state[_TEND] >= MAX_DEPTH).any()) if rays.numel() else False
        state[_T], state[_N], gone = self._skip(state)
        keep = torch.nonzero(~gone).squeeze(1)
        state, rays = state.index_select(1, keep), rays.index_select(0, keep)
        walked = 0  # lattice points each ray has had (an upper bound on its samples)
        while rays.numel():
            if cancelled is not None and cancelled():
                raise Cancelled("the render was cancelled")
            k = int(min(max(self.wave_samples // rays.numel(), 1), MAX_STEPS_PER_WAVE))
            capped = walked + k > MARCH_ITER
            state, finished = self._wave(state, k, deep, capped, stats)
            walked += k
            stats.waves += 1
            result[:, rays] = state[_RGBA]
            keep = torch.nonzero(~finished).squeeze(1)
            state, rays = state.index_select(1, keep), rays.index_select(0, keep)
        rgb, alpha = result[1:].T, result[0]
        hit = alpha > MIN_HIT_OPACITY
        stats.hits += int(hit.sum())
        return torch.where(hit[:, None], rgb, 0.0), torch.where(hit, alpha, 0.0)

    def _wave(self, state: torch.Tensor, k: int, deep: bool, capped: bool,
              stats: MarchStats) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The next K points of each ray's step lattice, tested at once: those in occupied cells
        are its samples (up to MARCH_ITER a ray), evaluated in one batch and composited in order;
        rays whose last point was empty then skip to their next occupied one. Returns (the state
        after the wave, finished [m])."""
        st, m = self.stepping, state.shape[1]
        # t += dt in float32, one step after another, as instant-ngp (and its rounding) goes
        ts = torch.empty((k, m), device=self.device)
        ts[0] = state[_T]
        if st.exponential:
            t_min, t_max = (float(v) for v in torch.aminmax(state[_T]))
            step = st.dt_between if st.between(t_min, t_max, k) else st.dt
            dts = torch.empty((k, m), device=self.device)
            for j in range(k):
                dts[j] = step(ts[j])  # calc_dt
                if j + 1 < k:
                    torch.add(ts[j], dts[j], out=ts[j + 1])
            dts = dts.T.contiguous()
        else:
            for j in range(1, k):
                torch.add(ts[j - 1], MIN_STEP, out=ts[j])
        ts = ts.T.contiguous()  # [m, K]
        pos = state[_O, :, None] + state[_D, :, None] * ts  # [3, m, K]
        if self.grid.everything:
            valid = self._in_box(pos)
        else:
            valid = self.grid.lookup(pos)[0] == 0
            if self._exact_box:
                valid &= self._in_box(pos)
        if deep:
            valid &= ts < MAX_DEPTH
        if capped:  # MARCH_ITER samples a ray at most
            valid &= (state[_COUNT, :, None] + valid.cumsum(dim=1)) <= MARCH_ITER
        counts = valid.sum(dim=1)
        state[_COUNT] += counts

        sel = torch.nonzero(valid.reshape(-1)).squeeze(1)  # ray-major: each ray's samples in order
        od = state[:6].T.contiguous().repeat_interleave(counts, dim=0)  # origins and directions, [S, 6]
        d = od[:, 3:].contiguous()
        points = od[:, :3] + d * ts.reshape(-1).index_select(0, sel)[:, None]
        density, colour = self.field(points, d)
        stats.samples += int(sel.shape[0])
        sigma = torch.zeros(m * k, device=self.device).index_copy_(0, sel, density.float()).view(m, k)
        col = torch.zeros((m * k, 3), device=self.device).index_copy_(0, sel, colour.float()).view(m, k, 3)

        # front to back: weight = alpha * (1 - opacity before), opacity = the running sum of weights;
        # past 1 - min_transmittance the ray stops there, colour and opacity divided by it
        clear = torch.exp(-sigma * (dts if st.exponential else MIN_STEP))  # 1 - alpha
        a0 = state[_A]
        before = torch.cat([(1.0 - a0)[:, None], clear[:, :-1]], dim=1).cumprod(dim=1)
        w = (1.0 - clear) * before
        opacity = w.cumsum(dim=1) + a0[:, None]
        full = opacity > 1.0 - self.min_transmittance  # once true, true to the end of the window
        w = w * torch.cat([torch.ones_like(full[:, :1]), ~full[:, :-1]], dim=1)
        a = a0 + w.sum(dim=1)
        c = state[_RGB] + (w[:, :, None] * col).sum(dim=1).T
        stop = full[:, -1]
        state[_A] = torch.where(stop, a / a, a)
        state[_RGB] = torch.where(stop, c / a, c)

        # on along the lattice; from an empty last point, skip to the next occupied one
        state[_T] = ts[:, -1] + (dts[:, -1] if st.exponential else MIN_STEP)
        finished = stop | (state[_T] > torch.clamp_max(state[_TEND], MAX_DEPTH)) | (state[_COUNT] >= MARCH_ITER)
        if not self.grid.everything:
            walk = torch.nonzero(~finished & ~valid[:, -1]).squeeze(1)
            if walk.numel():
                walkers = state.index_select(1, walk)
                walkers[_N] = st.to_space(walkers[_T])
                t, _, gone = self._skip(walkers)
                state[_T, walk] = t
                finished[walk] |= gone
        return state, finished


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
