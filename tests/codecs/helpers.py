"""Helpers shared by the format tests: fuzz settings and checks on decoded clouds."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings

from holoscope.codecs.formats.common import normalize_quats
from holoscope.core.frames import SH_C0, SplatCloud


def fuzz_settings(max_examples: int):
    """Reproducible in CI (derandomised, no example database written into the repository)."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of the rotation taking unit quaternion a to b (q and -q are the same rotation)."""
    dot = np.abs(np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64)))
    return np.degrees(2 * np.arccos(np.clip(dot, 0, 1)))


def assert_valid_cloud(cloud: SplatCloud, *, positive_scales: bool = True) -> None:
    assert cloud.count > 0
    for name in ("means", "scales", "quats", "opacities", "sh"):
        assert np.isfinite(getattr(cloud, name)).all(), name
    np.testing.assert_allclose(np.linalg.norm(cloud.quats, axis=1), 1, atol=1e-5)
    assert ((cloud.opacities >= 0) & (cloud.opacities <= 1)).all()
    if positive_scales:
        assert (cloud.scales > 0).all()


# The random clouds the format tests write and read back, one per range a format can store.
# Each profile keeps its draw order, so a seed gives the same cloud as it always has.
CLOUD_PROFILES = ("ply", "splat", "spz", "sog")


def random_cloud(n: int, degree: int = 3, seed: int = 0, *, profile: str = "ply", extent: float = 50.0,
                 structured_sh: bool = True) -> SplatCloud:  # fmt: skip
    """A reproducible random cloud of ``n`` splats with SH ``degree`` from ``seed``.

    ``profile`` picks the attribute ranges:

    - "ply": normal means (sigma 3), log-uniform scales in [e^-6, 1], opacities in
      [0.02, 0.98], normal SH (anything a float PLY stores);
    - "splat": means uniform in +-50, scales in [e^-7, e], base colours inside [0, 1], SH in
      +-0.9 (what the 8-bit .splat layout keeps);
    - "spz": means uniform in +-``extent``, log-scales in [-9.5, 5.5], DC within +-3.2, SH in
      +-0.95 (the ranges SPZ can store: log-scale in [-10, 5.9], SH within [-1, 1));
    - "sog": normal means (sigma 2), log-normal scales around e^-4, SH DC normal and the rest
      either i.i.d. (``structured_sh=False``) or, more like trained scenes, driven by a few
      latent factors.
    """
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    if profile == "ply":
        quats = rng.normal(size=(n, 4))
        quats /= np.linalg.norm(quats, axis=1, keepdims=True)
        return SplatCloud(
            means=rng.normal(0, 3, (n, 3)).astype(np.float32),
            scales=np.exp(rng.uniform(-6, 0, (n, 3))).astype(np.float32),
            quats=quats.astype(np.float32),
            opacities=rng.uniform(0.02, 0.98, n).astype(np.float32),
            sh=rng.normal(0, 1, (n, k, 3)).astype(np.float32),
        )
    if profile in ("splat", "spz"):
        q = rng.normal(size=(n, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        if profile == "splat":
            sh = rng.uniform(-0.9, 0.9, (n, k, 3))
            sh[:, 0] = (rng.uniform(0, 1, (n, 3)) - 0.5) / SH_C0  # base colours inside [0, 1]
            means = rng.uniform(-50, 50, (n, 3))
            scales = np.exp(rng.uniform(-7, 1, (n, 3)))
        else:
            sh = rng.uniform(-0.95, 0.95, (n, k, 3))
            sh[:, 0] = rng.uniform(-3.2, 3.2, (n, 3))
            means = rng.uniform(-extent, extent, (n, 3))
            scales = np.exp(rng.uniform(-9.5, 5.5, (n, 3)))
        return SplatCloud(
            means=means.astype(np.float32),
            scales=scales.astype(np.float32),
            quats=q.astype(np.float32),
            opacities=rng.uniform(0, 1, n).astype(np.float32),
            sh=sh.astype(np.float32),
        )
    if profile == "sog":
        sh = np.empty((n, k, 3), np.float32)
        sh[:, 0] = rng.normal(0, 1, (n, 3))
        if k > 1:
            if structured_sh:
                latent = rng.normal(size=(n, 4))
                mix = rng.normal(size=(4, (k - 1) * 3)) * 0.1
                rest = np.tanh(latent @ mix * 2) * 0.3 + rng.normal(0, 0.01, (n, (k - 1) * 3))
            else:
                rest = rng.normal(0, 0.2, (n, (k - 1) * 3))
            sh[:, 1:] = rest.reshape(n, k - 1, 3)
        return SplatCloud(
            means=(rng.normal(size=(n, 3)) * 2).astype(np.float32),
            scales=np.exp(rng.normal(-4, 1, (n, 3))).astype(np.float32),
            quats=normalize_quats(rng.normal(size=(n, 4)).astype(np.float32)),
            opacities=rng.uniform(0, 1, n).astype(np.float32),
            sh=sh,
        )
    raise ValueError(f"unknown cloud profile {profile!r} (one of {CLOUD_PROFILES})")


def blob_cloud(x: float = 0.0, n: int = 300, seed: int = 0, *, sh_degree: int = 0, dc: float | None = 1.0,
               spread: float = 0.2, scale: float = 0.05) -> SplatCloud:  # fmt: skip
    """A round blob of ``n`` opaque splats centred at (x, 0, 0): frames of test sequences that
    move left to right as ``x`` grows. ``dc=None`` draws random SH instead of a flat colour."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, spread, (n, 3)).astype(np.float32)
    means[:, 0] += x
    k = (sh_degree + 1) ** 2
    sh = rng.normal(0, 0.5, (n, k, 3)).astype(np.float32) if dc is None else np.full((n, k, 3), dc, np.float32)
    if dc is not None and k > 1:
        sh[:, 1:] = 0
    return SplatCloud(means=means, scales=np.full((n, 3), scale, np.float32),
                      quats=np.tile(np.float32([1, 0, 0, 0]), (n, 1)), opacities=np.full(n, 0.9, np.float32),
                      sh=sh)  # fmt: skip
