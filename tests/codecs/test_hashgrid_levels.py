"""Hash-grid level layout against the figures published for instant-ngp / tiny-cuda-nn
(hashgrid.md §3-5): growth factors, level resolutions (float32 with the C library's functions),
dense versus hashed levels and parameter counts."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.codecs.hashgrid.levels import grid_levels, grid_params, growth_factor
from holoscope.core.errors import InvalidArgument

MLP_NERF = 3_072 + 7_168  # density [64x32][16x64] + RGB [64x32][64x64][16x64]
MLP_IMAGE = 7_168


def test_paper_nerf_grid_has_the_published_parameter_count():
    b = growth_factor(16, 16, 2048)
    assert abs(float(b) - 1.3819) < 1e-4
    levels = grid_levels(16, 3, 19, 16, b)
    assert grid_params(levels, 2) == 12_196_240 and grid_params(levels, 2) + MLP_NERF == 12_206_480
    assert [lv.dense for lv in levels] == [True] * 5 + [False] * 11  # res 16..59 dense, 81..2048 hashed
    assert [lv.resolution for lv in levels][:5] == [16, 23, 31, 43, 59] and levels[-1].resolution == 2048
    assert all(lv.offset == sum(x.size for x in levels[: lv.index]) for lv in levels)


def test_fox_levels_follow_the_c_library_in_float32():
    b = growth_factor(16, 16, 2048 * 4)  # aabb_scale 4
    assert float(b) == pytest.approx(1.51571655, abs=2e-7)  # as instant-ngp logs it (#620)
    levels = grid_levels(16, 3, 19, 16, b)
    assert [levels[i].resolution for i in (5, 10, 15)] == [128, 1024, 8192]
    assert sum(lv.dense for lv in levels) == 4
    assert abs(grid_params(levels, 2) + MLP_NERF - 13.09e6) < 0.005e6


def test_current_nerf_config_eight_levels_of_four_features():
    b = growth_factor(8, 16, 2048)
    assert float(b) == 2.0
    levels = grid_levels(8, 3, 19, 16, b)
    assert [lv.resolution for lv in levels] == [16, 32, 64, 128, 256, 512, 1024, 2048]
    assert sum(lv.dense for lv in levels) == 3
    assert abs(grid_params(levels, 4) + MLP_NERF - 11.69e6) < 0.005e6


def test_albert_image_levels_are_all_dense_and_float32_exact():
    levels = grid_levels(16, 2, 24, 16, growth_factor(16, 16, 1024 / 2))
    assert [levels[i].resolution for i in (3, 6, 12)] == [33, 65, 257]  # float64 would give 32 / 64 / 256
    assert all(lv.dense for lv in levels) and levels[-1].resolution == 513
    assert abs(grid_params(levels, 2) + MLP_IMAGE - 1.43e6) < 0.005e6
    f64 = [int(np.ceil(np.exp2(3 * np.log2(np.exp(np.log(32.0) / 15))) * 16 - 1)) + 1]
    assert f64 == [32], "the float64 path really differs here, so this test guards the float32 one"


@pytest.mark.parametrize("args", [(0, 3, 19, 16, 1.5), (16, 5, 19, 16, 1.5), (16, 3, 40, 16, 1.5),
                                  (16, 3, 19, 0, 1.5), (16, 3, 19, 16, float("nan")), (16, 3, 19, 16, 0.5)])  # fmt: skip
def test_absurd_grids_are_refused_before_anything_is_sized(args):
    with pytest.raises(InvalidArgument):
        grid_levels(*args)
