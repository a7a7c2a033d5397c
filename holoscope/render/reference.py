"""CPU reference rasterizer: the test oracle for the OpenGL splat renderer.

It follows the forward pass of INRIA's diff-gaussian-rasterization (forward.cu, auxiliary.h;
see docs §2 of splat-formats.md) rule for rule, in float64 numpy:

* near cull at view depth <= ``camera.near`` (0.2 by default, as INRIA);
* EWA splatting with the x/z, y/z clamp at 1.3·tan(fov/2) and +0.3 on the 2D diagonal;
* a 3σ square extent from the larger eigenvalue, pixel centres at integer coordinates;
* SH colour per view, clamped at 0 only; α = min(0.99, o·e^power), skipped below 1/255;
* front-to-back compositing that stops a pixel once T would drop below 1e-4.

Deliberate departures (none changes a pixel the reference would have drawn):

* Footprint: a splat is evaluated only on pixels within its 3σ square,
  ``|ix - px| <= radius and |iy - py| <= radius``. INRIA evaluates every pixel of every 16x16
  tile the square touches, so it can add faint (α >= 1/255) contributions just outside the
  square; the GL renderer draws quads, which matches this square, not the tiles.
* Splats whose square misses the image, or whose projected values are not finite, are culled
  (INRIA culls the former through its tile rectangle; the latter would be garbage there).
* No +1e-7 in the perspective divide, and float64 instead of float32 throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holoscope.core.camera import Camera
from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.core.splat_math import covariances as covariance_3d
from holoscope.core.splat_math import quats_to_rotmats as quat_to_rotmat
from holoscope.render.sh import sh_to_color

__all__ = ["ProjectedSplats", "project_splats", "quat_to_rotmat", "covariance_3d", "render_reference"]

# Constants of the reference implementation (forward.cu / auxiliary.h).
FOV_CLAMP = 1.3  # x/z, y/z clamp, in units of tan(fov/2)
DILATION = 0.3  # added to both diagonal entries of the 2D covariance (low-pass filter)
EXTENT_SIGMAS = 3.0  # radius = ceil(3·sqrt(λmax))
MAX_ALPHA = 0.99
MIN_ALPHA = 1.0 / 255.0
MIN_TRANSMITTANCE = 1e-4

# OpenGL camera axes (-Z forward, +Y up) -> CV axes (+Z forward, +Y down).
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True, eq=False)
class ProjectedSplats:
    """Per-splat screen-space quantities, all length N (the cloud's splat count).

    means2d    [N, 2] float64  pixel coordinates (x right, y down), pixel centres at integers
    depths     [N]    float64  CV-frame depth z (distance along the viewing axis)
    conics     [N, 3] float64  inverse 2D covariance (a, b, c) = [[a, b], [b, c]]
    radii      [N]    int64    3σ square half-size in pixels
    colors     [N, 3] float64  view-dependent colour, clamped at 0 only
    opacities  [N]    float64  activated opacities
    visible    [N]    bool     survives every cull (near plane, det == 0, radius 0, off-image)

    means2d, conics and radii are filled for every splat in front of the near plane, visible or
    not, and are zero behind it.
    """

    means2d: np.ndarray
    depths: np.ndarray
    conics: np.ndarray
    radii: np.ndarray
    colors: np.ndarray
    opacities: np.ndarray
    visible: np.ndarray

    @property
    def count(self) -> int:
        return int(self.depths.shape[0])

    def order(self) -> np.ndarray:
        """Indices of the visible splats, front to back (stable for equal depths)."""
        idx = np.flatnonzero(self.visible)
        return idx[np.argsort(self.depths[idx], kind="stable")]


def project_splats(cloud: SplatCloud, camera: Camera) -> ProjectedSplats:
    """Project every splat of ``cloud`` into ``camera`` with the reference rules."""
    n = cloud.count
    means2d = np.zeros((n, 2), np.float64)
    conics = np.zeros((n, 3), np.float64)
    radii = np.zeros(n, np.int64)
    visible = np.zeros(n, bool)

    view = camera.view_matrix
    w_rot = _GL_TO_CV @ view[:3, :3]  # world -> CV camera rotation (W in Σ₂D = J W Σ Wᵀ Jᵀ)
    p_cv = np.asarray(cloud.means, np.float64) @ w_rot.T + _GL_TO_CV @ view[:3, 3]
    depths = p_cv[:, 2].copy()
    colors = sh_to_color(cloud.sh, cloud.means, camera.position)
    opacities = np.asarray(cloud.opacities, np.float64)

    front = np.flatnonzero(depths > camera.near)
    if front.size:
        x, y, z = p_cv[front, 0], p_cv[front, 1], p_cv[front, 2]
        f = camera.focal

        # EWA Jacobian of the perspective map, evaluated at a clamped position so that splats far
        # outside the frustum do not get absurdly stretched footprints.
        lim_x = FOV_CLAMP * camera.tan_half_fov_x
        lim_y = FOV_CLAMP * camera.tan_half_fov_y
        tx = np.clip(x / z, -lim_x, lim_x) * z
        ty = np.clip(y / z, -lim_y, lim_y) * z
        jac = np.zeros((front.size, 2, 3), np.float64)
        jac[:, 0, 0] = f / z
        jac[:, 0, 2] = -f * tx / (z * z)
        jac[:, 1, 1] = f / z
        jac[:, 1, 2] = -f * ty / (z * z)
        t = jac @ w_rot
        cov2d = t @ covariance_3d(cloud.scales[front], cloud.quats[front]) @ t.transpose(0, 2, 1)

        a = cov2d[:, 0, 0] + DILATION
        b = cov2d[:, 0, 1]
        c = cov2d[:, 1, 1] + DILATION
        det = a * c - b * b
        with np.errstate(divide="ignore", invalid="ignore"):  # det == 0 is culled below
            inv_det = 1.0 / det
            mid = 0.5 * (a + c)
            lam_max = mid + np.sqrt(np.maximum(0.1, mid * mid - det))
            radius = np.ceil(EXTENT_SIGMAS * np.sqrt(lam_max))
        conic = np.stack([c * inv_det, -b * inv_det, a * inv_det], axis=1)

        # INRIA: pix = ((ndc + 1)·S − 1) / 2 with ndc = (f·x/z) / (S/2).
        px = f * x / z + camera.width / 2 - 0.5
        py = f * y / z + camera.height / 2 - 0.5

        ok = (det != 0) & np.isfinite(conic).all(axis=1) & np.isfinite(radius) & np.isfinite(px) & np.isfinite(py)
        ok &= np.where(ok, radius, 0) > 0
        # The square must reach at least one pixel centre inside the image.
        ok &= (px - radius <= camera.width - 1) & (px + radius >= 0)
        ok &= (py - radius <= camera.height - 1) & (py + radius >= 0)

        means2d[front, 0] = np.where(np.isfinite(px), px, 0.0)
        means2d[front, 1] = np.where(np.isfinite(py), py, 0.0)
        conics[front] = np.where(np.isfinite(conic), conic, 0.0)
        radii[front] = np.where(np.isfinite(radius), radius, 0).astype(np.int64)
        visible[front] = ok

    return ProjectedSplats(
        means2d=means2d,
        depths=depths,
        conics=conics,
        radii=radii,
        colors=colors,
        opacities=opacities,
        visible=visible,
    )


def _background(background: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    bg = np.asarray(background, np.float64).reshape(-1)
    if bg.shape != (3,) or not np.all(np.isfinite(bg)):
        raise InvalidArgument(f"background must be three finite numbers, got {background!r}")
    return bg


def render_reference(
    cloud: SplatCloud,
    camera: Camera,
    background: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Render ``cloud`` as INRIA's forward pass would: an [H, W, 3] float32 image, row 0 at the top.

    Values are not clamped (colours above 1 pass through). Splats are composited front to back,
    each one only over the pixels of its 3σ square (see the module docstring).
    """
    bg = _background(background)
    h, w = camera.height, camera.width
    color = np.zeros((h, w, 3), np.float64)
    trans = np.ones((h, w), np.float64)
    done = np.zeros((h, w), bool)

    proj = project_splats(cloud, camera)
    for i in proj.order():
        px, py = proj.means2d[i]
        r = int(proj.radii[i])
        x0, x1 = max(0, int(np.ceil(px - r))), min(w - 1, int(np.floor(px + r)))
        y0, y1 = max(0, int(np.ceil(py - r))), min(h - 1, int(np.floor(py + r)))
        if x0 > x1 or y0 > y1:
            continue
        win = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        done_w, trans_w, color_w = done[win], trans[win], color[win]  # views: updated in place

        dx = np.arange(x0, x1 + 1, dtype=np.float64) - px
        dy = np.arange(y0, y1 + 1, dtype=np.float64)[:, None] - py
        a, b, c = proj.conics[i]
        power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
        alpha = np.minimum(MAX_ALPHA, proj.opacities[i] * np.exp(power))
        live = ~done_w & (power <= 0.0) & (alpha >= MIN_ALPHA)
        if not live.any():
            continue

        test_t = trans_w * (1.0 - alpha)
        # A pixel whose transmittance would fall below 1e-4 stops here: this splat is not added.
        stop = live & (test_t < MIN_TRANSMITTANCE)
        add = live & ~stop
        done_w |= stop
        color_w += (np.where(add, alpha * trans_w, 0.0))[..., None] * proj.colors[i]
        np.copyto(trans_w, test_t, where=add)

    out = color + trans[..., None] * bg
    return out.astype(np.float32)
