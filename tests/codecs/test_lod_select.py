"""Level selection by screen-space need under a splat budget, the fetch order, the chunk cache
(holoscope.core.lod_select), and a streamed-LOD scene selected for cameras."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.core.camera import Camera, look_at
from holoscope.core.errors import InvalidArgument
from holoscope.core.lod_select import ChunkCache, fetch_order, node_need, select_for_camera, select_levels


def camera_at(eye=(0.0, 0.0, 10.0), target=(0.0, 0.0, 0.0), size=(640, 480)) -> Camera:
    c2w = look_at(np.array(eye, float), np.array(target, float), np.array([0.0, 1.0, 0.0]))
    return Camera(size[0], size[1], 60.0, c2w)


def boxes(centres, half=1.0):
    c = np.asarray(centres, float)
    return c - half, c + half


def halving(nodes: int, levels: int, finest: int = 1000) -> np.ndarray:
    return np.array([[finest >> lv for lv in range(levels)]] * nodes, np.int64)


def test_need_falls_with_distance_and_is_zero_out_of_view():
    lo, hi = boxes([[0, 0, 0], [0, 0, -20], [0, 0, 30], [200, 0, 0]])
    need = node_need(lo, hi, camera_at())
    assert need[0] > need[1] > 0
    assert need[2] == 0  # behind the camera
    assert need[3] == 0  # far to the side, outside the frustum
    # Twice as far (from the sphere's surface), half the pixels.
    lo, hi = boxes([[0, 0, 0], [0, 0, -9]], half=0.5)
    a, b = node_need(lo, hi, camera_at())
    r = np.sqrt(3) * 0.5
    assert a / b == pytest.approx((19 - r) / (10 - r), rel=1e-9)


def test_no_budget_is_full_detail():
    counts = halving(3, 4)
    sel = select_levels(counts, np.array([1.0, 2.0, 3.0]), None)
    assert sel.levels.tolist() == [0, 0, 0] and sel.total == 3000 and not sel.over_budget


def test_budget_coarsens_far_nodes_first_and_fits():
    lo, hi = boxes([[0, 0, 0], [0, 0, -10], [0, 0, -40], [0, 0, -90]])
    counts = halving(4, 4)
    sel = select_for_camera(lo, hi, counts, camera_at(), 2000)
    assert sel.total <= 2000
    assert sel.total == int(counts[np.arange(4), sel.levels].sum())
    assert list(sel.levels) == sorted(sel.levels)  # nearer never coarser than farther
    assert sel.levels[0] == 0 and sel.levels[-1] > 0
    # More budget, never coarser anywhere.
    more = select_for_camera(lo, hi, counts, camera_at(), 3000)
    assert np.all(more.levels <= sel.levels) and more.total <= 3000


def test_out_of_view_nodes_go_coarsest_before_visible_ones_coarsen():
    lo, hi = boxes([[0, 0, 0], [0, 0, 50], [300, 0, 0]])  # visible, behind, beside
    counts = halving(3, 3)
    sel = select_for_camera(lo, hi, counts, camera_at(), 1500)
    assert sel.levels.tolist() == [0, 2, 2]


def test_budget_below_the_coarsest_gives_all_coarsest():
    counts = halving(2, 3)
    sel = select_levels(counts, np.array([5.0, 1.0]), 10)
    assert sel.levels.tolist() == [2, 2] and sel.total == 500 and sel.over_budget


def test_ties_break_by_node_index():
    counts = halving(4, 2)
    sel = select_levels(counts, np.full(4, 7.0), 3500)
    assert sel.levels.tolist() == [1, 0, 0, 0]
    assert select_levels(counts, np.full(4, 7.0), 3500).levels.tolist() == sel.levels.tolist()


@pytest.mark.parametrize("budget", [0, -5, 2.5, True, "100"])
def test_bad_budget_is_refused(budget):
    with pytest.raises(InvalidArgument):
        select_levels(halving(1, 2), np.ones(1), budget)


def test_fetch_order_is_coarse_first_then_finer_by_need():
    levels = np.array([0, 1, 2])
    need = np.array([10.0, 100.0, 1.0])
    available = np.ones((3, 3), bool)
    order = fetch_order(levels, need, available)
    # First every node's coarsest level, most needed first.
    assert order[:3] == [(1, 2), (0, 2), (2, 2)]
    # Then refinements down to the selected levels only, biggest error reduction first.
    assert order[3:] == [(1, 1), (0, 1), (0, 0)]
    for m in range(3):  # each node's levels arrive coarse to fine
        mine = [lv for node, lv in order if node == m]
        assert mine == sorted(mine, reverse=True) and mine[-1] == levels[m]


def test_fetch_order_skips_levels_a_node_lacks():
    available = np.array([[True, False, True]])
    assert fetch_order(np.array([0]), np.array([1.0]), available) == [(0, 2), (0, 0)]


def test_cache_evicts_least_recently_used_under_its_limit():
    cache: ChunkCache[str, bytes] = ChunkCache(10, len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # a is now the most recent
    cache.put("c", b"1234")
    assert "b" not in cache and "a" in cache and "c" in cache and cache.bytes == 8
    cache.put("huge", b"x" * 11)  # larger than the limit: not kept, nothing evicted for it
    assert "huge" not in cache and len(cache) == 2
    assert cache.hits == 1 and cache.evicted == 1


def test_cache_evicts_the_farthest_first_with_a_priority():
    cache: ChunkCache[int, bytes] = ChunkCache(9, len)
    need = {0: 5.0, 1: 0.5, 2: 9.0, 3: 1.0}
    for key in (0, 1, 2):
        cache.put(key, b"abc", need.get)
    cache.put(3, b"abc", need.get)  # over the limit: the least needed (1) goes, not the oldest (0)
    assert sorted(cache.keys()) == [0, 2, 3]
    loads = []
    assert cache.get_or_load(0, lambda: loads.append(1) or b"zzz") == b"abc" and not loads
    assert cache.get_or_load(7, lambda: loads.append(1) or b"new") == b"new" and loads == [1]


def test_scene_selects_per_camera_and_loads_only_what_it_shows(tmp_path):
    from holoscope.codecs.formats.lod import read_lod
    from holoscope.codecs.formats.lod_write import write_lod
    from tests.codecs.test_lod import spread_cloud

    out = tmp_path / "lod-meta.json"
    cloud = spread_cloud(4000, seed=9, degree=0)
    write_lod(cloud, out, chunk_count=1, chunk_min=1, chunk_extent=8.0, levels=3, iterations=1)
    scene = read_lod(out)
    # Looking along +x from beyond one end: the near end keeps detail, the far end coarsens.
    cam = camera_at(eye=(-45.0, 0, 0), target=(0, 0, 0))
    budget = scene.counts[0] // 2
    sel = scene.select(cam, budget)
    assert sel.total <= budget
    x = (scene.bound_min[:, 0] + scene.bound_max[:, 0]) / 2
    near, far = np.argmin(x), np.argmax(x)
    assert sel.levels[near] < sel.levels[far]
    shown = scene.cloud_for_camera(cam, budget)
    assert shown.count == sel.total
    assert scene.cloud_for_camera(cam, budget) is shown  # same choice, same cloud
    plan = scene.fetch_plan(sel)
    assert set(plan) == set(scene.files_for(sel.levels)) | set(scene.files_for(scene.levels - 1))
    coarse_files = set(scene.files_for(scene.levels - 1))
    assert set(plan[: len(coarse_files)]) == coarse_files  # the coarsest level comes first
    # Without a budget the selection is the full scene.
    assert scene.cloud_for_camera(cam, None).count == scene.counts[0]
