"""One entry point that draws an Instant-NGP snapshot, for the CLI and the desktop app
(hashgrid.md §6): NeRF by ray marching (:mod:`.march`), SDF by sphere tracing (:mod:`.sdf`),
image mode by evaluating only the output pixels of a view rectangle.

Cameras are :class:`holoscope.core.camera.Camera` in the scene's world (NeRF: the dataset world of
transforms.json; SDF: NGP space, see :mod:`holoscope.codecs.hashgrid.cameras`); ``Camera.near`` is
not used (instant-ngp renders from distance 0). Output is float32 H x W x 3 sRGB in [0, 1], drawn
over the snapshot's ``background_color`` (sRGB, blended in linear light) unless one is given, with
the snapshot's ``exposure``. Parameters go to the device once, when the renderer is made.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from holoscope.codecs.hashgrid.cameras import camera_rays, scene_transform, stored_camera
from holoscope.codecs.hashgrid.neural.density_grid import OccupancyGrid
from holoscope.codecs.hashgrid.neural.encoding import encode
from holoscope.codecs.hashgrid.neural.field import FieldLayout, NerfField
from holoscope.codecs.hashgrid.neural.march import (Marcher, MarchStats, RenderBox, cone_angle_of, linear_to_srgb,
                                                    over_background, srgb_to_linear)  # fmt: skip
from holoscope.codecs.hashgrid.neural.network import mlp_matrices, parameters, run_mlp
from holoscope.codecs.hashgrid.neural.sdf import SphereTracer, shade
from holoscope.codecs.hashgrid.snapshot import Snapshot
from holoscope.core.camera import Camera, check_image_size
from holoscope.core.errors import Cancelled, CorruptStream, InvalidArgument

BATCH = 1 << 17  # points per network evaluation outside the marcher's waves


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def leave_a_core_free() -> int:
    """Interactive use on a CPU: torch's intra-op threads one fewer than the cores (at least
    one), so the GUI thread keeps a core. With every core taken, torch's threads wait on each
    other: measured on a busy 2-core machine, a 200k-element add took 7.7 ms instead of 70 us.
    Returns the thread count set."""
    import os

    threads = max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))
    torch.set_num_threads(threads)
    return threads


def _numbers(value, n: int, what: str, default: tuple = (), error: type = CorruptStream) -> tuple:
    """``n`` finite numbers (``default`` when None); ``error`` names ``what`` otherwise."""
    if value is None and default:
        return default
    ok = isinstance(value, (list, tuple)) and len(value) == n
    ok = ok and all(isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in value)  # fmt: skip
    if not ok:
        raise error(f"{what} is not {n} finite numbers, got {value!r}")
    return tuple(float(v) for v in value)


class SceneRenderer:
    """Draws one snapshot; ``mode`` is "nerf", "sdf" or "image"."""

    def __init__(self, snapshot: Snapshot, *, device: str | None = None) -> None:
        self.snapshot = snapshot
        self.mode = snapshot.mode
        self.device = torch.device(device or default_device())
        snap = snapshot.document.get("snapshot") or {}
        self.background = _numbers(snap.get("background_color"), 4, "snapshot.background_color",
                                   (0.0, 0.0, 0.0, 1.0))  # fmt: skip
        self.exposure = _numbers([snap.get("exposure", 0.0)], 1, "snapshot.exposure")[0]
        self.stats = MarchStats()  # NeRF: samples and waves of the last render
        params = parameters(snapshot).to(self.device)
        if self.mode == "nerf":
            self.transform = scene_transform(snapshot)
            self.field = NerfField(FieldLayout.of(snapshot), params)
            self.marcher = Marcher(self.field, OccupancyGrid.of(snapshot, self.device), RenderBox.of(snapshot),
                                   cone_angle_of(snapshot.aabb_scale), self.device,
                                   wave_samples=1 << (21 if self.device.type == "cuda" else 17))  # fmt: skip
        else:
            self.transform = scene_transform(snapshot)
            self._mlp = snapshot.mlps[0]
            self._matrices = mlp_matrices(snapshot, params)[self._mlp.name]
            self._table = params[snapshot.grid_offset :]
        if self.mode == "sdf":
            lo, hi = _sdf_box(snap)
            self.tracer = SphereTracer(self.distance, lo, hi, self.device)
            self.sun_dir = _numbers(snap.get("sun_dir"), 3, "snapshot.sun_dir", (0.5773503, 0.5773503, 0.5773503))
            self.up_dir = _numbers(snap.get("up_dir"), 3, "snapshot.up_dir", (0.0, 1.0, 0.0))

    # networks ---------------------------------------------------------------------------------
    def _network(self, points: torch.Tensor) -> torch.Tensor:
        features = encode(points, self._table, self.snapshot.levels, self.snapshot.features)
        return run_mlp(features, self._mlp, self._matrices)

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        """SDF: the signed distance at NGP points [N, 3] (the network reads them as they are)."""
        return torch.cat([self._network(points[i : i + BATCH])[:, 0] for i in range(0, points.shape[0], BATCH)]
                         ) if points.shape[0] else points.new_zeros(0)  # fmt: skip

    # cameras ----------------------------------------------------------------------------------
    def default_camera(self, width: int, height: int) -> Camera:
        """The snapshot's stored view in the scene's world (NeRF: the dataset world)."""
        if self.mode == "image":
            raise InvalidArgument("an image-mode snapshot has no camera: show it with render_image")
        width, height = check_image_size(width, height)
        return stored_camera(self.snapshot, width, height)

    def _rays(self, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
        origin, dirs = camera_rays(camera, self.transform)
        d = torch.from_numpy(dirs.reshape(-1, 3)).to(self.device)
        return torch.from_numpy(origin).to(self.device).expand_as(d), d

    # drawing ----------------------------------------------------------------------------------
    def render(self, camera: Camera, *, background: tuple[float, float, float] | None = None,
               cancelled: Callable[[], bool] | None = None) -> np.ndarray:  # fmt: skip
        """The scene seen by ``camera``: float32 [H, W, 3] sRGB in [0, 1]."""
        if self.mode == "image":
            raise InvalidArgument("an image-mode snapshot is drawn with render_image, not from a camera")
        bg = self.background
        if background is not None:
            bg = (*_numbers(list(background) if isinstance(background, (list, tuple)) else background, 3,
                            "the background", error=InvalidArgument), 1.0)  # fmt: skip
        with torch.inference_mode():
            origins, dirs = self._rays(camera)
            if self.mode == "nerf":
                self.stats = MarchStats()
                rgb, alpha = self.marcher.march(origins, dirs, cancelled=cancelled, stats=self.stats)
                out = over_background(rgb, alpha, bg, self.exposure)
            else:
                out = self._render_sdf(origins, dirs, bg, cancelled)
        return out.reshape(camera.height, camera.width, 3).float().cpu().numpy()

    def _render_sdf(self, origins, dirs, bg, cancelled) -> torch.Tensor:
        hit, pos, _ = self.tracer.trace(origins, dirs, cancelled=cancelled)
        idx = torch.nonzero(hit).squeeze(1)
        if cancelled is not None and cancelled():
            raise Cancelled("the render was cancelled")
        colour = torch.tensor(bg[:3], dtype=torch.float32, device=self.device)
        linear = (srgb_to_linear(colour) * bg[3]).expand(origins.shape[0], 3).clone()
        if idx.numel():
            normals = self.tracer.normals(pos[idx])
            linear[idx] = shade(normals, dirs[idx], self.sun_dir, self.up_dir)
        return linear_to_srgb(linear * 2.0**self.exposure).clamp(0.0, 1.0)

    def render_image(self, width: int, height: int, view: tuple[float, float, float, float] = (0, 0, 1, 1), *,
                     cancelled: Callable[[], bool] | None = None) -> np.ndarray:  # fmt: skip
        """Image mode: the rectangle ``view`` = (u0, v0, u1, v1) of the image (0..1, v down) shown
        at width x height, evaluating only those output pixels (pixel (x, y) at
        ``u = u0 + (x + 0.5) (u1 - u0) / width``, likewise v): float32 [H, W, 3] as the network
        outputs it (sRGB), clamped to [0, 1]."""
        if self.mode != "image":
            raise InvalidArgument(f"render_image draws image-mode snapshots, this one is {self.mode}")
        width, height = check_image_size(width, height)
        u0, v0, u1, v1 = _numbers(list(view) if isinstance(view, (list, tuple)) else view, 4, "the view rectangle",
                                  error=InvalidArgument)  # fmt: skip
        if not (u1 != u0 and v1 != v0):
            raise InvalidArgument(f"the view rectangle {view} is empty")
        us = u0 + (np.arange(width) + 0.5) * ((u1 - u0) / width)
        vs = v0 + (np.arange(height) + 0.5) * ((v1 - v0) / height)
        uv = np.stack(np.meshgrid(us, vs, indexing="xy"), -1).reshape(-1, 2)
        return self.evaluate_uv(uv, cancelled=cancelled).reshape(height, width, 3)

    def evaluate_uv(self, uv: np.ndarray, *, cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Image mode at arbitrary image positions ``uv`` [N, 2] (0..1, v down): sRGB [N, 3] in
        [0, 1]. The app's image plane evaluates only the screen pixels that show the image."""
        if self.mode != "image":
            raise InvalidArgument(f"evaluate_uv reads image-mode snapshots, this one is {self.mode}")
        points = torch.from_numpy(np.ascontiguousarray(uv, np.float32).reshape(-1, 2)).to(self.device)
        out = torch.empty((points.shape[0], 3), device=self.device)
        with torch.inference_mode():
            for start in range(0, points.shape[0], BATCH):
                if cancelled is not None and cancelled():
                    raise Cancelled("the render was cancelled")
                out[start : start + BATCH] = self._network(points[start : start + BATCH])
        return out.clamp_(0, 1).cpu().numpy()


def _sdf_box(snap: dict) -> tuple[list[float], list[float]]:
    """The SDF's aabb (``snapshot.aabb``, the unit cube by default; zero_offset 0 inflates nothing)."""
    box = snap.get("aabb")
    if box is None:
        return [0.0] * 3, [1.0] * 3
    if not isinstance(box, dict):
        raise CorruptStream("snapshot.aabb is not {min, max}")
    return list(_numbers(box.get("min"), 3, "snapshot.aabb.min")), list(_numbers(box.get("max"), 3, "snapshot.aabb.max"))


__all__ = ["SceneRenderer", "default_device"]
