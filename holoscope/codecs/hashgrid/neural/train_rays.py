"""Rays and samples for NeRF training and evaluation, following instant-ngp's
``generate_training_samples_nerf`` and ``nerf_device.cuh`` (hashgrid.md §6), vectorised in torch.

Rules followed:

- A pixel's ray (``uv_to_ray``): ``d = ((u - cx) * W / fx, (v - cy) * H / fy, 1)`` in OpenCV camera
  axes at the pixel centre, OpenCV ``k1 k2 p1 p2`` distortion undone (Newton's method on the
  distortion polynomial: 12 steps with its analytic Jacobian, where instant-ngp runs up to 100
  with central differences; both converge to the same point), then rotated by the camera
  matrix and normalised. Origin: the camera position.
- The ray starts at its aabb entry, clamped to 0 (the camera may be inside).
- Steps live on a lattice in "stepping space": ``dt = clamp(t * cone_angle, sqrt(3)/1024,
  sqrt(3)/1024 * 2^7 * 1024/128)`` is exactly one unit there (``to_stepping_space`` /
  ``from_stepping_space``); cone_angle is 1/256 for aabb_scale > 1, else 0 (constant steps).
  Training rays start a random fraction of a step in (``advance_n_steps(t, cone, rand)``),
  evaluation rays at the entry.
- A lattice point is a sample when its cell is occupied in the occupancy bitfield at the
  cascade ``mip_from_dt`` picks; instant-ngp skips empty cells to the next lattice point past
  the cell boundary, which keeps exactly these points. At most 1024 samples per ray.
- Compositing: ``alpha = 1 - exp(-density * dt)``, ``T`` the product of ``1 - alpha`` before a
  sample, weight ``alpha * T``; training drops the samples after ``T < 1e-4`` (compaction).
"""

from __future__ import annotations

import math

import numpy as np
import torch

SQRT3 = math.sqrt(3.0)
NERF_STEPS = 1024
MIN_STEP = SQRT3 / NERF_STEPS
NERF_CASCADES = 8
GRID_SIZE = 128
MAX_STEP = MIN_STEP * (1 << (NERF_CASCADES - 1)) * NERF_STEPS / GRID_SIZE
NEWTON_STEPS = 12
TRAIN_MIN_TRANSMITTANCE = 1e-4  # compute_loss_kernel_train_nerf's EPSILON


def cone_angle_for(aabb_scale: int) -> float:
    return 0.0 if aabb_scale <= 1 else 1.0 / 256.0


class Stepping:
    """instant-ngp's stepping space for one cone angle: one lattice unit is one step ``dt``."""

    def __init__(self, cone_angle: float) -> None:
        self.cone = cone_angle
        if cone_angle > 1e-5:
            self.l = math.log(1.0 + cone_angle)
            self.a = (math.log(MIN_STEP) - math.log(self.l)) / self.l
            self.b = (math.log(MAX_STEP) - math.log(self.l)) / self.l
            self.at, self.bt = math.exp(self.a * self.l), math.exp(self.b * self.l)

    def to(self, t: torch.Tensor) -> torch.Tensor:
        if self.cone <= 1e-5:
            return t / MIN_STEP
        log_t = torch.log(t.clamp_min(1e-30)) / self.l
        return torch.where(t <= self.at, (t - self.at) / MIN_STEP + self.a,
                           torch.where(t <= self.bt, log_t, (t - self.bt) / MAX_STEP + self.b))  # fmt: skip

    def frm(self, n: torch.Tensor) -> torch.Tensor:
        if self.cone <= 1e-5:
            return n * MIN_STEP
        exp_n = torch.exp(n.clamp(max=self.b) * self.l)
        return torch.where(n <= self.a, (n - self.a) * MIN_STEP + self.at,
                           torch.where(n <= self.b, exp_n, (n - self.b) * MAX_STEP + self.bt))  # fmt: skip


# -- rays ---------------------------------------------------------------------------------------


def _distortion(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor):
    """OpenCV radial-tangential distortion (du, dv) and its Jacobian at normalised (x, y)."""
    k1, k2, p1, p2 = k.unbind(-1)
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = k1 * r2 + k2 * r2 * r2
    du = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2)
    dv = y * radial + 2 * p2 * xy + p1 * (r2 + 2 * y2)
    dr = k1 + 2 * k2 * r2  # d radial / d r2
    j_uu = 1 + radial + 2 * x2 * dr + 2 * p1 * y + 6 * p2 * x
    j_uv = 2 * xy * dr + 2 * p1 * x + 2 * p2 * y
    j_vu = 2 * xy * dr + 2 * p2 * y + 2 * p1 * x
    j_vv = 1 + radial + 2 * y2 * dr + 2 * p2 * x + 6 * p1 * y
    return du, dv, (j_uu, j_uv, j_vu, j_vv)


def distort(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    du, dv, _ = _distortion(x, y, k)
    return x + du, y + dv


def undistort(xd: torch.Tensor, yd: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The undistorted normalised coordinates whose distortion is (xd, yd) (float64 Newton)."""
    xd, yd, k = xd.double(), yd.double(), k.double()
    x, y = xd.clone(), yd.clone()
    for _ in range(NEWTON_STEPS):
        du, dv, (a, b, c, d) = _distortion(x, y, k)
        fx, fy = x + du - xd, y + dv - yd
        det = a * d - b * c
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        x = x - (d * fx - b * fy) / det
        y = y - (a * fy - c * fx) / det
    return x, y


class CameraSet:
    """The training views' cameras as tensors: c2w [N, 3, 4] (NGP, OpenCV axes), focal [N, 2]
    (pixels), principal [N, 2] (fractions), lens [N, 4]."""

    def __init__(self, frames, width: int, height: int, device: torch.device) -> None:
        self.width, self.height = width, height
        self.c2w = torch.tensor(np.array([f.c2w for f in frames]), dtype=torch.float32, device=device)
        self.focal = torch.tensor([f.focal for f in frames], dtype=torch.float64, device=device)
        self.principal = torch.tensor([f.principal for f in frames], dtype=torch.float64, device=device)
        self.lens = torch.tensor([f.lens for f in frames], dtype=torch.float64, device=device)
        self.distorted = bool((self.lens != 0).any())

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def rays(self, image: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(origins [R, 3], unit directions [R, 3]) through the centres of pixels (px, py) of the
        views ``image`` (row 0 at the top)."""
        u = (px.double() + 0.5) / self.width
        v = (py.double() + 0.5) / self.height
        f, c = self.focal[image], self.principal[image]
        x = (u - c[:, 0]) * self.width / f[:, 0]
        y = (v - c[:, 1]) * self.height / f[:, 1]
        if self.distorted:
            x, y = undistort(x, y, self.lens[image])
        d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1).float()
        m = self.c2w[image]
        d = torch.einsum("rij,rj->ri", m[:, :, :3], d_cam)
        return m[:, :, 3].contiguous(), d / d.norm(dim=-1, keepdim=True)


def aabb_intersect(o: torch.Tensor, d: torch.Tensor, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_near, t_far) of rays with the cube [lo, hi]^3; t_far < t_near where they miss."""
    with torch.no_grad():
        inv = 1.0 / torch.where(d == 0, torch.full_like(d, 1e-20), d)
        t0, t1 = (lo - o) * inv, (hi - o) * inv
        near = torch.minimum(t0, t1).amax(dim=-1)
        far = torch.maximum(t0, t1).amin(dim=-1)
    return near, far


# -- occupancy lookups --------------------------------------------------------------------------


def mip_from_dt(dt: torch.Tensor, pos: torch.Tensor, max_cascade: int) -> torch.Tensor:
    """``mip_from_dt``: the cascade of the point, or coarser when the step spans more than half
    a cell of it."""
    _, e_pos = torch.frexp((pos - 0.5).abs().amax(dim=-1))
    mip = (e_pos + 1).clamp(0, max_cascade)
    _, e_dt = torch.frexp(dt * (2 * GRID_SIZE))
    coarse = torch.where(dt * (2 * GRID_SIZE) < 1.0, mip, torch.maximum(mip, e_dt))
    return coarse.clamp(max=max_cascade)


def occupied_at(pos: torch.Tensor, mip: torch.Tensor, occupancy: torch.Tensor) -> torch.Tensor:
    """Whether points [..., 3] lie in occupied cells of cascade ``mip`` (occupancy: bool
    [cascades * 128^3], index ``m * 128^3 + (x * 128 + y) * 128 + z``)."""
    scale = torch.ldexp(torch.ones_like(pos[..., 0]), -mip)
    q = ((pos - 0.5) * scale[..., None] + 0.5) * GRID_SIZE
    cell = q.to(torch.int64)  # truncation towards zero, as C casts
    inside = ((cell >= 0) & (cell < GRID_SIZE)).all(dim=-1)
    cell = cell.clamp(0, GRID_SIZE - 1)
    index = ((mip.to(torch.int64) * GRID_SIZE + cell[..., 0]) * GRID_SIZE + cell[..., 1]) * GRID_SIZE + cell[..., 2]
    return inside & occupancy[index]


class Samples:
    """Samples of many rays, ray by ray in marching order: ray index, t and dt per sample."""

    def __init__(self, ray: torch.Tensor, t: torch.Tensor, dt: torch.Tensor) -> None:
        self.ray, self.t, self.dt = ray, t, dt

    def __len__(self) -> int:
        return self.ray.numel()

    def positions(self, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return o[self.ray] + self.t[:, None] * d[self.ray]

    def select(self, keep: torch.Tensor) -> "Samples":
        return Samples(self.ray[keep], self.t[keep], self.dt[keep])


def march(o: torch.Tensor, d: torch.Tensor, near: torch.Tensor, far: torch.Tensor, occupancy: torch.Tensor,
          max_cascade: int, stepping: Stepping, jitter: torch.Tensor | None, *, max_steps: int = NERF_STEPS,
          chunk: int = 128, max_samples: int | None = None) -> Samples:  # fmt: skip
    """The samples of rays (o, d) between ``near`` and ``far`` on the stepping lattice (started
    ``jitter`` [R] of a step in, or at the entry) in occupied cells; at most ``max_steps`` a ray.
    ``max_samples`` stops taking new rays' samples once that many are taken (instant-ngp drops
    rays that do not fit its sample buffer)."""
    device = o.device
    n_rays = o.shape[0]
    with torch.no_grad():
        start = stepping.to(near.clamp_min(0.0)) + (jitter if jitter is not None else 0.0)
        active = torch.nonzero(far > near.clamp_min(0.0)).squeeze(1)
        counts = torch.zeros(n_rays, dtype=torch.int64, device=device)
        offsets = torch.arange(chunk, device=device, dtype=torch.float32)
        rays_out, t_out, dt_out, base = [], [], [], 0
        while active.numel():
            n = start[active, None] + offsets + base  # [A, C] lattice coordinates
            t = stepping.frm(n)
            dt = stepping.frm(n + 1) - t
            inside = t <= far[active, None]
            pos = o[active, None, :] + t[..., None] * d[active, None, :]
            mip = mip_from_dt(dt, pos, max_cascade)
            keep = inside & occupied_at(pos, mip, occupancy)
            # at most max_steps samples per ray, counting those of earlier chunks
            rank = counts[active, None] + torch.cumsum(keep.long(), dim=1)
            keep &= rank <= max_steps
            counts[active] = counts[active] + keep.sum(dim=1)
            r, c = torch.nonzero(keep, as_tuple=True)
            rays_out.append(active[r])
            t_out.append(t[r, c])
            dt_out.append(dt[r, c])
            alive = inside[:, -1] & (counts[active] < max_steps)
            active = active[alive]
            base += chunk
        ray = torch.cat(rays_out) if rays_out else torch.zeros(0, dtype=torch.int64, device=device)
        t = torch.cat(t_out) if t_out else torch.zeros(0, device=device)
        dt = torch.cat(dt_out) if dt_out else torch.zeros(0, device=device)
        order = torch.argsort(ray, stable=True)  # chunks came in marching order: keep it within a ray
        samples = Samples(ray[order], t[order], dt[order])
        if max_samples is not None and len(samples) > max_samples:
            last = int(samples.ray[max_samples - 1])
            samples = samples.select(samples.ray < last)
    return samples


# -- compositing --------------------------------------------------------------------------------


def transmittance(tau: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """T before each sample: exp(-sum of the optical thickness of the ray's earlier samples).
    ``ray`` must be sorted; the prefix sum is in float64 so long batches keep precision."""
    cs = torch.cumsum(tau.double(), dim=0)
    excl = cs - tau.double()
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ray[1:] != ray[:-1]
    start_value = torch.zeros(int(ray.max()) + 1 if ray.numel() else 0, dtype=torch.float64, device=tau.device)
    start_value[ray[first]] = excl[first]
    return torch.exp(-(excl - start_value[ray])).to(tau.dtype)


def composite(density: torch.Tensor, rgb: torch.Tensor, samples: Samples,
              n_rays: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(colour [R, 3], opacity [R]) of alpha-composited samples (differentiable)."""
    tau = density * samples.dt
    T = transmittance(tau, samples.ray)
    weight = (1 - torch.exp(-tau)) * T
    colour = torch.zeros(n_rays, 3, device=rgb.device, dtype=rgb.dtype).index_add(0, samples.ray, weight[:, None] * rgb)
    opacity = torch.zeros(n_rays, device=rgb.device, dtype=rgb.dtype).index_add(0, samples.ray, weight)
    return colour, opacity


__all__ = ["CameraSet", "MIN_STEP", "NERF_STEPS", "Samples", "Stepping", "aabb_intersect", "composite",
           "cone_angle_for", "distort", "march", "mip_from_dt", "occupied_at", "transmittance",
           "undistort"]  # fmt: skip
