"""Rendered PSNR between splat sequences (render/compare.py), on a real EGL context."""

from __future__ import annotations

import math

import numpy as np
import pytest

from holoscope.core.errors import EmptyMedia, InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.render import compare
from holoscope.render.compare import SequenceComparer, fixed_cameras, psnr_from_mse, rendered_psnr
from holoscope.render.sort import view_depths
from tests.render.test_gl_splats import synthetic_cloud

pytestmark = pytest.mark.gl
SIZE = (96, 72)


@pytest.fixture(scope="module")
def cloud() -> SplatCloud:
    return synthetic_cloud(3000, 1, seed=3)


@pytest.fixture(scope="module")
def comparer(cloud):
    comparer = SequenceComparer(fixed_cameras(cloud, 3, SIZE))
    yield comparer
    with comparer.ctx:
        assert comparer.ctx.error == "GL_NO_ERROR"
    comparer.release()


def with_sh(cloud: SplatCloud, sh: np.ndarray) -> SplatCloud:
    return SplatCloud(cloud.means, cloud.scales, cloud.quats, cloud.opacities, sh.astype(np.float32))


def noisy_colours(cloud: SplatCloud, sigma: float, seed: int = 0) -> SplatCloud:
    sh = cloud.sh.copy()
    sh[:, 0] += np.random.default_rng(seed).normal(0, sigma, sh[:, 0].shape)
    return with_sh(cloud, sh)


def test_cameras_are_deterministic_and_frame_the_scene(cloud, comparer) -> None:
    cams = fixed_cameras(cloud, 3, SIZE)
    again = fixed_cameras(cloud, 3, SIZE)
    assert [(c.width, c.height) for c in cams] == [SIZE] * 3
    for a, b in zip(cams, again):
        np.testing.assert_array_equal(a.camera_to_world, b.camera_to_world)
    positions = np.array([c.position for c in cams])
    assert np.linalg.norm(positions - positions.mean(axis=0), axis=1).min() > 1.0, "distinct viewpoints"
    assert all(image.mean() > 0.02 for image in comparer.render(cloud)), "each camera sees the scene"
    assert len(fixed_cameras(cloud, 1)) == 1 and fixed_cameras(cloud, up="+z")[0].width == 320
    with pytest.raises(InvalidArgument):
        fixed_cameras(cloud, 0)


def test_identical_and_reordered_clouds_are_infinite(cloud, comparer) -> None:
    assert comparer.psnr(cloud, cloud) == math.inf
    permuted = cloud.subset(np.random.default_rng(1).permutation(cloud.count))
    assert comparer.psnr(cloud, permuted) == math.inf


def test_exact_depth_ties_do_not_depend_on_order(comparer, monkeypatch) -> None:
    # Pairs of splats at the same position but of different colours: the order between them
    # changes the image, and a reordered copy must still draw the same one.
    base = synthetic_cloud(400, 0, seed=9)
    twins = base.subset(np.concatenate([np.arange(base.count), np.arange(base.count)]))
    sh = twins.sh.copy()
    sh[base.count:, 0] = -sh[base.count:, 0]
    twins = with_sh(twins, sh)
    flipped = twins.subset(np.concatenate([np.arange(base.count, 2 * base.count), np.arange(base.count)]))
    assert comparer.psnr(twins, flipped) == math.inf

    def ties_in_input_order(cloud: SplatCloud, camera) -> np.ndarray:  # what the viewer's sort does
        return np.argsort(-view_depths(cloud.means, camera.view_matrix), kind="stable").astype(np.uint32)

    monkeypatch.setattr(compare, "exact_back_to_front", ties_in_input_order)
    assert comparer.psnr(twins, flipped) < 40, "the test sees the order of ties"


def test_psnr_falls_as_colour_noise_grows(cloud, comparer) -> None:
    values = [comparer.psnr(cloud, noisy_colours(cloud, sigma)) for sigma in (0.01, 0.03, 0.1, 0.3)]
    assert all(math.isfinite(v) for v in values)
    assert values == sorted(values, reverse=True) and values[0] - values[-1] > 15, values
    assert values[0] > 35


def test_different_counts(cloud, comparer) -> None:
    dropped = cloud.subset(np.flatnonzero(np.arange(cloud.count) % 10))
    more = cloud.subset(np.concatenate([np.arange(cloud.count), np.arange(50)]))
    empty = cloud.subset(np.zeros(0, np.int64))
    for decoded in (dropped, more, empty):
        assert 0 < comparer.psnr(cloud, decoded) < 60
    assert comparer.psnr(cloud, empty) < comparer.psnr(cloud, dropped)
    assert comparer.psnr(empty, empty) == math.inf


def test_rendered_psnr_is_the_psnr_of_the_mean_mse(cloud) -> None:
    noisy = noisy_colours(cloud, 0.1)
    cams = fixed_cameras(cloud, 2, SIZE)
    report = rendered_psnr(iter([cloud, cloud]), (f for f in [cloud, noisy]), cams)
    assert report["frames"] == 2 and report["cameras"] == 2
    assert report["per_frame"][0] == math.inf and math.isfinite(report["per_frame"][1])
    # One perfect frame halves the mean MSE: the sequence is 3 dB better than its bad frame.
    assert report["psnr"] == pytest.approx(report["per_frame"][1] + 10 * math.log10(2))
    assert report["psnr"] == psnr_from_mse(report["mse"])
    same = rendered_psnr([cloud], [cloud], size=SIZE, count=2)
    assert same["psnr"] == math.inf and same["cameras"] == 2


def test_rendered_psnr_refuses_mismatched_sequences(cloud) -> None:
    cams = fixed_cameras(cloud, 1, SIZE)
    with pytest.raises(InvalidArgument, match="reference sequence is longer"):
        rendered_psnr([cloud, cloud], [cloud], cams)
    with pytest.raises(InvalidArgument, match="decoded sequence is longer"):
        rendered_psnr([cloud], [cloud, cloud], cams)
    with pytest.raises(EmptyMedia):
        rendered_psnr([], [], cams)
    with pytest.raises(InvalidArgument):
        SequenceComparer([cams[0], cams[0].resized(64, 48)])
