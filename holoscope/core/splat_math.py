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


# Sign of SH coefficient k = 1..15 under an axis flip, as a product of the flipped axis signs
# (x, y, z): the real SH basis functions are odd or even in each coordinate.
_SH_AXIS_POWERS = np.array([
    (0, 1, 0), (0, 0, 1), (1, 0, 0),                                   # degree 1: y, z, x
    (1, 1, 0), (0, 1, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0),             # degree 2: xy, yz, 1, xz, 1
    (0, 1, 0), (1, 1, 1), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 1), (1, 0, 0),  # degree 3
])  # fmt: skip


def flip_axes(cloud, signs: tuple[int, int, int]):  # SplatCloud -> SplatCloud (core-only import)
    """Mirror a cloud's coordinate axes: ``signs`` is (+-1, +-1, +-1) per x, y, z.

    Positions scale by the signs; a rotation conjugated by the diagonal flip D = diag(signs)
    (with det D = +1, i.e. an even number of flips) has quaternion xyz scaled by
    (sy*sz, sx*sz, sx*sy); SH coefficients pick up the parity of their basis function.
    An odd number of flips is a reflection, which no rotation can express: refused.
    """
    from holoscope.core.errors import InvalidArgument
    from holoscope.core.frames import SplatCloud

    sx, sy, sz = (int(s) for s in signs)
    if {sx, sy, sz} - {1, -1}:
        raise InvalidArgument(f"axis signs must be +1 or -1, got {signs}")
    if sx * sy * sz != 1:
        raise InvalidArgument("flip an even number of axes (one or three flips mirror the scene)")
    s = np.array([sx, sy, sz], np.float32)
    quats = cloud.quats.copy()
    quats[:, 1:] *= np.array([sy * sz, sx * sz, sx * sy], np.float32)
    sh = cloud.sh.copy()
    k = sh.shape[1] - 1
    if k:
        parity = np.prod(np.where(_SH_AXIS_POWERS[:k] == 1, s[None, :], 1.0), axis=1)
        sh[:, 1:] *= parity[None, :, None].astype(np.float32)
    return SplatCloud(cloud.means * s, cloud.scales.copy(), quats, cloud.opacities.copy(), sh, dict(cloud.metadata))


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b of (w, x, y, z) quaternions, row by row ([N, 4]; either side may
    be a single [1, 4] row)."""
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)  # fmt: skip
