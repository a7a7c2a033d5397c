"""Where each Gaussian goes in the attribute images: spatial order, image size, placement.

Video codecs predict a pixel from its neighbours (intra) and from the same place in earlier
frames (inter). So that both work on Gaussians:

- Gaussians are sorted along a 3D Morton curve, so neighbours in the order are close in space;
- the sorted sequence is laid into the image along 2D Z-order inside 16x16 blocks (blocks in
  row-major order), so neighbours in the image, across rows too, are close in the order;
- within a group of frames every frame keeps one order when the input's splat i is the same
  Gaussian in every frame ("index" correspondence); otherwise each frame is matched to the one
  before along the Morton curve ("matched", :func:`match_order`), so a Gaussian that barely
  moved lands on the pixel it had, and inter prediction does the rest.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BLOCK = 16  # placement block side (a macroblock)
MORTON_BITS = 10  # per axis: 30-bit 3D codes


def _spread3(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between the low 10 bits of each value (3D Morton interleave)."""
    v = v.astype(np.uint32) & 0x3FF
    v = (v | (v << 16)) & 0x030000FF
    v = (v | (v << 8)) & 0x0300F00F
    v = (v | (v << 4)) & 0x030C30C3
    v = (v | (v << 2)) & 0x09249249
    return v


def morton_codes(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """30-bit Morton codes of ``points [N, 3]`` within the box ``lo .. hi``."""
    extent = np.maximum(hi - lo, 1e-12)
    cells = np.clip((points - lo) / extent * ((1 << MORTON_BITS) - 1), 0, (1 << MORTON_BITS) - 1).astype(np.uint32)
    return _spread3(cells[:, 0]) | (_spread3(cells[:, 1]) << 1) | (_spread3(cells[:, 2]) << 2)


def morton_order(points: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """The permutation that sorts ``points`` along the Morton curve (stable, int64)."""
    if len(points) == 0:
        return np.zeros(0, np.int64)
    lo = points.min(axis=0) if lo is None else lo
    hi = points.max(axis=0) if hi is None else hi
    return np.argsort(morton_codes(points, lo, hi), kind="stable")


WIDTH_ALIGN = 64  # samples: FFmpeg's line sizes are 32/64-byte aligned, so rows then have no padding


def image_size(count: int) -> tuple[int, int]:
    """(width, height) of the attribute images for ``count`` Gaussians: about square, the width
    a multiple of 64 (a decoded row then has no padding, so a plane's first ``count`` samples
    are read in place), the height even (4:2:0 pictures need even sides)."""
    if count <= 0:
        raise ValueError("an attribute image needs at least one Gaussian")
    width = max(WIDTH_ALIGN, int(np.ceil(np.sqrt(count) / WIDTH_ALIGN)) * WIDTH_ALIGN)
    height = -(-count // width)
    return width, height + (height & 1)


def _spread2(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.uint32) & 0xFF
    v = (v | (v << 4)) & 0x0F0F
    v = (v | (v << 2)) & 0x3333
    v = (v | (v << 1)) & 0x5555
    return v


@lru_cache(maxsize=32)
def placement(width: int, height: int, count: int) -> np.ndarray:
    """``flat pixel index`` for each position of the coding order of ``count`` Gaussians.

    Whole strips of BLOCK rows that the Gaussians fill are laid in Z-order inside BLOCK x BLOCK
    blocks (blocks left to right), the rest row by row. So the pixels in use are exactly the
    first ``count`` pixels in raster order, and a decoder reads a plane's first ``count``
    samples as they lie, with no gather. Covers all width*height pixels (a permutation)."""
    ys, xs = np.divmod(np.arange(width * height, dtype=np.int64), width)
    strip_rows = min(height, (count // (BLOCK * width)) * BLOCK)
    in_blocks = ys < strip_rows
    block = (ys // BLOCK) * (width // BLOCK) + xs // BLOCK
    z = _spread2(xs % BLOCK) | (_spread2(ys % BLOCK) << 1)
    rank = np.where(in_blocks, block * BLOCK * BLOCK + z, ys * width + xs)
    order = np.argsort(rank, kind="stable")  # position in the order -> pixel
    order.flags.writeable = False
    return order


def raster_order(order: np.ndarray, width: int, height: int) -> np.ndarray:
    """``order`` (coding position -> input index) re-indexed by raster position: the order in
    which a decoder that reads the planes as they lie hands the Gaussians out."""
    pixels = placement(width, height, len(order))
    rank = np.empty(width * height, np.int64)
    rank[pixels] = np.arange(width * height)
    return order[rank[: len(order)]]


def to_image(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lay ``values [N]`` (in coding order) into a ``[height, width]`` image (see :func:`placement`);
    the spare pixels repeat the last value, which codes almost for free."""
    pixels = placement(width, height, len(values))
    flat = np.empty(width * height, values.dtype)
    n = len(values)
    flat[pixels[:n]] = values
    if n < len(flat):
        flat[pixels[n:]] = values[-1] if n else 0
    return flat.reshape(height, width)


def from_image(image: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` values of an image laid by :func:`to_image`, in raster order."""
    return np.ascontiguousarray(image).reshape(-1)[:count]


def _appearance(cloud) -> np.ndarray:
    """Per-Gaussian features that stay put when a Gaussian only moves: log-scales, opacity,
    DC colour, each normalised by its spread in the frame."""
    features = np.concatenate([np.log(np.maximum(cloud.scales, 1e-12)), cloud.opacities[:, None], cloud.sh[:, 0]], axis=1)
    return features / np.maximum(features.std(axis=0), 1e-9)


def index_correspondence(clouds: list, sample: int = 4096) -> bool:
    """Whether splat i is the same Gaussian in every frame.

    It is when counts are equal and, between consecutive frames, splat i keeps its appearance
    (scale, opacity, colour) much better than the Gaussians a per-frame spatial sort would pair
    it with, or moves by less than half the typical spacing between Gaussians. Independently
    sorted frames (PlayCanvas flipbooks) fail both tests."""
    counts = {c.count for c in clouds}
    if len(counts) != 1:
        return False
    if len(clouds) < 2:
        return True
    n = counts.pop()
    pick = np.linspace(0, n - 1, min(n, sample)).astype(np.int64)
    first = clouds[0].means
    lo, hi = np.percentile(first, 1, axis=0), np.percentile(first, 99, axis=0)
    spacing = (float(np.prod(np.maximum(hi - lo, 1e-9))) / max(1, n)) ** (1 / 3)
    box_lo = np.min([c.means.min(axis=0) for c in clouds], axis=0)
    box_hi = np.max([c.means.max(axis=0) for c in clouds], axis=0)
    for a, b in zip(clouds, clouds[1:]):
        fa, fb = _appearance(a), _appearance(b)
        by_index = np.median(np.abs(fb[pick] - fa[pick]).sum(axis=1))
        sa, sb = morton_order(a.means, box_lo, box_hi), morton_order(b.means, box_lo, box_hi)
        by_sort = np.median(np.abs(fb[sb[pick]] - fa[sa[pick]]).sum(axis=1))
        step = np.median(np.linalg.norm(b.means[pick] - a.means[pick], axis=1))
        if not (by_index < 0.5 * by_sort or step < 0.5 * spacing):
            return False
    return True


def match_order(previous: np.ndarray, current: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, window: int = 8,
                rounds: int = 4) -> np.ndarray:  # fmt: skip
    """An order for ``current`` (positions [M, 3]) that puts each Gaussian where the closest
    Gaussian of the previous frame sits (``previous``: positions [N, 3] in its coding order), so
    that inter prediction finds it there: correspondence for inputs that have none.

    Candidates are the ``2 * window + 1`` neighbours along the Morton curve; a few rounds of
    "every free slot takes its nearest free candidate, the closest claim wins" match most
    Gaussians; the rest are paired in Morton order. Gaussians beyond the previous frame's count
    go last. Returns indices into ``current`` (a permutation)."""
    n, m = len(previous), len(current)
    if n == 0 or m == 0:
        return morton_order(current, lo, hi)
    cur_sorted = morton_order(current, lo, hi)
    cur_codes = morton_codes(current[cur_sorted], lo, hi)
    prev_codes = morton_codes(previous, lo, hi)
    at = np.searchsorted(cur_codes, prev_codes)
    offsets = np.arange(-window, window + 1)
    cand = np.clip(at[:, None] + offsets[None, :], 0, m - 1)  # ranks in cur_sorted
    cost = np.square(current[cur_sorted[cand]] - previous[:, None, :]).sum(axis=2)
    slot_of = np.full(m, -1, np.int64)  # by rank in cur_sorted
    match = np.full(n, -1, np.int64)  # slot -> rank
    for _ in range(rounds):
        free_slots = np.flatnonzero(match < 0)
        if len(free_slots) == 0:
            break
        c = cost[free_slots].copy()
        c[slot_of[cand[free_slots]] >= 0] = np.inf  # candidates already taken
        best = np.argmin(c, axis=1)
        best_cost = c[np.arange(len(free_slots)), best]
        ok = np.isfinite(best_cost)
        slots, ranks, costs = free_slots[ok], cand[free_slots[ok], best[ok]], best_cost[ok]
        if len(slots) == 0:
            break
        by = np.lexsort((costs, ranks))  # per claimed rank, the closest slot first
        slots, ranks = slots[by], ranks[by]
        first = np.ones(len(ranks), bool)
        first[1:] = ranks[1:] != ranks[:-1]
        match[slots[first]] = ranks[first]
        slot_of[ranks[first]] = slots[first]
    # Leftovers: free slots take the free Gaussians in Morton order.
    free_slots = np.flatnonzero(match < 0)
    free_ranks = np.flatnonzero(slot_of < 0)
    k = min(len(free_slots), len(free_ranks))
    match[free_slots[:k]] = free_ranks[:k]
    slot_of[free_ranks[:k]] = free_slots[:k]
    used = match[match >= 0]
    extra = np.flatnonzero(slot_of < 0)  # more Gaussians than the previous frame had
    return cur_sorted[np.concatenate([used, extra])]
