"""A hash-grid scene as the player sees it: the checked snapshot plus what the file could not
say (an image's size), and what ``holoscope info`` reports about it. No torch: the renderer is
built on first use (:meth:`HashGridScene.renderer`), on the thread that renders.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from holoscope.codecs.hashgrid.levels import grid_params
from holoscope.codecs.hashgrid.snapshot import Snapshot


_UNSET = object()


@dataclass(eq=False)
class HashGridScene:
    snapshot: Snapshot
    container: str  # "ingp", "msgpack" or "hgz"
    file_bytes: int
    image_size: tuple[int, int] | None = None  # image mode: (width, height)
    extra_info: dict[str, Any] = field(default_factory=dict)  # container facts (.hgz part sizes ...)
    _renderer: Any = field(default=None, repr=False)
    _occupancy: Any = field(default=_UNSET, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def mode(self) -> str:
        return self.snapshot.mode

    def renderer(self, device: str | None = None, *, interactive: bool = False):
        """The torch renderer (parameters on the device once); built on first use.
        ``interactive`` (the app): on a CPU, leave a core to the GUI thread."""
        with self._lock:
            if self._renderer is None:
                from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer, leave_a_core_free

                self._renderer = SceneRenderer(self.snapshot, device=device)
                if interactive and self._renderer.device.type == "cpu":
                    leave_a_core_free()
            return self._renderer

    # Framing (NeRF, SDF): what the app's camera orbits and which way is up ------------------
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World-space box around the scene's content: the occupied cells of the density grid's
        finest cascade (NeRF), else the unit cube instant-ngp normalises scenes into."""
        from holoscope.codecs.hashgrid.cameras import scene_transform

        lo_ngp, hi_ngp = np.zeros(3), np.ones(3)
        if self.mode == "nerf":
            grid = self.occupancy()
            if grid is not None and grid[0].any():
                cells = np.argwhere(grid[0])  # [x, y, z] indices of cascade 0, which spans [0, 1]^3
                lo_ngp, hi_ngp = cells.min(0) / grid.shape[1], (cells.max(0) + 1) / grid.shape[1]
        corners = np.array([[x, y, z] for x in (lo_ngp[0], hi_ngp[0]) for y in (lo_ngp[1], hi_ngp[1])
                            for z in (lo_ngp[2], hi_ngp[2])])  # fmt: skip
        world = scene_transform(self.snapshot).point_from_ngp(corners)
        return world.min(0), world.max(0)

    def up(self) -> str:
        """The orbit up axis ("+y", "-y" or "+z") nearest to the stored view's up."""
        from holoscope.codecs.hashgrid.cameras import stored_camera
        from holoscope.core.camera import UP_AXES

        from holoscope.core.errors import CorruptStream

        try:
            camera_up = stored_camera(self.snapshot, 64, 64).camera_to_world[:3, 1]
        except CorruptStream:  # an unusable stored view: the scene still opens, Y up
            return "+y"
        return max(UP_AXES, key=lambda k: float(UP_AXES[k] @ camera_up))

    def occupancy(self) -> np.ndarray | None:
        """NeRF: the occupancy bitfield [cascades, 128, 128, 128] (None when never populated),
        rebuilt once (0.14 s for the fox's three fp16 cascades) for info and framing alike."""
        if self.mode != "nerf":
            return None
        if self._occupancy is _UNSET:
            from holoscope.codecs.hashgrid.occupancy import occupancy_of

            self._occupancy = occupancy_of(self.snapshot)
        return self._occupancy

    def release(self) -> None:
        with self._lock:
            self._renderer = None

    def describe(self) -> dict[str, Any]:
        """What ``holoscope info`` reports: mode, config, parameter counts, aabb, stored camera
        and density-grid occupancy."""
        snap, doc = self.snapshot, self.snapshot.document
        stored = doc.get("snapshot") or {}
        levels = snap.levels
        encoding = doc.get("encoding") or {}
        log2_table = encoding.get("log2_hashmap_size", 15)  # checked by the reader, with instant-ngp's defaults
        report: dict[str, Any] = {
            "mode": snap.mode,
            "container": self.container,
            "params_type": snap.params_type,
            "parameters": snap.n_params,
            "parameters_by_part": {**{m.name + "_mlp": m.params for m in snap.mlps},
                                   "grid": grid_params(levels, snap.features)},  # fmt: skip
            "bits_per_parameter": round(8 * self.file_bytes / snap.n_params, 3),
            "levels": len(levels),
            "features_per_level": snap.features,
            "log2_hashmap_size": log2_table,
            "base_resolution": encoding.get("base_resolution", 1 << (log2_table // (2 if snap.mode == "image" else 3))),
            "per_level_scale": round(snap.per_level_scale, 7),
            "dense_levels": sum(level.dense for level in levels),
            "resolutions": [level.resolution for level in levels],
            "mlps": [{"name": m.name, "inputs": m.inputs, "width": m.width, "hidden_layers": m.hidden,
                      "outputs": m.outputs} for m in snap.mlps],  # fmt: skip
        }
        if self.image_size is not None:
            report["image_size"] = list(self.image_size)
        if snap.mode == "nerf":
            report["aabb_scale"] = snap.aabb_scale
            half = min(snap.aabb_scale, 128) / 2
            report["aabb_ngp"] = [[0.5 - half] * 3, [0.5 + half] * 3]
            dataset = ((stored.get("nerf") or {}).get("dataset") or {}) if isinstance(stored.get("nerf"), dict) else {}
            if isinstance(dataset, dict):
                report["dataset_scale"] = dataset.get("scale")
                report["dataset_offset"] = dataset.get("offset")
                report["training_images"] = dataset.get("n_images")
            report.update(_occupancy_report(self.occupancy()))
        if snap.mode != "image":
            report["stored_camera"] = _stored_camera_report(snap)
        if isinstance(stored.get("background_color"), list):
            report["background_color"] = stored["background_color"]
        if isinstance(stored.get("training_step"), int):
            report["training_step"] = stored["training_step"]
        report.update(self.extra_info)
        return report


def _stored_camera_report(snap: Snapshot) -> dict[str, Any]:
    """The stored view in the scene's world (NeRF: the dataset's): where it is, where it looks,
    and its vertical field of view at 1280x720."""
    from holoscope.codecs.hashgrid.cameras import stored_camera

    from holoscope.core.errors import CorruptStream

    try:
        camera = stored_camera(snap, 1280, 720)
    except CorruptStream as exc:  # info still describes the rest; a render names the problem
        return {"unusable": str(exc)}
    c2w = camera.camera_to_world
    return {"position": [round(float(v), 6) for v in c2w[:3, 3]],
            "forward": [round(float(v), 6) for v in -c2w[:3, 2]],
            "fov_y_at_1280x720": round(camera.fov_y, 4)}  # fmt: skip


def _occupancy_report(grid: np.ndarray | None) -> dict[str, Any]:
    if grid is None:
        return {"density_grid": "absent (everything treated as occupied)"}
    per = [round(float(c.mean()), 5) for c in grid]
    return {"density_grid_cascades": len(per), "occupied_fraction_per_cascade": per}


__all__ = ["HashGridScene"]
