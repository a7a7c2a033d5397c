"""Image-mode snapshots evaluated in torch: the MLP read from params_binary in storage order,
row-major, before the grid; pixels at their centres, rows from the top."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.codecs.hashgrid.levels import grid_levels, grid_params, growth_factor
from holoscope.codecs.hashgrid.msgpack import packb
from holoscope.codecs.hashgrid.snapshot import open_snapshot

torch = pytest.importorskip("torch")

from holoscope.codecs.hashgrid.neural.encoding import encode  # noqa: E402
from holoscope.codecs.hashgrid.neural.network import render_image  # noqa: E402

W, H = 40, 24


def image_snapshot(path, params_type="__half"):
    """An image-mode snapshot whose MLP passes grid features 0, 1, 2 (level 0's two features
    and level 1's first) through as R, G, B: [64x16] (8 levels x 2 features) picks them,
    [64x64] and [16x64] copy."""
    levels = grid_levels(8, 2, 12, 16, growth_factor(8, 16, max(W, H) / 2))
    rng = np.random.default_rng(5)
    grid = rng.uniform(0.05, 0.95, grid_params(levels, 2)).astype(np.float32)
    w0, w1, w2 = np.zeros((64, 16), np.float32), np.zeros((64, 64), np.float32), np.zeros((16, 64), np.float32)
    for i in range(3):
        w0[i, i] = w1[i, i] = w2[i, i] = 1.0
    params = np.concatenate([w0.ravel(), w1.ravel(), w2.ravel(), grid])
    dtype = np.float16 if params_type == "__half" else np.float32
    doc = {"encoding": {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 2, "log2_hashmap_size": 12,
                        "base_resolution": 16},
           "network": {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2},
           "snapshot": {"version": 1, "mode": "image", "n_params": len(params), "params_type": params_type,
                        "params_binary": params.astype(dtype).tobytes()}}  # fmt: skip
    path.write_bytes(packb(doc))
    return levels, params.astype(dtype).astype(np.float32)[64 * 16 + 64 * 64 + 16 * 64 :]


@pytest.mark.parametrize("params_type", ["__half", "float"])
def test_an_image_snapshot_renders_its_grid_through_its_mlp(tmp_path, params_type):
    levels, grid = image_snapshot(tmp_path / "img.msgpack", params_type)
    snap = open_snapshot(tmp_path / "img.msgpack", image_size=(W, H))
    image = render_image(snap, W, H)
    assert image.shape == (H, W, 3)
    ys, xs = np.mgrid[0:H, 0:W]
    points = np.stack([(xs.ravel() + 0.5) / W, (ys.ravel() + 0.5) / H], 1).astype(np.float32)
    features = encode(torch.from_numpy(points), torch.from_numpy(grid), levels, 2).numpy()
    np.testing.assert_allclose(image.reshape(-1, 3), np.clip(features[:, :3], 0, 1), atol=1e-5)
    assert image.std() > 0.01
    top = render_image(snap, W, H, rows=slice(0, 5))
    np.testing.assert_array_equal(top, image[:5])  # only the visible rows, the same values
