"""The Gaussian-video test data (tests/gsvideo_data.py) has the properties codec tests rely on."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media
from tests.gsvideo_data import coherent_sequence, guitar, wave_sequence, write_ply_sequence

FIELDS = ("means", "scales", "quats", "opacities", "sh")


def small_cloud(n: int = 2000, degree: int = 3, seed: int = 5) -> SplatCloud:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4))
    opacities = rng.uniform(0, 1, n)
    opacities[:2] = (0.0, 1.0)  # the logit of the extremes must stay finite
    arrays = (rng.uniform(-1, 1, (n, 3)), rng.uniform(0.01, 0.05, (n, 3)),
              quats / np.linalg.norm(quats, axis=1, keepdims=True), opacities,
              rng.normal(0, 0.5, (n, (degree + 1) ** 2, 3)))  # fmt: skip
    return SplatCloud(*(a.astype(np.float32) for a in arrays))


def extent(cloud: SplatCloud) -> float:
    lo, hi = cloud.robust_bounds()
    return float(np.linalg.norm(hi - lo))


def assert_valid(cloud: SplatCloud, count: int) -> None:
    assert cloud.count == count
    for name in FIELDS:
        arr = getattr(cloud, name)
        assert arr.dtype == np.float32 and np.all(np.isfinite(arr)), name
    assert np.allclose(np.linalg.norm(cloud.quats, axis=1), 1, atol=1e-5)
    assert np.all((cloud.opacities >= 0) & (cloud.opacities <= 1))
    assert np.all(cloud.scales > 0)


@pytest.fixture(scope="module")
def source(samples_dir) -> SplatCloud:
    return guitar()


@pytest.fixture(scope="module")
def frames(source) -> list[SplatCloud]:
    return coherent_sequence(6, source=source)


def test_guitar_sequence_is_valid_and_keeps_correspondence(source, frames) -> None:
    assert len(frames) == 6 and source.count == 90_854
    size = extent(source)
    for cloud in frames:
        assert_valid(cloud, source.count)
        assert cloud.sh.shape == source.sh.shape
        # Splat i stays near where splat i of the source is: a few % of the scene, no more.
        offset = np.linalg.norm(cloud.means - source.means, axis=1)
        assert 0.005 * size < np.median(offset) and offset.max() < 0.1 * size


def test_deterministic(source, frames) -> None:
    again = coherent_sequence(2, source=source)
    for a, b in zip(frames, again):
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    other = coherent_sequence(1, source=source, seed=1)
    assert not np.array_equal(frames[0].means, other[0].means)


def test_motion_is_small_and_smooth(source, frames) -> None:
    size = extent(source)
    # With noise, a splat moves well under 1 % of the scene from frame to frame.
    steps = [np.linalg.norm(b.means - a.means, axis=1) for a, b in zip(frames, frames[1:])]
    assert max(np.median(s) for s in steps) < 0.01 * size
    # Without noise, the motion is smooth: velocities barely change from frame to frame.
    smooth = np.stack([f.means for f in coherent_sequence(4, source=source, jitter=0.0)]).astype(np.float64)
    velocity = np.diff(smooth, axis=0)
    speed = np.linalg.norm(velocity, axis=2)
    assert 0.0005 * size < speed.max() < 0.01 * size
    assert np.linalg.norm(np.diff(velocity, axis=0), axis=2).max() < 0.2 * speed.max()
    # Gaussians turn with the deformation: rotations change, but by little per frame.
    smooth_quats = [f.quats for f in coherent_sequence(2, source=source, jitter=0.0)]
    turn = 1 - np.abs(np.sum(smooth_quats[0] * smooth_quats[1], axis=1))
    assert 0 < turn.max() < 1e-3


def test_every_attribute_is_jittered_with_higher_sh() -> None:
    cloud = small_cloud()
    noisy, clean = coherent_sequence(1, source=cloud)[0], coherent_sequence(1, source=cloud, jitter=0.0)[0]
    assert_valid(noisy, cloud.count)
    assert noisy.sh_degree == 3
    for name in FIELDS:
        assert not np.allclose(getattr(noisy, name), getattr(clean, name), rtol=0, atol=1e-6), name
    assert not np.allclose(noisy.sh[:, 1:], clean.sh[:, 1:], rtol=0, atol=1e-6), "higher SH"
    # The noise is small: attributes stay close to the clean frame's.
    assert np.abs(noisy.opacities - clean.opacities).max() < 0.1
    assert np.abs(np.log(noisy.scales / clean.scales)).max() < 0.2
    assert np.abs(noisy.sh - clean.sh).max() < 0.3
    # Without noise nothing but the deformation changes.
    np.testing.assert_allclose(clean.opacities, cloud.opacities, atol=1e-6)
    np.testing.assert_allclose(clean.scales, cloud.scales, rtol=1e-6)
    np.testing.assert_array_equal(clean.sh, cloud.sh)


@pytest.fixture(scope="module")
def wave(samples_dir) -> list[SplatCloud]:
    return wave_sequence(3)


def test_wave_frames_are_sorted_each_on_its_own(wave) -> None:
    assert len(wave) == 3
    for cloud in wave:
        assert_valid(cloud, 4225)
    a, b = wave[0].means.astype(np.float64), wave[1].means.astype(np.float64)
    size = extent(wave[0])
    # Index i is not the same Gaussian in the next frame ...
    assert np.linalg.norm(a - b, axis=1).max() > 0.2 * size
    # ... yet every splat has a close match there (the scene itself barely moves).
    picked = a[::10]
    nearest = np.sqrt(((picked[:, None, :] - b[None, :, :]) ** 2).sum(axis=2).min(axis=1))
    assert nearest.max() < 0.01 * size


def test_write_ply_sequence(tmp_path) -> None:
    clouds = coherent_sequence(2, source=small_cloud(300, degree=1))
    paths = write_ply_sequence(clouds, tmp_path / "seq")
    assert [p.name for p in paths] == ["0001.ply", "0002.ply"]
    for path, cloud in zip(paths, clouds):
        media = open_media(path)
        assert media.format == "ply"
        back = media.frame(0)
        np.testing.assert_array_equal(back.means, cloud.means)
        np.testing.assert_allclose(back.opacities, cloud.opacities, atol=1e-6)
        np.testing.assert_allclose(back.sh, cloud.sh, atol=1e-6)
