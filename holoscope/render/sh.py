"""Real spherical harmonics as used by INRIA 3DGS (diff-gaussian-rasterization, forward.cu).

The basis, its sign conventions and the constants follow ``computeColorFromSH`` exactly, so
that colours computed here match what trained scenes were optimised against. Coefficients are
coefficient-major with colour innermost: ``sh[:, k, c]`` is coefficient k of channel c.
"""

from __future__ import annotations

import numpy as np

from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import SH_C0, sh_degree_for

__all__ = ["SH_C0", "SH_C1", "SH_C2", "SH_C3", "sh_basis", "eval_sh", "sh_to_color"]

SH_C1 = 0.4886025119029199
# Tuples, not arrays: module constants must not be mutable.
SH_C2: tuple[float, ...] = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3: tuple[float, ...] = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(dirs: np.ndarray, coeff_count: int) -> np.ndarray:
    """The INRIA SH basis [N, K] (float64) evaluated at unit directions ``dirs`` [N, 3]."""
    sh_degree_for(coeff_count)  # raises for K not in (1, 4, 9, 16)
    d = np.asarray(dirs, np.float64)
    if d.ndim != 2 or d.shape[1] != 3:
        raise InvalidArgument(f"dirs must be [N, 3], got {d.shape}")
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    basis = np.empty((d.shape[0], coeff_count), np.float64)
    basis[:, 0] = SH_C0
    if coeff_count > 1:
        basis[:, 1] = -SH_C1 * y
        basis[:, 2] = SH_C1 * z
        basis[:, 3] = -SH_C1 * x
    if coeff_count > 4:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        basis[:, 4] = SH_C2[0] * xy
        basis[:, 5] = SH_C2[1] * yz
        basis[:, 6] = SH_C2[2] * (2.0 * zz - xx - yy)
        basis[:, 7] = SH_C2[3] * xz
        basis[:, 8] = SH_C2[4] * (xx - yy)
    if coeff_count > 9:
        basis[:, 9] = SH_C3[0] * y * (3.0 * xx - yy)
        basis[:, 10] = SH_C3[1] * xy * z
        basis[:, 11] = SH_C3[2] * y * (4.0 * zz - xx - yy)
        basis[:, 12] = SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
        basis[:, 13] = SH_C3[4] * x * (4.0 * zz - xx - yy)
        basis[:, 14] = SH_C3[5] * z * (xx - yy)
        basis[:, 15] = SH_C3[6] * x * (xx - 3.0 * yy)
    return basis


def eval_sh(sh: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """The SH sum [N, 3] (float64) for coefficients ``sh`` [N, K, 3] at unit ``dirs`` [N, 3].

    This is the raw sum, without the +0.5 offset or the clamp; see :func:`sh_to_color`.
    """
    coeffs = np.asarray(sh, np.float64)
    if coeffs.ndim != 3 or coeffs.shape[2] != 3:
        raise InvalidArgument(f"sh must be [N, K, 3], got {coeffs.shape}")
    if np.shape(dirs)[0] != coeffs.shape[0]:
        raise InvalidArgument(f"sh has {coeffs.shape[0]} rows but dirs has {np.shape(dirs)[0]}")
    basis = sh_basis(dirs, coeffs.shape[1])
    return np.einsum("nk,nkc->nc", basis, coeffs)


def sh_to_color(sh: np.ndarray, means: np.ndarray, camera_position: np.ndarray) -> np.ndarray:
    """View-dependent colour [N, 3] = max(SH(normalize(mean - campos)) + 0.5, 0).

    Clamped at 0 only, as the reference does: values above 1 are left for the compositor.
    """
    means64 = np.asarray(means, np.float64)
    dirs = means64 - np.asarray(camera_position, np.float64).reshape(1, 3)
    norms = np.linalg.norm(dirs, axis=1, keepdims=True)
    # A mean exactly at the camera has no direction; any unit vector will do (it is culled anyway).
    dirs = np.divide(dirs, norms, out=np.zeros_like(dirs), where=norms > 0)
    return np.maximum(eval_sh(sh, dirs) + 0.5, 0.0)
