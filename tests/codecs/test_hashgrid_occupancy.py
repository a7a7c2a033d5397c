"""The NeRF density grid and occupancy bitfield in instant-ngp's layout: Morton cells, cascades,
the bitfield rebuilt on load (threshold min(0.01, mean of cascade 0 with negatives as 0 over all
128^3 cells), max-pooled into coarser cascades), packed 8 cells a byte, least significant bit first."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.codecs.hashgrid import occupancy as occ
from holoscope.core.errors import CorruptStream
from tests.hashgrid_data import density_grid_of, random_snapshot

N = occ.GRID_CELLS


def test_morton_codes_interleave_x_y_z_from_the_lowest_bit():
    assert occ.morton_encode(1, 0, 0) == 1 and occ.morton_encode(0, 1, 0) == 2 and occ.morton_encode(0, 0, 1) == 4
    assert occ.morton_encode(2, 0, 0) == 8 and occ.morton_encode(127, 127, 127) == N - 1
    rng = np.random.default_rng(0)
    x, y, z = (rng.integers(0, 1024, 1000) for _ in range(3))
    codes = occ.morton_encode(x, y, z)
    for got, want in zip(occ.morton_decode(codes), (x, y, z)):
        np.testing.assert_array_equal(got, want)
    cells = np.arange(N, dtype=np.uint32)
    assert np.array_equal(np.sort(occ.morton_to_grid(cells).ravel()), cells)  # a permutation of 128^3


@pytest.mark.parametrize("scale, cascade", [(1, 0), (2, 1), (3, 2), (4, 2), (16, 4), (128, 7)])
def test_max_cascade_is_ceil_log2_aabb_scale(scale, cascade):
    assert occ.max_cascade(scale) == cascade


def test_a_points_cascade_and_cell_follow_mip_from_pos():
    pts = np.array([[0.5, 0.5, 0.6], [0.9, 0.5, 0.5], [1.2, 0.5, 0.5], [-1.0, 0.5, 0.5], [9.0, 0.5, 0.5]])
    np.testing.assert_array_equal(occ.cascade_of(pts, 3), [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(occ.cascade_of(pts, 0), [0, 0, 0, 0, 0])
    cells, inside = occ.cell_of(np.array([[0.0, 0.0, 0.0], [0.999, 0.5, 0.25], [1.0, 0.5, 0.5], [-0.5, 1.49, 0.5]]),
                                np.array([0, 0, 0, 1]))  # fmt: skip
    np.testing.assert_array_equal(cells[:2], [[0, 0, 0], [127, 64, 32]])
    np.testing.assert_array_equal(inside, [True, True, False, True])
    np.testing.assert_array_equal(cells[3], [0, 127, 64])


def test_bits_pack_eight_morton_cells_a_byte_least_significant_first():
    grid = np.zeros((2, 128, 128, 128), bool)
    grid[0, 1, 0, 0] = True  # morton 1: byte 0, bit 1
    grid[0, 0, 0, 2] = True  # morton 32: byte 4, bit 0
    grid[1, 0, 1, 0] = True  # cascade 1, morton 2: byte N/8, bit 2
    data = occ.pack_bits(grid)
    assert len(data) == 2 * N // 8
    raw = np.frombuffer(data, np.uint8)
    assert raw[0] == 2 and raw[4] == 1 and raw[N // 8] == 4 and raw.sum() == 7
    np.testing.assert_array_equal(occ.unpack_bits(data, 2), grid)
    with pytest.raises(CorruptStream, match="cascade"):
        occ.unpack_bits(data[:-1], 2)


def test_the_threshold_is_min_of_001_and_the_mean_over_all_cascade0_cells_with_negatives_as_zero():
    values = np.full(N, -1.0, np.float32)
    values[:100] = 1.0  # mean = 100 / 128^3 (not 100 / 100: negative cells count in the divisor)
    values[200] = 0.005  # above that mean, below 0.01
    values[201] = 1e-5  # below the mean
    assert occ.threshold(values) == pytest.approx((100 + 0.005 + 1e-5) / N, rel=1e-4)
    bits = occ.grid_to_morton(occ.bitfield_from_density(values, 1))[0]
    assert bits[:100].all() and bits[200] and not bits[201] and bits.sum() == 101
    busy = np.full(N, 0.02, np.float32)  # mean 0.02: the threshold is 0.01
    busy[7] = 0.0099
    assert occ.threshold(busy) == np.float32(0.01)
    bits = occ.grid_to_morton(occ.bitfield_from_density(busy, 1))[0]
    assert not bits[7] and bits.sum() == N - 1


def _instant_ngp_max_pool(bitfield: np.ndarray) -> np.ndarray:
    """bitfield_max_pool transcribed byte by byte (a reference: bytes of the finer cascade become
    bits of the coarser one's central cells)."""
    fine, coarse = bitfield[0], bitfield[1].copy()
    i = np.arange(N // 64, dtype=np.uint32)
    bits = np.zeros(i.size, np.uint8)
    for j in range(8):
        bits |= (fine[i * 8 + j] > 0).astype(np.uint8) << j
    x, y, z = (c + 16 for c in occ.morton_decode(i))
    np.bitwise_or.at(coarse, occ.morton_encode(x, y, z), bits)
    return coarse


def test_coarser_cascades_are_or_ed_with_the_finer_one_pooled_into_their_centre():
    rng = np.random.default_rng(3)
    values = np.where(rng.random(2 * N) < 0.002, 1.0, 0.0).astype(np.float32)
    values[N:] = 0.0  # cascade 1 empty of its own: only pooled bits
    values[N + 5] = 1.0  # one of its own, outside the centre
    occupancy = occ.bitfield_from_density(values, 2)
    assert occupancy[1, 1, 0, 1] and occupancy[1].sum() > 1  # morton 5 = (1, 0, 1)
    own = np.frombuffer(occ.pack_bits(occ.morton_to_grid(values.reshape(2, N) > occ.threshold(values))), np.uint8)
    want = _instant_ngp_max_pool(own.reshape(2, -1))
    np.testing.assert_array_equal(np.frombuffer(occ.pack_bits(occupancy), np.uint8)[N // 8 :], want)
    one = np.zeros(2 * N, np.float32)
    one[occ.morton_encode(127, 0, 0)] = 1.0  # cascade 0's far corner -> cascade 1 cell (95, 32, 32)
    pooled = occ.bitfield_from_density(one, 2)[1]
    assert pooled[95, 32, 32] and pooled.sum() == 1


def test_occupancy_of_a_snapshot_reads_the_fp16_grid_or_holoscopes_bitfield():
    def ball(p):
        return np.linalg.norm(p - 0.5, axis=1) < 0.3

    grid = density_grid_of(ball, aabb_scale=2)
    snap = random_snapshot(aabb_scale=2, density_grid=grid)
    got = occ.occupancy_of(snap)
    assert got.shape == (2, 128, 128, 128)
    i = (np.arange(128) + 0.5) / 128
    centres = np.stack(np.meshgrid(i, i, i, indexing="ij"), -1)
    np.testing.assert_array_equal(got[0], ball(centres.reshape(-1, 3)).reshape(128, 128, 128))
    assert got[1, 64, 64, 64] and not got[1, 0, 0, 0]
    assert occ.occupancy_of(random_snapshot()) is None  # never populated: everything occupied

    packed = occ.pack_bits(~got)
    snap.document["snapshot"][occ.OCCUPANCY_KEY] = packed
    np.testing.assert_array_equal(occ.occupancy_of(snap), ~got)  # holoscope's bitfield wins
    snap.document["snapshot"][occ.OCCUPANCY_KEY] = packed[:1000]
    with pytest.raises(CorruptStream, match="bitfield"):
        occ.occupancy_of(snap)


def test_a_density_grid_of_the_wrong_size_is_refused_clearly():
    snap = random_snapshot(aabb_scale=4, density_grid=np.zeros(2 * N, np.float32))  # needs 3 cascades
    with pytest.raises(CorruptStream, match="3 cascade"):
        occ.occupancy_of(snap)
    snap.document["snapshot"]["density_grid_size"] = 64
    with pytest.raises(CorruptStream, match="64 cells a side"):
        occ.occupancy_of(snap)
