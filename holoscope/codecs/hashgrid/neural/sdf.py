"""Sphere tracing and shading of an SDF snapshot with instant-ngp's rules (hashgrid.md §6;
``testbed_sdf.cu``), vectorised in torch.

The network maps NGP-space points (the mesh was fitted to the unit cube) straight through the
grid to one output, the signed distance. Tracing (``SphereTracer``):

- a ray starts at ``max(entry into the aabb, 0) + 1e-6`` and lives only if that point is inside;
- each step moves it by ``0.95 * distance`` (``distance_scale``; ``zero_offset`` 0), and it stops
  when the step was ``<= maximum_distance`` (5e-5) or ``|step| / 2 <= 3 * maximum_distance``, or it
  left the aabb; a stopped ray inside the aabb is a hit; at most 10,000 steps (``MARCH_ITER``).

Normals are central differences with epsilon 0.0005 (``FiniteDifferenceNormalsApproximator``).
Shading is instant-ngp's default "Shade" look: its Disney BRDF with the default ``BRDFParams``
(base colour 0.8^2, specular 1, roughness 0.5, no metal, sheen, clearcoat or subsurface), lit by
the sun (``snapshot.sun_dir``, colour (255, 225, 195)/255 * 4) plus ``ambient`` * the sky term
(instant-ngp's default ambient colour is black), in linear light, then sRGB. Misses show the
background. Deliberately not done: the sun's soft shadow rays and the floor.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from holoscope.core.errors import Cancelled

DISTANCE_SCALE = 0.95
MAXIMUM_DISTANCE = 5e-5
FD_EPSILON = 5e-4
START_OFFSET = 1e-6
MARCH_ITER = 10000
SUN_COLOUR = (1.0, 225.0 / 255.0, 195.0 / 255.0)
SKY_COLOUR = (195.0 / 255.0, 215.0 / 255.0, 1.0)
BASE_COLOUR = 0.8
ROUGHNESS = 0.5
SPECULAR = 1.0


class SphereTracer:
    """Traces rays against ``distance(points [N, 3]) -> [N]`` inside the box [lo, hi] (NGP)."""

    def __init__(self, distance: Callable[[torch.Tensor], torch.Tensor], lo, hi,
                 device: str | torch.device = "cpu", *, batch_steps: int = 4) -> None:  # fmt: skip
        self.distance = distance
        self.device = torch.device(device)
        self.lo = torch.as_tensor(lo, dtype=torch.float32, device=self.device)
        self.hi = torch.as_tensor(hi, dtype=torch.float32, device=self.device)
        self.batch_steps = batch_steps
        self.evaluations = 0  # distance evaluations so far

    def contains(self, p: torch.Tensor) -> torch.Tensor:
        return ((p >= self.lo) & (p <= self.hi)).all(dim=-1)

    def trace(self, origins: torch.Tensor, dirs: torch.Tensor, *,
              cancelled: Callable[[], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """(hit [N] bool, position [N, 3], steps [N]) of unit-direction rays."""
        o = origins.to(self.device, torch.float32)
        d = dirs.to(self.device, torch.float32)
        t1, t2 = (self.lo - o) / d, (self.hi - o) / d
        near = torch.nan_to_num(torch.minimum(t1, t2), nan=-math.inf).amax(dim=1)
        far = torch.nan_to_num(torch.maximum(t1, t2), nan=math.inf).amin(dim=1)
        t = torch.where(near <= far, near, torch.zeros_like(near)).clamp_min(0.0) + START_OFFSET
        pos = o + d * t[:, None]
        started = self.contains(pos) & (near <= far)
        alive = started.clone()
        steps = torch.zeros(o.shape[0], dtype=torch.int32, device=self.device)
        rays = torch.nonzero(alive).squeeze(1)
        done = 0
        while rays.numel() and done < MARCH_ITER:
            if cancelled is not None and cancelled():
                raise Cancelled("the render was cancelled")
            for _ in range(min(self.batch_steps, MARCH_ITER - done)):
                if rays.numel() == 0:
                    break
                step = self.distance(pos[rays]).float() * DISTANCE_SCALE
                self.evaluations += rays.numel()
                moved = pos[rays] + step[:, None] * d[rays]
                pos[rays] = moved
                going = (step > MAXIMUM_DISTANCE) & ((step / 2).abs() > 3 * MAXIMUM_DISTANCE) & self.contains(moved)
                steps[rays] += going.to(torch.int32)
                alive[rays[~going]] = False
                rays = rays[going]
                done += 1
        # stopped inside the box: a hit; still going after MARCH_ITER steps: never a hit
        return started & ~alive & self.contains(pos), pos, steps

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        """Unit normals from central differences of the distance (one batch of 6 N points)."""
        eye = torch.eye(3, device=points.device) * FD_EPSILON
        probes = torch.cat([points[:, None, :] + eye[None], points[:, None, :] - eye[None]], dim=1)
        values = self.distance(probes.reshape(-1, 3)).float().reshape(-1, 6)
        self.evaluations += probes.shape[0] * 6
        grad = values[:, :3] - values[:, 3:]
        return grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-20)


def _schlick(u: torch.Tensor) -> torch.Tensor:
    m = (1.0 - u).clamp(0.0, 1.0)
    return m**5


def _smith_ggx(n_dot_v: torch.Tensor, alpha_g: float) -> torch.Tensor:
    a = alpha_g * alpha_g
    b = n_dot_v * n_dot_v
    return 1.0 / (n_dot_v + torch.sqrt(a + b - a * b))


def shade(normals: torch.Tensor, dirs: torch.Tensor, sun_dir, up_dir, *,
          ambient: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> torch.Tensor:  # fmt: skip
    """Linear colour [N, 3] of surface points: instant-ngp's ``evaluate_shading`` with the default
    BRDF parameters (the terms they switch off dropped), no shadow."""
    dev = normals.device
    sun = torch.tensor(sun_dir, dtype=torch.float32, device=dev)
    sun = sun / sun.norm().clamp_min(1e-20)
    up = torch.tensor(up_dir, dtype=torch.float32, device=dev)
    up = up / up.norm().clamp_min(1e-20)
    base = BASE_COLOUR * BASE_COLOUR
    n, v = normals, -dirs / dirs.norm(dim=1, keepdim=True)
    n_dot_l, n_dot_v = n @ sun, (n * v).sum(dim=1)
    h = sun[None] + v
    h = h / h.norm(dim=1, keepdim=True).clamp_min(1e-20)
    n_dot_h, l_dot_h = (n * h).sum(dim=1), h @ sun

    sky = (-(n @ up) * 0.5 + 0.5)[:, None] * torch.tensor(SKY_COLOUR, device=dev) * 4.0
    amb = torch.tensor(ambient, dtype=torch.float32, device=dev)[None] * sky * 0.2 * base  # mix(0.2, FV, metallic 0)

    fl, fv = _schlick(n_dot_l), _schlick(n_dot_v)
    fd90 = 0.5 + 2.0 * l_dot_h * l_dot_h * ROUGHNESS
    fd = (1 + (fd90 - 1) * fl) * (1 + (fd90 - 1) * fv)
    a = max(0.001, ROUGHNESS * ROUGHNESS)
    a2 = a * a
    ds = a2 / (math.pi * (1.0 + (a2 - 1.0) * n_dot_h * n_dot_h) ** 2)  # G2 (GTR2)
    spec0 = SPECULAR * 0.08
    fs = spec0 + (1.0 - spec0) * _schlick(l_dot_h)
    gs = _smith_ggx(n_dot_l, a) * _smith_ggx(n_dot_v, a)
    brdf = fd / math.pi * base + gs * fs * ds
    light = torch.tensor(SUN_COLOUR, device=dev) * 4.0
    colour = (brdf * n_dot_l)[:, None] * light[None] + amb
    lit = (n_dot_l >= 0) & (n_dot_v >= 0)
    return torch.where(lit[:, None], colour, amb)


__all__ = ["SphereTracer", "shade"]
