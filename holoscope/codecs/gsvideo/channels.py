"""Splat attributes <-> channel values, and the per-group linear quantisation.

Attributes are stored pre-activated in a form that quantises well: positions as they are,
colour as SH DC coefficients, opacity in [0, 1], scales as their natural log (Gaussians span
orders of magnitude of size; a linear map would give the small ones no levels), unit
quaternions (w first) whose sign follows the previous frame so that a Gaussian's rotation does
not jump between q and -q, and the higher SH bands.
"""

from __future__ import annotations

import numpy as np

from holoscope.codecs.gsvideo.plan import POSITION, channel_names
from holoscope.core.frames import SplatCloud, sh_coeff_count

MIN_SCALE = 1e-12  # log of a zero scale would be -inf


def cloud_channels(cloud: SplatCloud, sh_degree: int, order: np.ndarray, previous_quats: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Channel name -> float32 values in coding ``order`` (an index array into the cloud)."""
    out: dict[str, np.ndarray] = {}
    means = cloud.means[order]
    for i, name in enumerate(POSITION):
        out[name] = means[:, i]
    dc = cloud.sh[order, 0]
    for i, name in enumerate("rgb"):
        out[name] = dc[:, i]
    out["opacity"] = cloud.opacities[order]
    logs = np.log(np.maximum(cloud.scales[order], MIN_SCALE))
    for i, name in enumerate(("sx", "sy", "sz")):
        out[name] = logs[:, i]
    quats = cloud.quats[order]
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = quats / np.where(norms > 0, norms, 1)
    if previous_quats is not None and len(previous_quats) == len(quats):
        flip = np.einsum("ij,ij->i", quats, previous_quats) < 0
    else:
        flip = quats[:, 0] < 0
    quats = np.where(flip[:, None], -quats, quats).astype(np.float32)
    for i, name in enumerate(("qw", "qx", "qy", "qz")):
        out[name] = quats[:, i]
    if sh_degree > 0:
        rest = cloud.sh[order, 1:sh_coeff_count(sh_degree)]
        for k in range(1, sh_coeff_count(sh_degree)):
            for c, colour in enumerate("rgb"):
                out[f"sh{k}{colour}"] = rest[:, k - 1, c]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def quantise(values: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """Linear map of ``lo .. hi`` onto ``0 .. 2**bits - 1`` (uint16), rounding to nearest."""
    top = (1 << bits) - 1
    if hi <= lo:
        return np.zeros(values.shape, np.uint16)
    q = np.rint((values.astype(np.float64) - lo) * (top / (hi - lo)))
    return np.clip(q, 0, top).astype(np.uint16)


def dequantise_into(out: np.ndarray, q: np.ndarray, lo: float, hi: float, bits: int) -> None:
    """``out[:] = lo + q * step`` in float32 without temporaries beyond one multiply."""
    top = (1 << bits) - 1
    step = np.float32((hi - lo) / top) if hi > lo else np.float32(0)
    np.multiply(q, step, out=out, casting="unsafe")
    out += np.float32(lo)


def channels_to_cloud(values: dict[str, np.ndarray], sh_degree: int, metadata: dict | None = None) -> SplatCloud:
    """The SplatCloud that channel values (dequantised, in coding order) describe."""
    n = len(values["x"])
    means = np.stack([values[c] for c in POSITION], axis=1)
    scales = np.exp(np.stack([values[c] for c in ("sx", "sy", "sz")], axis=1))
    quats = np.stack([values[c] for c in ("qw", "qx", "qy", "qz")], axis=1)
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norms > 1e-8, quats / np.maximum(norms, 1e-8), np.array([1, 0, 0, 0], np.float32))
    sh = np.empty((n, sh_coeff_count(sh_degree), 3), np.float32)
    for c, colour in enumerate("rgb"):
        sh[:, 0, c] = values[colour]
        for k in range(1, sh_coeff_count(sh_degree)):
            sh[:, k, c] = values[f"sh{k}{colour}"]
    opacities = np.clip(values["opacity"], 0, 1)
    return SplatCloud(means.astype(np.float32), scales.astype(np.float32), quats.astype(np.float32),
                      opacities.astype(np.float32), sh, metadata or {})  # fmt: skip


def all_channels(sh_degree: int) -> tuple[str, ...]:
    return channel_names(sh_degree)
