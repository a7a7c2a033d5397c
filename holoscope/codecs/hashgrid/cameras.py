"""Cameras of Instant-NGP scenes: the dataset world <-> NGP space, rays for a
:class:`holoscope.core.camera.Camera`, and the snapshot's stored view (hashgrid.md §2, §6;
``nerf_loader.h``, ``testbed.cu``, ``common_device.cuh``). numpy only.

Worlds:

- **NeRF**: the dataset world is transforms.json's (OpenGL camera axes: x right, y up, looking
  down -z), what nerfstudio camera paths and holoscope's camera_path.json hold. instant-ngp's
  ``nerf_matrix_to_ngp`` takes a camera-to-world matrix there to NGP space: negate columns 1 and 2
  (OpenCV camera axes: y down, looking down +z), translation * scale + offset (the snapshot's
  ``nerf.dataset.scale`` / ``offset``, defaults 0.33 and 0.5), then cycle the rows so that NGP
  (x, y, z) = that (y, z, x). ``from_mitsuba`` datasets also negate columns 0 and 2 (net: 0 and 1) instead of cycling.
- **SDF (and image)**: there is no dataset transform; the world *is* NGP space (the mesh fitted to
  the unit cube), with OpenGL camera axes: only the camera-axis flip applies (scale 1, offset 0,
  no cycle). instant-ngp's default SDF view (at (0.5, 0.5, 2) looking down -z, NGP +y up) is
  then an upright OpenGL camera.

Rays (``uv_to_ray``, pinhole, no lens): pixel (x, y), row 0 at the top, is sampled at its centre,
``d_cam = ((x + 0.5 - cx) / fx, (y + 0.5 - cy) / fy, 1)`` in OpenGL-flipped (OpenCV) camera
axes, ``d = R_ngp @ d_cam`` normalised, origin the camera position (render near distance 0).

Stored view: ``snapshot.camera.matrix`` (3 rows x 4 columns, NGP space), ``fov_axis``,
``relative_focal_length`` and ``zoom``: the focal length in pixels is
``relative_focal_length * resolution[fov_axis] * zoom`` per axis (``calc_focal_length``), so the
vertical field of view at W x H is ``2 atan(H / (2 fy))``. :class:`Camera` has square pixels and a
centred principal point: fy sets the field of view, and ``screen_center`` (a principal-point
shift, 0.5 = centred) is not representable and is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from holoscope.core.camera import MAX_FOV, MIN_FOV, Camera
from holoscope.core.errors import CorruptStream

DEFAULT_SCALE = 0.33  # nerf_loader: transforms.json translation * 0.33 + 0.5
DEFAULT_OFFSET = (0.5, 0.5, 0.5)
# instant-ngp's reset_camera: the default view at (0.5, 0.5, 0.5) backed off 1.5 along its view
# direction (NGP -z), vertical field of view 50.625 degrees.
DEFAULT_VIEW = np.array([[1.0, 0.0, 0.0, 0.5], [0.0, -1.0, 0.0, 0.5], [0.0, 0.0, -1.0, 2.0]])
DEFAULT_FOV_Y = 50.625


@dataclass(frozen=True)
class SceneTransform:
    """How a scene's world maps to NGP space: ``p_ngp = cycle(p * scale + offset)``, with the
    camera-axis flip on camera matrices (see the module docstring)."""

    scale: float = DEFAULT_SCALE
    offset: tuple[float, float, float] = DEFAULT_OFFSET
    cycle: bool = True  # NGP (x, y, z) = world (y, z, x); False for SDF and from_mitsuba datasets
    mitsuba: bool = False  # from_mitsuba datasets: columns 0 and 1 negated instead of 1 and 2

    @classmethod
    def identity(cls) -> "SceneTransform":
        """SDF and image scenes: the world is NGP space."""
        return cls(1.0, (0.0, 0.0, 0.0), cycle=False)

    # points and directions ------------------------------------------------------------------
    def _to_ngp_axes(self, v: np.ndarray) -> np.ndarray:
        return v[..., [1, 2, 0]] if self.cycle else v

    def _from_ngp_axes(self, v: np.ndarray) -> np.ndarray:
        return v[..., [2, 0, 1]] if self.cycle else v

    def point_to_ngp(self, p: np.ndarray) -> np.ndarray:
        return self._to_ngp_axes(np.asarray(p, np.float64) * self.scale + np.asarray(self.offset))

    def point_from_ngp(self, p: np.ndarray) -> np.ndarray:
        """``ngp_position_to_nerf``."""
        return (self._from_ngp_axes(np.asarray(p, np.float64)) - np.asarray(self.offset)) / self.scale

    def direction_to_ngp(self, d: np.ndarray) -> np.ndarray:
        return self._to_ngp_axes(np.asarray(d, np.float64))

    # camera-to-world matrices ---------------------------------------------------------------
    def _flips(self) -> np.ndarray:
        # nerf_loader negates columns 1 and 2, then (from_mitsuba) columns 0 and 2: net 0 and 1
        return np.array([-1.0, -1.0, 1.0]) if self.mitsuba else np.array([1.0, -1.0, -1.0])

    def matrix_to_ngp(self, c2w: np.ndarray) -> np.ndarray:
        """``nerf_matrix_to_ngp`` (unscaled columns): a world camera-to-world matrix (3x4 or 4x4,
        OpenGL camera axes) -> 3x4 in NGP space (OpenCV camera axes)."""
        m = _as_3x4(c2w).copy()
        m[:, :3] *= self._flips()
        m[:, 3] = m[:, 3] * self.scale + np.asarray(self.offset)
        return m[[1, 2, 0]] if self.cycle else m

    def matrix_from_ngp(self, m_ngp: np.ndarray) -> np.ndarray:
        """``ngp_matrix_to_nerf``: 3x4 NGP-space camera matrix -> 4x4 world camera-to-world."""
        m = _as_3x4(m_ngp)
        m = m[[2, 0, 1]].copy() if self.cycle else m.copy()
        m[:, :3] *= self._flips()
        m[:, 3] = (m[:, 3] - np.asarray(self.offset)) / self.scale
        return np.vstack([m, [0.0, 0.0, 0.0, 1.0]])


def _as_3x4(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    if m.shape not in ((3, 4), (4, 4)):
        raise ValueError(f"a camera matrix is 3x4 or 4x4, got {m.shape}")
    return m[:3]


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CorruptStream(f"{what} is {value!r}, not a finite number")
    return float(value)


def _vector(value, n: int, what: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise CorruptStream(f"{what} is not a list of {n} numbers")
    return np.array([_number(v, what) for v in value])


def nerf_matrix_to_ngp(c2w: np.ndarray, scale: float = DEFAULT_SCALE,
                       offset: tuple[float, float, float] = DEFAULT_OFFSET) -> np.ndarray:  # fmt: skip
    """instant-ngp's ``nerf_matrix_to_ngp`` for a transforms.json camera-to-world matrix."""
    return SceneTransform(scale, tuple(offset)).matrix_to_ngp(c2w)


def ngp_matrix_to_nerf(m_ngp: np.ndarray, scale: float = DEFAULT_SCALE,
                       offset: tuple[float, float, float] = DEFAULT_OFFSET) -> np.ndarray:  # fmt: skip
    """instant-ngp's ``ngp_matrix_to_nerf``, as a 4x4 camera-to-world matrix."""
    return SceneTransform(scale, tuple(offset)).matrix_from_ngp(m_ngp)


def scene_transform(snapshot) -> SceneTransform:
    """The world of a snapshot: its dataset transform for NeRF, NGP space itself otherwise."""
    if snapshot.mode != "nerf":
        return SceneTransform.identity()
    dataset = ((snapshot.document.get("snapshot") or {}).get("nerf") or {}).get("dataset")
    if not isinstance(dataset, dict):
        return SceneTransform()
    scale = _number(dataset.get("scale", DEFAULT_SCALE), "snapshot.nerf.dataset.scale")
    if scale <= 0:
        raise CorruptStream(f"snapshot.nerf.dataset.scale is {scale}, not positive")
    offset = _vector(dataset.get("offset", list(DEFAULT_OFFSET)), 3, "snapshot.nerf.dataset.offset")
    mitsuba = bool(dataset.get("from_mitsuba", False))
    return SceneTransform(scale, tuple(float(v) for v in offset), cycle=not mitsuba, mitsuba=mitsuba)


def camera_rays(camera: Camera, transform: SceneTransform,
                rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(origin [3], unit directions [H', W, 3]) in NGP space, float32, of ``camera`` (given in the
    scene's world); ``rows`` limits the rows (row 0 at the top)."""
    m = transform.matrix_to_ngp(camera.camera_to_world)
    f = camera.focal
    ys = np.arange(camera.height)[rows if rows is not None else slice(None)]
    xs = np.arange(camera.width)
    u = (xs + 0.5 - camera.width / 2) / f
    v = (ys + 0.5 - camera.height / 2) / f
    d_cam = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)  # OpenCV axes
    d = d_cam @ m[:, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return m[:, 3].astype(np.float32), d.astype(np.float32)


def stored_view(snapshot) -> tuple[np.ndarray, float, int, np.ndarray]:
    """(matrix 3x4 NGP, zoom, fov_axis, relative_focal_length [2]) of the snapshot's stored
    camera, instant-ngp's defaults where absent."""
    cam = (snapshot.document.get("snapshot") or {}).get("camera")
    if not isinstance(cam, dict):
        return DEFAULT_VIEW.copy(), 1.0, 1, np.full(2, 0.5 / math.tan(math.radians(DEFAULT_FOV_Y) / 2))
    matrix = cam.get("matrix")
    rows = [_vector(r, 4, "snapshot.camera.matrix") for r in matrix] if isinstance(matrix, list) else []
    if len(rows) != 3:
        raise CorruptStream("snapshot.camera.matrix is not 3 rows of 4 numbers")
    fov_axis = cam.get("fov_axis", 1)
    if fov_axis not in (0, 1) or isinstance(fov_axis, bool):
        raise CorruptStream(f"snapshot.camera.fov_axis is {fov_axis!r}, not 0 or 1")
    rfl = _vector(cam.get("relative_focal_length", [1.0, 1.0]), 2, "snapshot.camera.relative_focal_length")
    zoom = _number(cam.get("zoom", 1.0), "snapshot.camera.zoom")
    if np.any(rfl <= 0) or zoom <= 0:
        raise CorruptStream("the stored camera's focal length is not positive")
    return np.array(rows), zoom, int(fov_axis), rfl


def stored_camera(snapshot, width: int, height: int) -> Camera:
    """The snapshot's stored view as a :class:`Camera` in the scene's world at width x height."""
    matrix, zoom, fov_axis, rfl = stored_view(snapshot)
    fy = rfl[1] * (width, height)[fov_axis] * zoom
    fov_y = math.degrees(2 * math.atan(height / (2 * fy)))
    if not MIN_FOV <= fov_y <= MAX_FOV:
        raise CorruptStream(f"the stored camera's field of view ({fov_y:.3g} degrees at {width}x{height}) is outside "
                            f"{MIN_FOV:g}..{MAX_FOV:g}")  # fmt: skip
    c2w = scene_transform(snapshot).matrix_from_ngp(matrix)
    return Camera(width, height, fov_y, c2w)


__all__ = ["DEFAULT_FOV_Y", "DEFAULT_VIEW", "SceneTransform", "camera_rays", "nerf_matrix_to_ngp",
           "ngp_matrix_to_nerf", "scene_transform", "stored_camera", "stored_view"]  # fmt: skip
