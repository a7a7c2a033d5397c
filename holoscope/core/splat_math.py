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
    """Upper triangles for GPU upload: [N, 8] float32 = xx xy xz yy yz zz 0 0 (two vec4s)."""
    cov = np.nan_to_num(covariances(scales, quats))  # degenerate rotations: a point, not NaN
    out = np.zeros((len(scales), 8), np.float32)
    out[:, 0], out[:, 1], out[:, 2] = cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2]
    out[:, 3], out[:, 4], out[:, 5] = cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]
    return out
