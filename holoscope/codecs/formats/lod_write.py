"""Writing PlayCanvas streamed LOD (``lod-meta.json`` + unbundled SOG chunk files), the layout
splat-transform writes, from one full-detail cloud.

Levels by decimation: level 0 is every splat; each coarser level merges neighbours pairwise, so
it holds half the splats of the level before. Pairs are consecutive splats along a Morton curve;
a pair merges into one Gaussian by moment matching (weights opacity x area, area = volume^(2/3):
the mean and covariance of the two, SH averaged, opacity conserving the pair's projected
"mass" but never above 1 - (1 - a)(1 - b)). Two splats further apart than three times the sum
of their largest sigmas are not merged (that would draw a smear across a gap, typically where
the Morton curve jumps): the heavier one is kept. Levels stop when the next would hold fewer
than :data:`MIN_LEVEL_SPLATS` splats, or at :data:`DEFAULT_MAX_LEVELS`.

Chunking follows splat-transform 3.10.2 (``writeLodSource``): a kd-tree over the centres of all
levels together, median split on the widest axis; a node splits while it holds more than
``chunk_count`` K splats, or is wider than ``chunk_extent`` and holds more than ``chunk_min`` K
(nodes of at most 256 never split). Each leaf's splats, per level, are Morton ordered and
appended to that level's current file ``<level>_<n>/meta.json``; a file is closed once it
exceeds ``file_count`` K (default ``chunk_count``). A leaf's bound is the union of its splats'
1-sigma boxes (centre +- |R| s), an inner node's the union of its children.

Why a SOG encoder of its own: a node's run must stay contiguous in its file, and
:func:`holoscope.codecs.formats.sog.encode_sog` reorders every file along a Morton curve. This one
keeps the rows as given (splat-transform passes an identity order for the same reason) and
otherwise encodes exactly as SOG v2 there, with that module's codebook, palette and WebP helpers;
every image is decoded again and compared (except the colour of splats whose opacity byte is 0:
libwebp may store any RGB under alpha 0, and such splats are invisible).

The output appears whole or not at all: everything is written into a staging folder first;
when the destination folder does not exist the staging folder is renamed to it, otherwise the
chunk folders are moved in and ``lod-meta.json`` is replaced last (a reader that opens the
scene by its lod-meta.json never sees a half-written one).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from holoscope.codecs.formats.common import output_error
from holoscope.codecs.formats.sog import META_NAME as SOG_META
from holoscope.codecs.formats.sog import encode_sog, morton_order
from holoscope.core.errors import EmptyMedia, HoloscopeError, InvalidArgument, OutputError
from holoscope.core.frames import SplatCloud
from holoscope.core.splat_math import quats_to_rotmats

log = logging.getLogger("holoscope")

LOD_META = "lod-meta.json"
DEFAULT_CHUNK_COUNT = 512  # K splats per chunk (splat-transform --lod-chunk-count)
DEFAULT_CHUNK_EXTENT = 16.0  # world units (--lod-chunk-extent)
DEFAULT_CHUNK_MIN = 8  # K splats below which a node is not split for extent (--lod-chunk-min)
DEFAULT_MAX_LEVELS = 6
MIN_LEVEL_SPLATS = 128
LEAF_SIZE = 256  # splat-transform's kd-tree leaves


# Decimation ----------------------------------------------------------------------------------


def rotmats_to_quats(r: np.ndarray) -> np.ndarray:
    """[N, 3, 3] proper rotations -> [N, 4] unit quaternions (w, x, y, z), w >= 0."""
    m00, m11, m22 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    q = np.empty((len(r), 4), np.float64)
    q[:, 0] = np.sqrt(np.maximum(0.0, 1 + m00 + m11 + m22)) / 2
    q[:, 1] = np.copysign(np.sqrt(np.maximum(0.0, 1 + m00 - m11 - m22)) / 2, r[:, 2, 1] - r[:, 1, 2])
    q[:, 2] = np.copysign(np.sqrt(np.maximum(0.0, 1 - m00 + m11 - m22)) / 2, r[:, 0, 2] - r[:, 2, 0])
    q[:, 3] = np.copysign(np.sqrt(np.maximum(0.0, 1 - m00 - m11 + m22)) / 2, r[:, 1, 0] - r[:, 0, 1])
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _weights(cloud: SplatCloud, index: np.ndarray) -> np.ndarray:
    s = cloud.scales[index].astype(np.float64)
    area = np.cbrt(np.abs(s[:, 0] * s[:, 1] * s[:, 2])) ** 2
    return cloud.opacities[index].astype(np.float64) * area + 1e-30


def merge_pairs(cloud: SplatCloud, a: np.ndarray, b: np.ndarray) -> SplatCloud:
    """One Gaussian per pair (a[i], b[i]) by moment matching (see the module docstring)."""
    wa, wb = _weights(cloud, a), _weights(cloud, b)
    total = wa + wb
    fa, fb = (wa / total)[:, None], (wb / total)[:, None]
    ma, mb = cloud.means[a].astype(np.float64), cloud.means[b].astype(np.float64)
    mean = fa * ma + fb * mb
    da, db = ma - mean, mb - mean
    ca = _covariance(cloud, a) + da[:, :, None] * da[:, None, :]
    cb = _covariance(cloud, b) + db[:, :, None] * db[:, None, :]
    cov = fa[:, :, None] * ca + fb[:, :, None] * cb
    values, vectors = np.linalg.eigh(cov)
    flip = np.linalg.det(vectors) < 0
    vectors[flip, :, 0] *= -1  # a proper rotation
    scales = np.sqrt(np.maximum(values, 1e-30))
    area = np.cbrt(scales[:, 0] * scales[:, 1] * scales[:, 2]) ** 2
    oa, ob = cloud.opacities[a].astype(np.float64), cloud.opacities[b].astype(np.float64)
    opacity = np.minimum(total / area, 1 - (1 - oa) * (1 - ob))
    sh = fa[:, :, None] * cloud.sh[a] + fb[:, :, None] * cloud.sh[b]
    return SplatCloud(
        means=mean.astype(np.float32),
        scales=scales.astype(np.float32),
        quats=rotmats_to_quats(vectors).astype(np.float32),
        opacities=np.clip(opacity, 0, 1).astype(np.float32),
        sh=sh.astype(np.float32),
    )


def _covariance(cloud: SplatCloud, index: np.ndarray) -> np.ndarray:
    m = quats_to_rotmats(cloud.quats[index]) * cloud.scales[index].astype(np.float64)[:, None, :]
    return m @ m.transpose(0, 2, 1)


def decimate(cloud: SplatCloud) -> SplatCloud:
    """About half the splats: Morton neighbours merged pairwise (far-apart pairs keep the heavier)."""
    n = cloud.count
    if n < 2:
        return cloud
    order = morton_order(cloud.means)
    a, b = order[0 : n - 1 : 2], order[1:n:2]
    gap = np.linalg.norm(cloud.means[a].astype(np.float64) - cloud.means[b], axis=1)
    reach = 3.0 * (np.abs(cloud.scales[a]).max(axis=1) + np.abs(cloud.scales[b]).max(axis=1))
    close = gap <= reach
    heavier = np.where(_weights(cloud, a) >= _weights(cloud, b), a, b)
    parts = [merge_pairs(cloud, a[close], b[close]), cloud.subset(heavier[~close])]
    if n % 2:
        parts.append(cloud.subset(order[-1:]))
    return _concat(parts)


def _concat(parts: list[SplatCloud]) -> SplatCloud:
    return SplatCloud(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                        ("means", "scales", "quats", "opacities", "sh")))  # fmt: skip


def build_levels(cloud: SplatCloud, levels: int | None = None) -> list[SplatCloud]:
    """Level 0 (the cloud itself) and coarser levels, each about half the one before."""
    if levels is not None and not 1 <= levels <= 32:
        raise InvalidArgument(f"the number of LOD levels must be 1..32, got {levels}")
    out = [cloud]
    while len(out) < (levels or DEFAULT_MAX_LEVELS):
        if levels is None and out[-1].count // 2 < MIN_LEVEL_SPLATS:
            break
        out.append(decimate(out[-1]))
    return out


# Chunking ------------------------------------------------------------------------------------


def splat_boxes(cloud: SplatCloud) -> tuple[np.ndarray, np.ndarray]:
    """Each splat's 1-sigma box in world space: (min [N, 3], max [N, 3]), as splat-transform."""
    r = quats_to_rotmats(cloud.quats)
    half = np.abs(r) @ np.abs(cloud.scales.astype(np.float64))[:, :, None]
    centre = cloud.means.astype(np.float64)
    return centre - half[:, :, 0], centre + half[:, :, 0]


def _split(positions: np.ndarray, index: np.ndarray, *, split_count: int, extent: float, min_count: int) -> Any:
    """The kd-tree as nested lists: a leaf is an index array, an inner node a [left, right] pair."""
    stack: list[tuple[np.ndarray, list]] = []
    root: list = []
    stack.append((index, root))
    while stack:
        idx, slot = stack.pop()
        pts = positions[idx]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        axis = int(np.argmax(hi - lo))
        largest = float(hi[axis] - lo[axis])
        if len(idx) > LEAF_SIZE and (len(idx) > split_count or (largest > extent and len(idx) > min_count)):
            mid = len(idx) >> 1
            part = np.argpartition(pts[:, axis], mid, kind="introselect")
            left, right = idx[part[:mid]], idx[part[mid:]]
            children: list = [[], []]
            slot.append(children)
            stack.append((right, children[1]))
            stack.append((left, children[0]))
        else:
            slot.append(idx)
    return root[0]


def _bound(lo: np.ndarray, hi: np.ndarray) -> dict[str, list[float]]:
    return {"min": [float(v) for v in lo.astype(np.float32)], "max": [float(v) for v in hi.astype(np.float32)]}


def plan_lod(levels: list[SplatCloud], *, chunk_count: int = DEFAULT_CHUNK_COUNT,
             chunk_extent: float = DEFAULT_CHUNK_EXTENT, chunk_min: int = DEFAULT_CHUNK_MIN,
             file_count: list[int] | None = None) -> tuple[dict, dict[str, tuple[int, np.ndarray]]]:  # fmt: skip
    """The lod-meta.json contents and the files: {name: (level, row indices into that level)}."""
    if chunk_count < 1 or chunk_min < 0 or not (chunk_extent > 0 and math.isfinite(chunk_extent)):
        raise InvalidArgument("chunk count must be >= 1, chunk minimum >= 0 and the extent a positive number")
    counts = [c.count for c in levels]
    cum = np.concatenate([[0], np.cumsum(counts)])
    positions = np.concatenate([c.means for c in levels]).astype(np.float64)
    boxes = [splat_boxes(c) for c in levels]
    tree = _split(positions, np.arange(len(positions)), split_count=chunk_count * 1024, extent=chunk_extent,
                  min_count=chunk_min * 1024)  # fmt: skip
    unit = [1024 * (file_count[min(lv, len(file_count) - 1)] if file_count else chunk_count)
            for lv in range(len(levels))]  # fmt: skip
    files: dict[int, list[list[np.ndarray]]] = {}
    filenames: list[str] = []

    def leaf(idx: np.ndarray) -> dict:
        lods: dict[str, dict[str, int]] = {}
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        which = np.searchsorted(cum, idx, side="right") - 1
        for lv in np.unique(which):
            rows = idx[which == lv] - cum[lv]
            rows = rows[morton_order(levels[lv].means[rows])]
            per_level = files.setdefault(int(lv), [[]])
            current = per_level[-1]
            size = sum(len(r) for r in current)
            name = f"{lv}_{len(per_level) - 1}/{SOG_META}"
            if name not in filenames:
                filenames.append(name)
            lods[str(lv)] = {"file": filenames.index(name), "offset": size, "count": len(rows)}
            current.append(rows)
            if size + len(rows) > unit[lv]:
                per_level.append([])
            blo, bhi = boxes[lv]
            lo = np.minimum(lo, blo[rows].min(axis=0))
            hi = np.maximum(hi, bhi[rows].max(axis=0))
        return {"bound": _bound(lo, hi), "lods": lods, "_lo": lo, "_hi": hi}

    def walk(node: Any) -> dict:
        if isinstance(node, np.ndarray):
            return leaf(node)
        children = [walk(node[0][0]), walk(node[1][0])]  # each child slot holds one entry
        lo = np.minimum(children[0].pop("_lo"), children[1].pop("_lo"))
        hi = np.maximum(children[0].pop("_hi"), children[1].pop("_hi"))
        return {"bound": _bound(lo, hi), "children": children, "_lo": lo, "_hi": hi}

    # walk() recurses once per tree level: the tree halves its count per level, so the depth is
    # about log2(splats / 256), far inside Python's recursion limit.
    root = walk(tree)
    root.pop("_lo")
    root.pop("_hi")
    meta = {
        "version": 1,
        "asset": {"generator": "holoscope", "chunkGaussians": chunk_count * 1024, "chunkExtent": chunk_extent,
                  "chunkMinGaussians": chunk_min * 1024},  # fmt: skip
        "count": int(sum(counts)),
        "counts": [int(c) for c in counts],
        "lodLevels": len(levels),
        "filenames": filenames,
        "tree": root,
    }
    out: dict[str, tuple[int, np.ndarray]] = {}
    for lv, per_level in files.items():
        for i, runs in enumerate(per_level):
            if runs:
                out[f"{lv}_{i}/{SOG_META}"] = (lv, np.concatenate(runs))
    return meta, out


# SOG in the given row order ------------------------------------------------------------------


def encode_sog_rows(cloud: SplatCloud, *, iterations: int = 6, level: int = 4, seed: int = 0) -> dict[str, bytes]:
    """The files of an unbundled SOG v2 holding ``cloud``'s splats in its own order (meta.json
    first): lod-meta.json addresses a chunk by its row offset in the file."""
    return encode_sog(cloud, iterations=iterations, level=level, seed=seed, morton=False)


# Writing -------------------------------------------------------------------------------------


def _check(cloud: SplatCloud) -> None:
    if cloud.count == 0:
        raise EmptyMedia("cannot write a streamed-LOD scene with zero splats")
    arrays = (cloud.means, cloud.scales, cloud.quats, cloud.opacities, cloud.sh)
    if not all(np.isfinite(a).all() for a in arrays):
        raise InvalidArgument("the cloud holds NaN or infinite values; SOG cannot store them")


def write_lod(cloud: SplatCloud, path: str | Path, *, levels: int | None = None,
              chunk_count: int = DEFAULT_CHUNK_COUNT, chunk_extent: float = DEFAULT_CHUNK_EXTENT,
              chunk_min: int = DEFAULT_CHUNK_MIN, file_count: list[int] | None = None,
              iterations: int = 6, level: int = 4, seed: int = 0) -> dict:  # fmt: skip
    """Write ``cloud`` as a streamed-LOD scene at ``path`` (a name ending in lod-meta.json, whose
    folder receives the chunk folders); returns the lod-meta.json contents. See the module
    docstring for the levels, the chunking and the atomic write."""
    path = Path(path)
    started = time.perf_counter()
    if not path.name.lower().endswith(LOD_META):
        raise InvalidArgument(f"a streamed-LOD scene is written as {LOD_META}", path=path)
    try:
        _check(cloud)
        clouds = build_levels(cloud, levels)
        meta, files = plan_lod(clouds, chunk_count=chunk_count, chunk_extent=chunk_extent, chunk_min=chunk_min,
                               file_count=file_count)  # fmt: skip
    except HoloscopeError as exc:
        if exc.path is None:
            raise type(exc)(str(exc), path=path) from exc
        raise
    folder = path.parent
    fresh = not folder.exists()
    base = folder.parent if fresh else folder
    if not base.is_dir():
        raise OutputError("the folder for the streamed-LOD scene does not exist", path=base)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{folder.name[:64] or 'lod'}.", suffix=".partial", dir=base))
    except OSError as exc:
        raise output_error(exc, folder, action="cannot write here") from exc
    try:
        for name, (lv, rows) in files.items():
            unit = Path(stage, name)
            unit.parent.mkdir(parents=True, exist_ok=True)
            try:
                encoded = encode_sog_rows(clouds[lv].subset(rows), iterations=iterations, level=level, seed=seed)
            except HoloscopeError as exc:
                raise type(exc)(f"{name}: {exc}", path=path) from exc
            for member, data in encoded.items():
                Path(unit.parent, member).write_bytes(data)
        Path(stage, path.name).write_bytes(json.dumps(meta, separators=(",", ":")).encode())
        os.chmod(stage, 0o777 & ~_umask())
        if fresh:
            os.rename(stage, folder)
        else:
            _move_in(stage, folder, [name.split("/")[0] for name in files], path.name)
    except OSError as exc:
        raise output_error(exc, path) from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.debug("wrote %s: %d levels, %d files in %.2f s", path, len(clouds), len(files), time.perf_counter() - started)
    return meta


def _umask() -> int:
    from holoscope.codecs.formats.common import current_umask

    return current_umask()


def _move_in(stage: Path, folder: Path, units: list[str], meta_name: str) -> None:
    """Move the staged chunk folders into an existing ``folder`` (an older folder of the same name
    goes into the stage, removed with it), then replace lod-meta.json last."""
    old = stage / ".replaced"
    old.mkdir()
    for unit in units:
        target = folder / unit
        if target.exists() or target.is_symlink():
            os.rename(target, old / unit)
        os.rename(stage / unit, target)
    os.replace(stage / meta_name, folder / meta_name)
