"""Helpers shared by the format tests: fuzz settings and checks on decoded clouds."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings

from holoscope.core.frames import SplatCloud


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
