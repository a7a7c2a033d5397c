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


# --- the vectorised encoder against the plain per-level torch implementation (autograd included)

from holoscope.codecs.hashgrid.neural.encoding import GridEncoder, corner_index, encoder  # noqa: E402

GRIDS = [(2, 16, 2, 12), (2, 8, 4, 10), (3, 16, 2, 14), (3, 8, 4, 12), (3, 6, 1, 12), (2, 4, 3, 9)]  # D, L, F, log2


def per_level(points, table, levels, features):
    """The previous implementation: a Python loop over levels, each level's corners at once."""
    dims = points.shape[1]
    grid = table.reshape(-1, features)
    bits = torch.tensor([[(k >> d) & 1 for d in range(dims)] for k in range(1 << dims)], dtype=torch.int64)
    out = []
    for level in levels:
        p = points * torch.tensor(level.scale, dtype=torch.float32) + 0.5
        cell = torch.floor(p)
        frac = p - cell
        index = corner_index(cell.to(torch.int64)[:, None, :] + bits[None], level) + level.offset
        weights = torch.where(bits[None].bool(), frac[:, None, :], 1 - frac[:, None, :]).prod(-1)
        out.append((grid[index] * weights[..., None]).sum(1))
    return torch.cat(out, dim=1)


def grid(dims, n_levels, features, log2, seed=0):
    levels = grid_levels(n_levels, dims, log2, 16, growth_factor(n_levels, 16, 2048 if dims == 3 else 512))
    gen = torch.Generator().manual_seed(seed)
    return levels, torch.rand(grid_params(levels, features), generator=gen) * 2 - 1


@pytest.mark.parametrize("dims, n_levels, features, log2", GRIDS)
def test_chunks_and_both_index_paths_match_the_per_level_implementation(dims, n_levels, features, log2):
    levels, table = grid(dims, n_levels, features, log2)
    assert any(lv.dense for lv in levels) and any(not lv.dense for lv in levels)
    points = torch.rand(3000, dims, generator=torch.Generator().manual_seed(1))
    points[:2] = torch.tensor([0.0, 1.0])[:, None]  # the top corner of the top cell wraps (mod size)
    enc = GridEncoder(levels, features, dims)
    want = per_level(points, table, levels, features)
    for chunk in (256, 1000, None):  # several chunks, a ragged last one, the default
        got = enc(points, table, chunk)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # a point outside [0, 1] sends the whole call down the int64 path: the same indices
    outside = torch.cat([points, torch.tensor([[1.5] * dims])])
    torch.testing.assert_close(enc(outside, table)[:-1], enc(points, table), rtol=0, atol=0)
    # points far outside: the int64 path is the per-level implementation's arithmetic
    far = torch.rand(500, dims, generator=torch.Generator().manual_seed(2)) * 6 - 3
    torch.testing.assert_close(enc(far, table), per_level(far, table, levels, features), rtol=0, atol=1e-6)


def test_the_fast_path_matches_the_point_by_point_reference_on_many_points():
    levels, table = grid(3, 16, 2, 14)
    points = torch.rand(2500, 3, generator=torch.Generator().manual_seed(3))
    got = encode(points, table, levels, 2).numpy()
    idx = np.arange(0, 2500, 97)
    want = np.stack([reference(points[i].numpy(), table.numpy(), levels, 2) for i in idx])
    np.testing.assert_allclose(got[idx], want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_a_table_at_any_offset_of_the_parameters_reads_the_same(offset):
    levels, table = grid(2, 8, 2, 10)
    params = torch.cat([torch.zeros(offset), table])
    points = torch.rand(700, 2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(encode(points, params[offset:], levels, 2), encode(points, table, levels, 2),
                               rtol=0, atol=0)  # fmt: skip


@pytest.mark.parametrize("dims, n_levels, features, log2", GRIDS[:4])
def test_gradients_match_the_per_level_implementation(dims, n_levels, features, log2):
    levels, table = grid(dims, n_levels, features, log2)
    points = torch.rand(2000, dims, generator=torch.Generator().manual_seed(5))
    upstream = torch.randn(2000, n_levels * features, generator=torch.Generator().manual_seed(6))
    grads = []
    for fn in (per_level, encode):
        t = table.clone().requires_grad_()
        p = points.clone().requires_grad_()
        (fn(p, t, levels, features) * upstream).sum().backward()
        grads.append((t.grad, p.grad))
    (want_t, want_p), (got_t, got_p) = grads
    torch.testing.assert_close(got_t, want_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_p, want_p, rtol=1e-4, atol=1e-3)  # d/dx through frac, scaled by up to 2048
    assert bool((got_t == 0).any())  # entries no point touches get exactly zero (the trainer relies on it)
    # the table alone requiring grad (how training calls it) takes the value-spreading path
    t = table.clone().requires_grad_()
    (encode(points, t, levels, features) * upstream).sum().backward()
    torch.testing.assert_close(t.grad, want_t, rtol=1e-5, atol=1e-5)


def test_the_encoder_is_built_once_per_grid():
    levels, _ = grid(2, 8, 2, 10)
    assert encoder(levels, 2, 2, "cpu") is encoder(tuple(levels), 2, 2, torch.device("cpu"))
    assert encoder(levels, 4, 2, "cpu") is not encoder(levels, 2, 2, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dims, n_levels, features, log2", GRIDS[:4])
def test_cuda_matches_cpu(dims, n_levels, features, log2):
    levels, table = grid(dims, n_levels, features, log2)
    points = torch.rand(5000, dims, generator=torch.Generator().manual_seed(7))
    got = encode(points.cuda(), table.cuda(), levels, features).cpu()
    # CUDA may fuse x * scale + 0.5 into one FMA (module docstring): a point can change cell
    torch.testing.assert_close(got, encode(points, table, levels, features), rtol=0, atol=1e-5)


def test_hashed_levels_before_dense_ones_are_refused():
    levels, _ = grid(3, 8, 2, 12)
    with pytest.raises(ValueError):
        GridEncoder(levels[::-1], 2, 3)


def test_run_mlp_in_chunks_matches_the_plain_product():
    from holoscope.codecs.hashgrid.neural.network import CPU_CHUNK, run_mlp
    from holoscope.codecs.hashgrid.snapshot import MlpShape

    shape = MlpShape("image", 20, 64, 2, 3)
    gen = torch.Generator().manual_seed(8)
    mats = [torch.randn(r, c, generator=gen) * 0.2 for r, c in shape.matrices]
    x = torch.randn(2 * CPU_CHUNK + 5, 20, generator=gen)
    h = torch.nn.functional.pad(x, (0, 12))
    for i, w in enumerate(mats):
        h = h @ w.T if i == len(mats) - 1 else torch.relu(h @ w.T)
    with torch.inference_mode():
        got = run_mlp(x, shape, mats)
    torch.testing.assert_close(got, h[:, :3], rtol=1e-5, atol=1e-5)
    x.requires_grad_()
    run_mlp(x, shape, mats).sum().backward()  # autograd (training) takes the whole batch
    assert x.grad is not None and x.grad.shape == x.shape


def test_an_encoder_first_built_by_a_render_also_serves_training():
    """The cache keeps one encoder per grid: one made inside inference mode (a render) must not
    hold inference tensors that training's autograd then refuses."""
    from holoscope.codecs.hashgrid.neural import encoding

    levels = grid_levels(3, 2, 9, 4, growth_factor(3, 4, 40))
    encoding._CACHE.clear()
    points = torch.rand(64, 2)
    table = torch.rand(grid_params(levels, 2))
    with torch.inference_mode():
        encode(points, table, levels, 2)
    table.requires_grad_()
    points.requires_grad_()  # the gradient w.r.t. positions needs the level scales saved
    encode(points, table, levels, 2).sum().backward()
    assert table.grad is not None and table.grad.abs().sum() > 0 and points.grad.abs().sum() > 0
