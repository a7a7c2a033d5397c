"""Small Instant-NGP snapshots for the hash-grid tests, in instant-ngp's own key layout (written by
holoscope.codecs.hashgrid.writer and read back through MessagePack, as a file would be).

- :func:`random_snapshot`: random weights in any mode (parser and plumbing tests).
- :func:`analytic_nerf`: a NeRF whose picture is predictable. Level 0 of the grid is dense; its
  vertex entries are set from the vertex's NGP position: feature 0 is the log-density
  ``sharpness * (radius - |p - centre|)`` (or a constant, for fog), the other features are colour
  logits. The MLPs pass those features through unchanged (no biases and ReLU between layers: each
  signed value goes through two rows, ``relu(v) - relu(-v)``), so density and colour are the
  trilinear interpolation of the vertex values, exact for affine functions (except in the last
  cell of each axis, whose upper corner wraps into the next row as tiny-cuda-nn's dense indexing
  does). Every other level is random and its MLP columns are zero. The density grid marks the
  sphere's cells.
- :func:`analytic_sdf`: an SDF whose level 0 holds ``|p - centre| - radius``, passed through.
- :func:`image_snapshot`: an image whose level 0 holds colour ramps in u and v.
- :func:`camera_at`: a Camera in a snapshot's world placed by NGP-space points;
  :func:`impact_parameters`: how close each pixel's ray passes a point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from holoscope.codecs.hashgrid import msgpack
from holoscope.codecs.hashgrid.cameras import camera_rays, scene_transform
from holoscope.codecs.hashgrid.occupancy import GRID_SIZE, grid_to_morton, max_cascade
from holoscope.codecs.hashgrid.snapshot import Snapshot, parse_snapshot
from holoscope.codecs.hashgrid.writer import NerfExtras, SnapshotConfig, snapshot_document
from holoscope.core.camera import Camera, look_at

# the two NeRF grid configurations instant-ngp has shipped (paper: L16 F2; current: L8 F4), small tables
GRIDS = {"L16F2": dict(n_levels=16, features=2), "L8F4": dict(n_levels=8, features=4)}
LOG2_TABLE = 12  # 4096 entries: level 0 (16^3 vertices) stays dense


def load(document: dict, *, image_size: tuple[int, int] | None = None) -> Snapshot:
    """A document as a reader sees it: packed to MessagePack and parsed back."""
    return parse_snapshot(msgpack.unpackb(msgpack.packb(document)), image_size=image_size)


def config(mode: str = "nerf", grid: str = "L8F4", *, aabb_scale: int = 1, log2_table: int = LOG2_TABLE,
           base_resolution: int = 16) -> SnapshotConfig:  # fmt: skip
    if mode == "image":
        return SnapshotConfig(mode="image", n_levels=8, features=2, log2_table=log2_table, hidden=2,
                              base_resolution=base_resolution)  # fmt: skip
    hidden = 1 if mode == "nerf" else 2
    return SnapshotConfig(mode=mode, log2_table=log2_table, hidden=hidden, aabb_scale=aabb_scale,
                          base_resolution=base_resolution, **GRIDS[grid])  # fmt: skip


def random_snapshot(mode: str = "nerf", grid: str = "L8F4", *, params_type: str = "__half", seed: int = 0,
                    aabb_scale: int = 1, density_grid: np.ndarray | None = None, nerf: NerfExtras | None = None,
                    image_size: tuple[int, int] | None = None, **document_kw) -> Snapshot:  # fmt: skip
    """Random weights; ``nerf`` (NeRF only) defaults to extras holding ``density_grid``."""
    cfg = config(mode, grid, aabb_scale=aabb_scale)
    params = np.random.default_rng(seed).uniform(-0.5, 0.5, cfg.n_params(image_size)).astype(np.float32)
    if mode == "nerf" and nerf is None:
        nerf = NerfExtras(density_grid=density_grid)
    doc = snapshot_document(cfg, params, params_type=params_type, nerf=nerf, **document_kw)
    return load(doc, image_size=image_size)


def density_grid_of(occupied, aabb_scale: int = 1, *, empty: float = 0.0, full: float = 1.0) -> np.ndarray:
    """fp16-ready density values (cascades x 128^3, Morton order) set to ``full`` in the cells whose
    centre ``occupied(points [N, 3] NGP) -> bool [N]`` accepts, ``empty`` elsewhere."""
    cascades = max_cascade(aabb_scale) + 1
    i = (np.arange(GRID_SIZE) + 0.5) / GRID_SIZE
    unit = np.stack(np.meshgrid(i, i, i, indexing="ij"), -1).reshape(-1, 3)
    out = []
    for m in range(cascades):
        points = (unit - 0.5) * 2.0**m + 0.5
        mask = np.asarray(occupied(points), bool).reshape((GRID_SIZE,) * 3)
        out.append(grid_to_morton(np.where(mask, full, empty).astype(np.float32)))
    return np.concatenate(out)


@lru_cache(maxsize=8)
def _ball_grid(centre: tuple[float, float, float], reach: float, aabb_scale: int) -> np.ndarray:
    """Density values marking the cells whose centre is within ``reach`` of ``centre`` (cached, read-only)."""
    grid = density_grid_of(lambda p: np.linalg.norm(p - np.asarray(centre), axis=1) <= reach, aabb_scale)
    grid.setflags(write=False)
    return grid


# --- analytic scenes -----------------------------------------------------------------------------


def _pass_through(width: int, in_pad: int, hidden: int, out_pad: int, routes: dict[int, tuple[int, float]],
                  ) -> list[np.ndarray]:  # fmt: skip
    """Bias-free ReLU MLP matrices computing ``out[k] = sum scale * in[j]`` for each k -> (j, scale)
    in ``routes``: each route is two hidden rows, relu(v) and relu(-v), carried through identity
    hidden layers and subtracted at the output."""
    first = np.zeros((width, in_pad), np.float32)
    mids = [np.zeros((width, width), np.float32) for _ in range(hidden - 1)]
    last = np.zeros((out_pad, width), np.float32)
    for slot, (k, (j, scale)) in enumerate(routes.items()):
        pos, neg = 2 * slot, 2 * slot + 1
        first[pos, j], first[neg, j] = 1.0, -1.0
        for m in mids:
            m[pos, pos] = m[neg, neg] = 1.0
        last[k, pos], last[k, neg] = scale, -scale
    return [first, *mids, last]


def _level0_vertices(levels, aabb: tuple[float, float]) -> np.ndarray:
    """NGP position [res^3, 3] of every level-0 vertex, in dense index order (x fastest)."""
    level = levels[0]
    assert level.dense, "level 0 must be dense for an analytic scene"
    v = np.arange(level.resolution, dtype=np.float64)
    z, y, x = np.meshgrid(v, v, v, indexing="ij")
    grid = np.stack([x, y, z], -1).reshape(-1, 3)
    unit = (grid - 0.5) / level.scale  # p * scale + 0.5 = vertex
    lo, hi = aabb
    return lo + unit * (hi - lo)


def _with_level0(cfg: SnapshotConfig, mlps: list[np.ndarray], values: np.ndarray, seed: int,
                 image_size=None) -> np.ndarray:  # fmt: skip
    """All parameters: MLP matrices, then the grid with level 0's entries set to ``values``
    [res^dims, F] and every other level random."""
    _, levels, features, _, _ = cfg.layout(image_size)
    total = cfg.n_params(image_size)
    mlp_values = np.concatenate([m.ravel() for m in mlps])
    grid = np.random.default_rng(seed).uniform(-1, 1, total - mlp_values.size).astype(np.float32)
    level = levels[0]
    block = np.zeros((level.size, features), np.float32)
    block[: values.shape[0]] = values
    grid[: level.size * features] = block.ravel()
    return np.concatenate([mlp_values, grid])


@dataclass
class AnalyticNerf:
    snapshot: Snapshot
    centre: np.ndarray  # NGP
    radius: float  # NGP
    sharpness: float  # log-density slope per NGP unit
    colour_logits: np.ndarray  # [3]: the colour is sigmoid of these (sRGB-encoded)

    @property
    def colour(self) -> np.ndarray:
        return 1 / (1 + np.exp(-self.colour_logits))


def analytic_nerf(grid: str = "L8F4", *, params_type: str = "__half", aabb_scale: int = 1,
                  centre=(0.5, 0.5, 0.5), radius: float = 0.25, sharpness: float = 400.0,
                  colour_logits=(1.5, -0.5, 0.3), fog: float | None = None, occupancy: str = "sphere",
                  margin: float | None = None, background=(0.0, 0.0, 0.0, 1.0), seed: int = 1,
                  nerf: NerfExtras | None = None, **document_kw) -> AnalyticNerf:  # fmt: skip
    """A glowing sphere: log-density ``sharpness * (radius - |p - centre|)`` (``fog``: the constant
    log-density ``fog`` everywhere instead), constant colour ``sigmoid(colour_logits)``.
    ``occupancy``: "sphere" (cells whose centre is within ``margin`` of the sphere, by default two
    cell diagonals), "all", "none" (the grid never populated: empty ``density_grid_binary``)."""
    cfg = config("nerf", grid, aabb_scale=aabb_scale)
    mlps_shape, levels, features, _, _ = cfg.layout()
    s = float(min(aabb_scale, 128))
    aabb = (0.5 - s / 2, 0.5 + s / 2)
    centre = np.asarray(centre, np.float64)
    verts = _level0_vertices(levels, aabb)
    values = np.zeros((verts.shape[0], features), np.float32)
    if fog is None:
        values[:, 0] = sharpness * (radius - np.linalg.norm(verts - centre, axis=1))
    else:
        values[:, 0] = fog
    # colour logits: features 1..3 when there are 4 features; with 2, feature 1 scaled per channel
    logits = np.asarray(colour_logits, np.float32)
    if features >= 4:
        values[:, 1:4] = logits
        rgb_routes = {c: (1 + c, 1.0) for c in range(3)}
    else:
        values[:, 1] = 1.0
        rgb_routes = {c: (1, float(logits[c])) for c in range(3)}
    density_mlp, rgb_mlp = mlps_shape
    dm = _pass_through(density_mlp.width, density_mlp.matrices[0][1], density_mlp.hidden, 16,
                       {k: (k, 1.0) for k in range(min(features, 4))})  # fmt: skip
    rm = _pass_through(rgb_mlp.width, rgb_mlp.matrices[0][1], rgb_mlp.hidden, 16, rgb_routes)
    params = _with_level0(cfg, dm + rm, values, seed)

    if occupancy == "none":
        density = None
    elif occupancy == "all" or fog is not None:
        density = np.ones((max_cascade(aabb_scale) + 1) * GRID_SIZE**3, np.float32)
    else:
        reach = radius + (2 * np.sqrt(3) * s / GRID_SIZE if margin is None else margin)
        density = _ball_grid(tuple(float(c) for c in centre), float(reach), aabb_scale)
    extras = replace(nerf or NerfExtras(), density_grid=density)
    doc = snapshot_document(cfg, params, params_type=params_type, nerf=extras, background=background,
                            **document_kw)  # fmt: skip
    return AnalyticNerf(load(doc), centre, radius, sharpness, logits)


@dataclass
class AnalyticSdf:
    snapshot: Snapshot
    centre: np.ndarray
    radius: float


def analytic_sdf(*, params_type: str = "float", centre=(0.5, 0.5, 0.5), radius: float = 0.3,
                 base_resolution: int = 32, seed: int = 2, **document_kw) -> AnalyticSdf:  # fmt: skip
    """An SDF of a sphere: level 0 (dense, ``base_resolution`` vertices a side) holds the signed
    distance ``|p - centre| - radius`` of its vertices, passed through the MLP."""
    log2 = max(LOG2_TABLE, int(np.ceil(np.log2(base_resolution**3))))
    cfg = SnapshotConfig(mode="sdf", n_levels=4, features=2, log2_table=log2, hidden=2, base_resolution=base_resolution)
    (mlp,), levels, features, _, _ = cfg.layout()
    centre = np.asarray(centre, np.float64)
    verts = _level0_vertices(levels, (0.0, 1.0))
    values = np.zeros((verts.shape[0], features), np.float32)
    values[:, 0] = np.linalg.norm(verts - centre, axis=1) - radius
    mats = _pass_through(mlp.width, mlp.matrices[0][1], mlp.hidden, 16, {0: (0, 1.0)})
    params = _with_level0(cfg, mats, values, seed)
    doc = snapshot_document(cfg, params, params_type=params_type, **document_kw)
    return AnalyticSdf(load(doc), centre, radius)


def image_snapshot(width: int = 40, height: int = 24, *, params_type: str = "float", seed: int = 3) -> Snapshot:
    """An image whose level-0 features are ramps in u and v, shown as R = u, G = v, B = 0 (up to
    the last level-0 cell of each axis, u or v > 1 - 0.5 / scale, where the upper corner wraps)."""
    size = (width, height)
    cfg = config("image")
    (mlp,), levels, features, _, _ = cfg.layout(size)
    level = levels[0]
    assert level.dense
    v = np.arange(level.resolution, dtype=np.float64)
    gy, gx = np.meshgrid(v, v, indexing="ij")
    uv = np.stack([gx.ravel(), gy.ravel()], 1)
    values = ((uv - 0.5) / level.scale).astype(np.float32)  # the vertex's own (u, v): exact
    mats = _pass_through(mlp.width, mlp.matrices[0][1], mlp.hidden, 16, {0: (0, 1.0), 1: (1, 1.0)})
    params = _with_level0(cfg, mats, values, seed, image_size=size)
    doc = snapshot_document(cfg, params, params_type=params_type)
    return load(doc, image_size=size)


def camera_at(snapshot: Snapshot, eye_ngp, target_ngp, width: int, height: int, fov_y: float = 40.0,
              up_ngp=(0.0, 1.0, 0.0)) -> Camera:  # fmt: skip
    """A :class:`Camera` in the snapshot's world (NeRF: the dataset world) placed by NGP-space
    points: at ``eye_ngp`` looking at ``target_ngp``, ``up_ngp`` up."""
    gl = look_at(np.asarray(eye_ngp, float), np.asarray(target_ngp, float), np.asarray(up_ngp, float))
    opencv = gl[:3].copy()
    opencv[:, 1:3] *= -1  # OpenGL -> OpenCV camera axes, as NGP-space camera matrices are
    return Camera(width, height, fov_y, scene_transform(snapshot).matrix_from_ngp(opencv))


def impact_parameters(camera: Camera, snapshot: Snapshot, centre_ngp) -> np.ndarray:
    """[H, W]: how close each pixel's ray passes to ``centre_ngp`` (NGP units)."""
    origin, dirs = camera_rays(camera, scene_transform(snapshot))
    to = np.asarray(centre_ngp, np.float64) - origin
    along = dirs @ to
    return np.sqrt(np.maximum(to @ to - along**2, 0.0))


def s2l(c):
    """sRGB -> linear (the reference formula, float64)."""
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def l2s(c):
    """linear -> sRGB (the reference formula, float64)."""
    c = np.asarray(c, np.float64)
    return np.where(c < 0.0031308, 12.92 * c, 1.055 * np.maximum(c, 0) ** (1 / 2.4) - 0.055)
