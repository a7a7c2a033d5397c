"""Level-of-detail selection for streamed splat scenes: which level each node shows, what to
fetch next, and a byte-bounded cache of loaded chunks.

A streamed-LOD scene (``lod-meta.json``, :mod:`holoscope.codecs.formats.lod`) is a tree whose
leaf nodes each hold the same region at several levels (level 0 finest, each coarser level about
half the splats). This module knows nothing of files: it takes per-node bounds and per-node,
per-level splat counts as arrays, so the viewer, the headless renderer and the streaming loader
share one rule.

The rule (like PlayCanvas' octree budget balancer, simplified): a node's *need* is its projected
size in pixels, radius * focal / distance (a node behind the camera or outside the view has need
0). Every node starts at level 0; while the total exceeds the splat budget, the node whose next
coarsening costs least is coarsened by one level. Coarsening to level L costs ``need * 2**L``
(each level doubles the spacing between splats, roughly), so far and small nodes go coarse
first, and a near node keeps detail until every far node has given up more. Ties break by node
index, so the result is deterministic.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

import numpy as np

from holoscope.core.camera import Camera
from holoscope.core.errors import InvalidArgument

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def node_need(lo: np.ndarray, hi: np.ndarray, camera: Camera) -> np.ndarray:
    """Projected size in pixels of each node's bounding sphere, [M] float64 (0 when the node
    is wholly behind the camera or outside the view frustum)."""
    lo = np.asarray(lo, np.float64).reshape(-1, 3)
    hi = np.asarray(hi, np.float64).reshape(-1, 3)
    centre = (lo + hi) * 0.5
    radius = np.linalg.norm(hi - lo, axis=1) * 0.5
    view = np.asarray(camera.view_matrix, np.float64)
    cam = centre @ view[:3, :3].T + view[:3, 3]  # camera space: looking down -z
    depth = -cam[:, 2]
    distance = np.linalg.norm(cam, axis=1)
    # Inside the sphere the node fills the view: its need is the largest possible.
    near = max(float(camera.near), 1e-6)
    need = float(camera.focal) * radius / np.maximum(distance - radius, near)
    # Frustum test against the sphere (conservative: a sphere touching the view counts).
    tx, ty = camera.tan_half_fov_x, camera.tan_half_fov_y
    sx, sy = np.sqrt(1.0 + tx * tx), np.sqrt(1.0 + ty * ty)
    outside = (
        (depth + radius < near)
        | (np.abs(cam[:, 0]) - tx * depth > radius * sx)
        | (np.abs(cam[:, 1]) - ty * depth > radius * sy)
    )
    return np.where(outside, 0.0, need)


@dataclass(frozen=True)
class LodSelection:
    """The chosen level per node, the splats it shows in total, and each node's need."""

    levels: np.ndarray  # [M] int: the level each node shows
    total: int
    need: np.ndarray  # [M] float64 pixels
    budget: int | None

    @property
    def over_budget(self) -> bool:
        """Whether even the coarsest levels exceed the budget (the selection is then all coarsest)."""
        return self.budget is not None and self.total > self.budget


def check_budget(budget: object) -> int | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InvalidArgument(f"the splat budget must be a positive whole number, got {budget!r}")
    return int(budget)


def select_levels(counts: np.ndarray, need: np.ndarray, budget: int | None) -> LodSelection:
    """Levels per node for ``counts`` [M, L] (splats of node m at level l; a level a node lacks
    counts 0) and ``need`` [M] under ``budget`` splats (None: everything at level 0)."""
    budget = check_budget(budget)
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 2:
        raise InvalidArgument("counts must be [nodes, levels]")
    need = np.asarray(need, np.float64).reshape(-1)
    nodes, depth = counts.shape
    if len(need) != nodes:
        raise InvalidArgument(f"need has {len(need)} entries for {nodes} nodes")
    levels = np.zeros(nodes, np.int64)
    total = int(counts[:, 0].sum()) if depth else 0
    if budget is not None and total > budget and depth > 1:
        heap = [(float(need[m]) * 2.0, m) for m in range(nodes)]
        heapq.heapify(heap)
        while heap and total > budget:
            _, m = heapq.heappop(heap)
            level = int(levels[m]) + 1
            total += int(counts[m, level] - counts[m, level - 1])
            levels[m] = level
            if level + 1 < depth:
                heapq.heappush(heap, (float(need[m]) * 2.0 ** (level + 1), m))
    return LodSelection(levels=levels, total=total, need=need, budget=budget)


def select_for_camera(lo: np.ndarray, hi: np.ndarray, counts: np.ndarray, camera: Camera,
                      budget: int | None) -> LodSelection:  # fmt: skip
    """:func:`select_levels` with each node's need measured from ``camera``."""
    return select_levels(counts, node_need(lo, hi, camera), budget)


def fetch_order(levels: np.ndarray, need: np.ndarray, available: np.ndarray) -> list[tuple[int, int]]:
    """(node, level) pairs in the order a streaming loader fetches them: first every node's
    coarsest level (most needed node first), so the whole scene shows early; then the finer
    levels down to each node's selected one, the step that removes the most error first
    (``need * 2**level``; ties: the coarser level, then the lower node).

    ``available`` [M, L] bool says which levels each node has; a node shows its selected level
    or, lacking it, its next coarser one."""
    levels = np.asarray(levels, np.int64)
    need = np.asarray(need, np.float64)
    available = np.asarray(available, bool)
    order: list[tuple[int, int]] = []
    steps: list[tuple[float, int, int]] = []  # (-error removed, -level, node)
    coarse_first = sorted(range(len(levels)), key=lambda m: (-need[m], m))
    for m in coarse_first:
        have = np.flatnonzero(available[m])
        if not len(have):
            continue
        coarsest = int(have[-1])
        order.append((m, coarsest))
        for level in have[::-1][1:]:
            if level < levels[m]:
                break
            # Refining to ``level`` removes need * 2**level of error (the selection's cost model),
            # so a node's coarser steps always come before its finer ones.
            steps.append((-float(need[m]) * 2.0 ** int(level), -int(level), m))
    steps.sort()
    order.extend((m, -negative_level) for _, negative_level, m in steps)
    return order


class ChunkCache(Generic[K, V]):
    """Loaded chunks under a byte limit. Eviction takes the least valuable first: the lowest
    ``priority(key)`` (e.g. a node's need, so the farthest goes first), then the least recently
    used. Without a priority function it is a plain LRU. A value larger than the whole limit is
    still returned to the caller but not kept."""

    def __init__(self, limit_bytes: int, size_of: Callable[[V], int]) -> None:
        if limit_bytes < 0:
            raise InvalidArgument("the cache limit must not be negative")
        self.limit = int(limit_bytes)
        self._size_of = size_of
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evicted = 0

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        """Keys from the least to the most recently used."""
        return list(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, priority: Callable[[K], float] | None = None) -> None:
        size = int(self._size_of(value))
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.limit:
            return
        self._items[key] = (value, size)
        self.bytes += size
        self._evict(priority, keep=key)

    def get_or_load(self, key: K, load: Callable[[], V], priority: Callable[[K], float] | None = None) -> V:
        value = self.get(key)
        if value is None:
            value = load()
            self.put(key, value, priority)
        return value

    def _evict(self, priority: Callable[[K], float] | None, keep: K) -> None:
        while self.bytes > self.limit:
            candidates = [k for k in self._items if k != keep]
            if not candidates:
                return
            if priority is None:
                victim = candidates[0]
            else:  # lowest priority first; among equals the least recently used (list order)
                victim = min(enumerate(candidates), key=lambda item: (priority(item[1]), item[0]))[1]
            self.bytes -= self._items.pop(victim)[1]
            self.evicted += 1

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
