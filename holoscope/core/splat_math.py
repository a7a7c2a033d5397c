"""Vectorised Gaussian geometry shared by the renderers and the format codecs."""

from __future__ import annotations

import numpy as np


def quats_to_rotmats(quats: np.ndarray) -> np.ndarray:
    """[N, 4] quaternions (w, x, y, z), normalised here -> [N, 3, 3] float64 rotation matrices.

    A zero quaternion gives NaN rows, which the renderers treat as "cull this splat".
    """
    q = np.asarray(quats, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    r = np.empty((len(quats), 3, 3), np.float64)
    r[:, 0, 0] = 1 - 2 * (y * y + z * z)
    r[:, 0, 1] = 2 * (x * y - w * z)
    r[:, 0, 2] = 2 * (x * z + w * y)
    r[:, 1, 0] = 2 * (x * y + w * z)
    r[:, 1, 1] = 1 - 2 * (x * x + z * z)
    r[:, 1, 2] = 2 * (y * z - w * x)
    r[:, 2, 0] = 2 * (x * z - w * y)
    r[:, 2, 1] = 2 * (y * z + w * x)
    r[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def covariances(scales: np.ndarray, quats: np.ndarray) -> np.ndarray:
    """Sigma = R S S^T R^T for each splat: [N, 3, 3] float64."""
    m = quats_to_rotmats(quats) * scales.astype(np.float64)[:, None, :]  # R @ diag(s)
    return m @ m.transpose(0, 2, 1)


def packed_covariances(scales: np.ndarray, quats: np.ndarray) -> np.ndarray:
    """Upper triangles for GPU upload: [N, 8] float32 = xx xy xz yy yz zz 0 0 (two vec4s).

    Computed column by column in float32 (Sigma_ij = sum_k R_ik R_jk s_k^2) rather than with
    stacked 3x3 matmuls: about 20x faster for millions of splats, and the GPU reads float32.
    """
    q = np.asarray(quats, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    q = np.nan_to_num(q)  # degenerate rotations: a zero covariance (a point), not NaN
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    r = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    s2 = np.square(np.asarray(scales, np.float32))
    out = np.zeros((len(q), 8), np.float32)
    for col, (i, j) in enumerate(((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))):
        out[:, col] = r[i][0] * r[j][0] * s2[:, 0] + r[i][1] * r[j][1] * s2[:, 1] + r[i][2] * r[j][2] * s2[:, 2]
    return out
