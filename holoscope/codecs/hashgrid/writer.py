"""Instant-NGP snapshots written by holoscope: the document instant-ngp's ``load_snapshot``
reads (its config keys, ``snapshot`` with parameters, density grid, camera and NeRF dataset
block), as ``.ingp`` (gzip-framed, as instant-ngp writes it) or raw ``.msgpack``. Trained scenes
and test fixtures go through it, so instant-ngp's own testbed can open what holoscope makes.

Every key instant-ngp reads with ``at()`` or ``operator[]`` on load is written (for NeRF:
``nerf.rgb.*`` counters, the dataset's ``render_aabb``, ``up``, ``offset``, ``scale``,
``aabb_scale``, ``envmap_resolution``, ``from_mitsuba``); matrices are rows of columns, as
tiny-cuda-nn's ``vec_json.h`` writes them.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holoscope.codecs.framing import write_atomically
from holoscope.codecs.hashgrid import msgpack
from holoscope.codecs.hashgrid.levels import grid_params
from holoscope.codecs.hashgrid.snapshot import MODES, PARAM_BYTES, network_layout
from holoscope.core.errors import InvalidArgument

DENSITY_GRID_SIZE = 128  # NERF_GRIDSIZE()
DEFAULT_DATASET_SCALE = 0.33  # nerf_loader: transforms.json translation * 0.33 + 0.5
DEFAULT_DATASET_OFFSET = (0.5, 0.5, 0.5)

ADAM = {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15, "l2_reg": 1e-6}
SH_DIR_ENCODING = {"otype": "Composite", "nested": [{"n_dims_to_encode": 3, "otype": "SphericalHarmonics", "degree": 4},
                                                    {"otype": "Identity"}]}  # fmt: skip


def _mlp(width: int, hidden: int) -> dict:
    return {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": width,
            "n_hidden_layers": hidden}  # fmt: skip


@dataclass
class SnapshotConfig:
    """What a snapshot's network is: instant-ngp's config keys. Defaults are instant-ngp's
    current NeRF config (8 levels x 4 features, 2^19 entries); image mode's is 16 x 2, 2^24."""

    mode: str = "nerf"
    n_levels: int = 8
    features: int = 4
    log2_table: int = 19
    base_resolution: int = 16
    width: int = 64
    hidden: int = 1  # the density MLP for NeRF, the only MLP elsewhere
    rgb_width: int = 64
    rgb_hidden: int = 2
    aabb_scale: int = 1  # NeRF only

    def document(self) -> dict:
        if self.mode not in MODES:
            raise InvalidArgument(f"a snapshot's mode is one of {', '.join(MODES)}, not {self.mode!r}")
        doc = {
            "loss": {"otype": {"nerf": "Huber", "image": "L2", "sdf": "MAPE"}[self.mode]},
            "optimizer": {"otype": "ExponentialDecay", "decay_start": 20000, "decay_interval": 10000,
                          "decay_base": 0.33, "nested": dict(ADAM)},  # fmt: skip
            "encoding": {"otype": "HashGrid", "n_levels": self.n_levels, "n_features_per_level": self.features,
                         "log2_hashmap_size": self.log2_table, "base_resolution": self.base_resolution},  # fmt: skip
            "network": _mlp(self.width, self.hidden),
        }
        if self.mode == "nerf":
            doc["dir_encoding"] = SH_DIR_ENCODING
            doc["rgb_network"] = _mlp(self.rgb_width, self.rgb_hidden)
        return doc

    def layout(self, image_size: tuple[int, int] | None = None):
        """(MLP shapes, levels, features, per-level scale, aabb scale) as a reader computes them."""
        doc = self.document()
        doc["snapshot"] = {"nerf": {"aabb_scale": self.aabb_scale}}
        return network_layout(doc, self.mode, image_size=image_size)

    def n_params(self, image_size: tuple[int, int] | None = None) -> int:
        """All parameters: the MLPs', then the grid's (image mode needs the image size)."""
        mlps, levels, features, _, _ = self.layout(image_size)
        return sum(m.params for m in mlps) + grid_params(levels, features)


@dataclass
class NerfExtras:
    """A NeRF snapshot's scene: density grid (fp16 values, Morton order, cascades one after
    another), the dataset transform, the stored view and the background."""

    density_grid: np.ndarray | None = None  # float values, 128^3 x cascades
    dataset_scale: float = DEFAULT_DATASET_SCALE
    dataset_offset: tuple[float, float, float] = DEFAULT_DATASET_OFFSET
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    is_hdr: bool = False
    images: list[dict] = field(default_factory=list)  # per-image {"focal_length", "principal_point", "resolution", "xform"}


def snapshot_document(config: SnapshotConfig, params: np.ndarray, *, params_type: str = "__half",
                      nerf: NerfExtras | None = None, camera_matrix: np.ndarray | None = None,
                      fov_axis: int = 1, relative_focal_length: tuple[float, float] | None = None,
                      background: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0),
                      training_step: int = 0, loss: float = 0.0) -> dict:  # fmt: skip
    """The whole snapshot document; ``params`` are all parameters in tiny-cuda-nn order
    (MLPs, then the grid), ``camera_matrix`` the stored view (3x4, NGP space)."""
    if params_type not in PARAM_BYTES:
        raise InvalidArgument(f"params_type is __half or float, not {params_type!r}")
    values = np.ascontiguousarray(params, np.float16 if params_type == "__half" else np.float32).reshape(-1)
    doc = config.document()
    snap = {
        "version": 1,
        "mode": config.mode,
        "n_params": int(values.size),
        "params_type": params_type,
        "params_binary": values.tobytes(),
        "training_step": training_step,
        "loss": float(loss),
        "aabb": {"min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]},
        "bounding_radius": 1.0,
        "up_dir": [0.0, 1.0, 0.0],
        "sun_dir": [0.5773503, 0.5773503, 0.5773503],
        "exposure": 0.0,
        "background_color": [float(v) for v in background],
        "camera": {
            "matrix": np.asarray(camera_matrix if camera_matrix is not None else _default_camera(), float).tolist(),
            "fov_axis": fov_axis,
            "relative_focal_length": [float(v) for v in (relative_focal_length or default_relative_focal_length())],
            "screen_center": [0.5, 0.5],
            "zoom": 1.0,
            "scale": 1.0,
            "aperture_size": 0.0,
            "autofocus": False,
            "autofocus_target": [0.5, 0.5],
            "autofocus_depth": 0.0,
        },
    }
    if config.mode == "nerf":
        extras = nerf or NerfExtras()
        s = float(min(config.aabb_scale, 128))
        snap["aabb"] = {"min": [0.5 - s / 2] * 3, "max": [0.5 + s / 2] * 3}
        grid = extras.density_grid
        snap["density_grid_size"] = DENSITY_GRID_SIZE
        snap["density_grid_binary"] = b"" if grid is None else np.asarray(grid, np.float16).tobytes()
        snap["nerf"] = {
            "aabb_scale": config.aabb_scale,
            "cam_pos_offset": [0.0, 0.0, 0.0],
            "cam_rot_offset": [0.0, 0.0, 0.0],
            "extra_dims_opt": {},
            "rgb": {"rays_per_batch": 1 << 12, "measured_batch_size": 0, "measured_batch_size_before_compaction": 0},
            "dataset": _dataset(extras, config.aabb_scale),
        }
    doc["snapshot"] = snap
    return doc


def _default_camera() -> np.ndarray:
    from holoscope.codecs.hashgrid.cameras import DEFAULT_VIEW  # instant-ngp's reset_camera view

    return DEFAULT_VIEW.copy()


def default_relative_focal_length() -> tuple[float, float]:
    """instant-ngp's default 50.625-degree vertical field of view as a relative focal length."""
    from holoscope.codecs.hashgrid.cameras import DEFAULT_FOV_Y

    f = 0.5 / math.tan(math.radians(DEFAULT_FOV_Y) / 2)
    return f, f


def _dataset(extras: NerfExtras, aabb_scale: int) -> dict:
    box = {"min": [0.5 - aabb_scale / 2] * 3, "max": [0.5 + aabb_scale / 2] * 3}
    images = extras.images
    return {
        "n_images": len(images),
        "paths": [str(im.get("path", "")) for im in images],
        "metadata": [{"focal_length": list(im["focal_length"]), "principal_point": list(im["principal_point"]),
                      "resolution": list(im["resolution"]), "lens": {}, "rolling_shutter": [0.0, 0.0, 0.0, 0.0]}
                     for im in images],  # fmt: skip
        "xforms": [{"start": np.asarray(im["xform"], float).tolist(), "end": np.asarray(im["xform"], float).tolist()}
                   for im in images],  # fmt: skip
        "render_aabb": box,
        "render_aabb_to_local": np.eye(3).tolist(),
        "up": [float(v) for v in extras.up],
        "offset": [float(v) for v in extras.dataset_offset],
        "envmap_resolution": [0, 0],
        "scale": float(extras.dataset_scale),
        "aabb_scale": aabb_scale,
        "from_mitsuba": False,
        "is_hdr": bool(extras.is_hdr),
        "wants_importance_sampling": True,
        "n_extra_learnable_dims": 0,
    }


def write_snapshot(path: str | Path, document: dict) -> int:
    """``.ingp`` (gzip, as instant-ngp writes it) or ``.msgpack`` (raw) by the extension, written
    atomically; returns the bytes written."""
    data = msgpack.packb(document)
    if str(path).lower().endswith(".ingp"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return write_atomically(path, [data])


__all__ = ["NerfExtras", "SnapshotConfig", "snapshot_document", "write_snapshot"]
