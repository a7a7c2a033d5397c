"""The torch hash encoding against a point-by-point reference written from the formulas of
hashgrid.md §5 (numpy, uint32 arithmetic), on dense and hashed levels in 2D and 3D."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from holoscope.codecs.hashgrid.levels import grid_levels, grid_params, growth_factor

torch = pytest.importorskip("torch")

from holoscope.codecs.hashgrid.neural.encoding import encode  # noqa: E402


def reference(point: np.ndarray, table: np.ndarray, levels, features: int) -> np.ndarray:
    """One point, one level and one corner at a time."""
    dims = len(point)
    out = []
    for level in levels:
        p = point.astype(np.float32) * np.float32(level.scale) + np.float32(0.5)
        cell = np.floor(p)
        frac = p - cell
        acc = np.zeros(features, np.float64)
        for k in itertools.product((0, 1), repeat=dims):
            corner = [int(cell[d]) + k[d] for d in range(dims)]
            if level.dense:
                index = sum(c * level.resolution**d for d, c in enumerate(corner))
            else:
                h = np.uint32(0)
                for c, prime in zip(corner, (1, 2654435761, 805459861)):
                    h ^= np.uint32((c * prime) % (1 << 32))
                index = int(h)
            index %= level.size
            weight = np.prod([frac[d] if k[d] else 1 - frac[d] for d in range(dims)])
            acc += weight * table[(level.offset + index) * features : (level.offset + index + 1) * features]
        out.append(acc)
    return np.concatenate(out)


@pytest.mark.parametrize("dims, n_levels, features, log2", [(3, 16, 2, 14), (2, 8, 4, 12), (3, 8, 4, 12)])
def test_encoding_matches_the_point_by_point_reference(dims, n_levels, features, log2):
    levels = grid_levels(n_levels, dims, log2, 16, growth_factor(n_levels, 16, 2048 if dims == 3 else 512))
    assert any(lv.dense for lv in levels) and any(not lv.dense for lv in levels) or dims == 2
    rng = np.random.default_rng(dims * 100 + n_levels)
    table = rng.uniform(-1, 1, grid_params(levels, features)).astype(np.float32)
    points = rng.uniform(0, 1, (64, dims)).astype(np.float32)
    points[0] = 0.0
    points[1] = 1.0
    got = encode(torch.from_numpy(points), torch.from_numpy(table), levels, features).numpy()
    assert got.shape == (64, n_levels * features)
    want = np.stack([reference(p, table, levels, features) for p in points])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_a_vertex_reads_its_own_entry():
    levels = grid_levels(2, 2, 10, 4, 2.0)  # res 4 and 8, dense
    table = np.arange(grid_params(levels, 1), dtype=np.float32)
    # p = x * scale + 0.5 lands on vertex 2 of level 0 (scale 3) at x = 0.5
    got = encode(torch.tensor([[0.5, 0.5]]), torch.from_numpy(table), levels[:1], 1)
    assert float(got[0, 0]) == pytest.approx(2 + 2 * levels[0].resolution)
