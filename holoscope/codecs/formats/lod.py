"""PlayCanvas streamed LOD (``lod-meta.json``, as splat-transform writes it): reader and model.

Layout: ``lod-meta.json`` beside SOG scenes (usually unbundled folders ``<level>_<n>/meta.json``):

- ``version`` 1 (absent in files from before versioning), ``lodLevels`` L >= 1, ``counts`` (splats
  per level, optional), ``count`` (their sum, optional), ``filenames`` (the SOG files, relative to
  lod-meta.json), ``environment`` (optional: a SOG of background splats shown at every level),
  ``asset`` (generator and the chunking it used);
- ``tree``: nodes with ``bound`` {min, max} (the splats' 1-sigma boxes) and either ``children``
  (a list of nodes) or ``lods``: {"<level>": {file, offset, count}}, a run of ``count`` splats
  from ``offset`` in file ``file``. Level 0 is the finest; each leaf holds its region at every
  level it has.

Everything in lod-meta.json is checked before a chunk is read (types, every index against its
table, the per-level counts against the tree, runs in one file not overlapping, names relative
and inside the scene); a file's runs are checked against its real splat count when it is loaded.
Every chunk file is reached through ``source.relative(name)``, so the same code reads a local
folder and a web server. Files are the unit of download: each is decoded once and kept in a
byte-bounded :class:`~holoscope.core.lod_select.ChunkCache`.

:func:`open_lod` returns a static SPLATS Media whose ``frame(0)`` is the full-detail scene (every
node at level 0), so info, render and convert work unchanged; ``media.lod_scene`` is the
:class:`LodScene` for selection by camera and budget (:mod:`holoscope.core.lod_select`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from holoscope.core import budget
from holoscope.core.camera import Camera
from holoscope.core.errors import CorruptStream, EmptyMedia, SourceNotFound
from holoscope.core.frames import SplatCloud
from holoscope.core.lod_select import ChunkCache, LodSelection, fetch_order, select_for_camera
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import Source, source_for

log = logging.getLogger("holoscope")

FORMAT_NAME = "lod"
READER_NAME = "holoscope.lod"
META_NAME = "lod-meta.json"
# A leaf costs about 150 bytes of JSON; 16 MB describes ~100k leaves (tens of billions of splats
# at splat-transform's chunk sizes) and keeps json.loads to a few hundred MB at worst.
MAX_META_BYTES = 16 << 20
MAX_LEVELS = 32
MAX_FILES = 1 << 16
MAX_NODES = 1 << 20
MAX_DEPTH = 64  # splat-transform's tree halves its count per level: 64 is far beyond 2^63 splats
MAX_COUNT = 1 << 31
DEFAULT_CACHE_BYTES = 8 << 30  # decoded chunk files kept (bytes of SplatCloud arrays)


@dataclass(frozen=True)
class LodNode:
    """One tree node: its bound, its children (indices into ``LodScene.nodes``) and, for a leaf,
    its runs per level: ``lods[level] = (file, offset, count)``."""

    index: int
    depth: int
    bound_min: tuple[float, float, float]
    bound_max: tuple[float, float, float]
    children: tuple[int, ...]
    lods: dict[int, tuple[int, int, int]]


def _fail(message: str, path: object) -> CorruptStream:
    return CorruptStream(f"lod-meta.json {message}", path=path)


def _name(value: Any, key: str, path: object) -> str:
    """A file name from lod-meta.json: relative, no '..', no backslash, no scheme or drive."""
    if not isinstance(value, str) or not value or len(value) > 1024 or "\x00" in value or "\\" in value:
        raise _fail(f"{key}: bad file name {value!r:.80}", path)
    pure = PurePosixPath(value)
    if value.startswith("/") or ".." in pure.parts or ":" in pure.parts[0] or "?" in value or "#" in value:
        raise _fail(f"{key}: file name {value!r:.80} points outside the scene", path)
    return value


def _integer(value: Any, key: str, lo: int, hi: int, path: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{key} must be an integer, got {value!r:.40}", path)
    if not lo <= value <= hi:
        raise _fail(f"{key} = {value} is outside {lo}..{hi:,}", path)
    return value


def _vector(value: Any, key: str, path: object) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise _fail(f"{key} must be a list of 3 numbers", path)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(f"{key} must hold numbers only", path)
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            raise _fail(f"{key} holds a non-finite number", path)
        out.append(f)
    return out[0], out[1], out[2]


def parse_meta(data: bytes, path: object = None) -> tuple[dict, list[LodNode]]:
    """Parse and check lod-meta.json: (the top-level fields, normalised; the nodes in depth-first
    order). Every problem raises :class:`CorruptStream` naming the key."""
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptStream(f"lod-meta.json is not valid JSON ({str(exc)[:120]})", path=path) from exc
    if not isinstance(meta, dict):
        raise _fail("must hold a JSON object", path)
    version = meta.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise _fail(f"version {version!r:.40} is not supported (1)", path)
    levels = _integer(meta.get("lodLevels"), "lodLevels", 1, MAX_LEVELS, path)
    names = meta.get("filenames")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_FILES:
        raise _fail(f"filenames must be a list of 1..{MAX_FILES:,} file names", path)
    filenames = [_name(v, f"filenames[{i}]", path) for i, v in enumerate(names)]
    environment = meta.get("environment")
    if environment is not None:
        environment = _name(environment, "environment", path)
    counts = meta.get("counts")
    if counts is not None:
        if not isinstance(counts, list) or len(counts) != levels:
            raise _fail(f"counts must list {levels} numbers (one per level)", path)
        counts = [_integer(c, f"counts[{i}]", 0, MAX_COUNT, path) for i, c in enumerate(counts)]
    total = meta.get("count")
    if total is not None:
        total = _integer(total, "count", 0, MAX_COUNT * MAX_LEVELS, path)
    tree = meta.get("tree")
    if not isinstance(tree, dict):
        raise _fail("needs an object 'tree'", path)

    nodes: list[LodNode] = []
    found = [0] * levels
    # Depth-first without recursion (a hostile tree may be deep); children are numbered as they
    # are reached, so a node's index is its position in depth-first order.
    stack: list[tuple[Any, int, str, int]] = [(tree, 0, "tree", -1)]
    pending_children: dict[int, list[int]] = {}
    while stack:
        node, depth, where, parent = stack.pop()
        if not isinstance(node, dict):
            raise _fail(f"{where} must be an object", path)
        if depth > MAX_DEPTH:
            raise _fail(f"{where}: the tree is deeper than {MAX_DEPTH} levels", path)
        if len(nodes) >= MAX_NODES:
            raise _fail(f"the tree holds more than {MAX_NODES:,} nodes", path)
        bound = node.get("bound")
        if not isinstance(bound, dict):
            raise _fail(f"{where}.bound must be an object with min and max", path)
        lo = _vector(bound.get("min"), f"{where}.bound.min", path)
        hi = _vector(bound.get("max"), f"{where}.bound.max", path)
        if any(a > b for a, b in zip(lo, hi)):
            raise _fail(f"{where}.bound.min is above bound.max", path)
        children = node.get("children")
        lods_in = node.get("lods")
        if children is None and lods_in is None:
            raise _fail(f"{where} has neither children nor lods", path)
        lods: dict[int, tuple[int, int, int]] = {}
        if lods_in is not None:
            if not isinstance(lods_in, dict):
                raise _fail(f"{where}.lods must be an object", path)
            for key, ref in lods_in.items():
                if not (isinstance(key, str) and key.isdigit() and len(key) <= 3):
                    raise _fail(f"{where}.lods key {key!r:.20} is not a level number", path)
                level = _integer(int(key), f"{where}.lods level", 0, levels - 1, path)
                if not isinstance(ref, dict):
                    raise _fail(f"{where}.lods.{key} must be an object", path)
                file = _integer(ref.get("file"), f"{where}.lods.{key}.file", 0, len(filenames) - 1, path)
                offset = _integer(ref.get("offset"), f"{where}.lods.{key}.offset", 0, MAX_COUNT, path)
                count = _integer(ref.get("count"), f"{where}.lods.{key}.count", 0, MAX_COUNT, path)
                lods[level] = (file, offset, count)
                found[level] += count
        index = len(nodes)
        if parent >= 0:
            pending_children[parent].append(index)
        nodes.append(LodNode(index, depth, lo, hi, (), lods))
        if children is not None:
            if not isinstance(children, list) or not children:
                raise _fail(f"{where}.children must be a non-empty list", path)
            pending_children[index] = []
            for i in range(len(children) - 1, -1, -1):
                stack.append((children[i], depth + 1, f"{where}.children[{i}]", index))
    for index, kids in pending_children.items():
        kids.sort()
        node = nodes[index]
        nodes[index] = LodNode(node.index, node.depth, node.bound_min, node.bound_max, tuple(kids), node.lods)
    if counts is not None and counts != found:
        level = next(i for i in range(levels) if counts[i] != found[i])
        raise _fail(f"counts[{level}] = {counts[level]:,} but the tree holds {found[level]:,} splats at level {level}",
                    path)  # fmt: skip
    if total is not None and total != sum(found):
        raise _fail(f"count = {total:,} but the levels hold {sum(found):,} splats", path)
    if found[0] == 0:
        raise EmptyMedia("lod-meta.json: level 0 holds no splats", path=path)
    _check_runs(nodes, path)
    fields = {"version": 1, "lodLevels": levels, "filenames": filenames, "environment": environment,
              "counts": found, "asset": meta.get("asset") if isinstance(meta.get("asset"), dict) else {}}  # fmt: skip
    return fields, nodes


def _check_runs(nodes: list[LodNode], path: object) -> None:
    """Runs in one file must not overlap (each splat belongs to one node and level)."""
    runs: dict[int, list[tuple[int, int, int]]] = {}
    for node in nodes:
        for level, (file, offset, count) in node.lods.items():
            if count:
                runs.setdefault(file, []).append((offset, count, node.index))
    for file, items in runs.items():
        items.sort()
        for (a, n, _), (b, _, node) in zip(items, items[1:]):
            if a + n > b:
                raise _fail(f"file {file}: the runs at offsets {a} and {b} overlap (node {node})", path)


def concat_clouds(clouds: list[SplatCloud]) -> SplatCloud:
    """One cloud holding ``clouds`` in order (SH padded to the highest degree among them)."""
    degree = max(c.sh_degree for c in clouds)
    clouds = [c if c.sh_degree == degree else c.with_sh_degree(degree) for c in clouds]
    if len(clouds) == 1:
        c = clouds[0]
        return SplatCloud(c.means, c.scales, c.quats, c.opacities, c.sh, {})
    return SplatCloud(
        means=np.concatenate([c.means for c in clouds]),
        scales=np.concatenate([c.scales for c in clouds]),
        quats=np.concatenate([c.quats for c in clouds]),
        opacities=np.concatenate([c.opacities for c in clouds]),
        sh=np.concatenate([c.sh for c in clouds]),
    )


class LodScene:
    """An opened streamed-LOD scene: levels, counts, the tree, and its chunk files, loaded on
    demand (each file once, kept in a byte-bounded cache)."""

    def __init__(self, source: Source, meta: dict, nodes: list[LodNode], *,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:  # fmt: skip
        self.source = source
        self.levels: int = meta["lodLevels"]
        self.counts: list[int] = meta["counts"]
        self.filenames: list[str] = meta["filenames"]
        self.environment: str | None = meta["environment"]
        self.asset: dict = meta["asset"]
        self.nodes = nodes
        self.bytes_read = 0  # bytes of the chunk files decoded so far
        self.leaves = [n for n in nodes if n.lods]
        leaves = len(self.leaves)
        self.bound_min = np.array([n.bound_min for n in self.leaves], np.float64).reshape(leaves, 3)
        self.bound_max = np.array([n.bound_max for n in self.leaves], np.float64).reshape(leaves, 3)
        # [leaf, level]: splats of the run (0 where the leaf lacks the level) and whether it has it
        self.leaf_counts = np.zeros((leaves, self.levels), np.int64)
        self.available = np.zeros((leaves, self.levels), bool)
        for i, node in enumerate(self.leaves):
            for level, (_, _, count) in node.lods.items():
                self.leaf_counts[i, level] = count
                self.available[i, level] = True
        # What each leaf shows when asked for a level: that level, or its next coarser one (level
        # 0 is exactly the finest input); what the selection counts.
        self.shown_counts = np.zeros_like(self.leaf_counts)
        for i in range(leaves):
            for level in range(self.levels):
                shown = 0 if level == 0 else self.shown_level(i, level)
                self.shown_counts[i, level] = self.leaf_counts[i, shown] if shown is not None else 0
        # What a file must hold: the end of its last run.
        self.file_needs = [0] * len(self.filenames)
        for node in self.leaves:
            for file, offset, count in node.lods.values():
                self.file_needs[file] = max(self.file_needs[file], offset + count)
        self.cache: ChunkCache[int, SplatCloud] = ChunkCache(cache_bytes, lambda c: c.nbytes)
        self._lock = threading.Lock()
        self._file_locks: dict[int, threading.Lock] = {}
        self._environment: SplatCloud | None = None
        self._last: tuple[bytes, SplatCloud] | None = None
        self.files_loaded = 0  # decodes, for tests and statistics

    @property
    def name(self) -> object:
        return self.source.label

    @property
    def bounds(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        root = self.nodes[0]
        return root.bound_min, root.bound_max

    # Files ------------------------------------------------------------------------------

    def _read_sog(self, name: str, what: str) -> SplatCloud:
        from holoscope.codecs.formats.sog import open_sog

        try:
            member = self.source.relative(name)
            if not member.exists():
                raise CorruptStream(f"{what} {name!r} (named in lod-meta.json) is missing", path=self.name)
            media = open_sog(member)
            cloud = media.frame(0)
            with self._lock:
                self.bytes_read += int(media.info.get("file_bytes") or 0)
        except SourceNotFound as exc:
            raise CorruptStream(f"{what} {name!r} (named in lod-meta.json) is missing ({exc})", path=self.name) from exc
        return cloud

    def load_file(self, file: int) -> SplatCloud:
        """Chunk file ``file`` decoded (from the cache when it is there), its runs checked."""
        if not 0 <= file < len(self.filenames):
            raise IndexError(f"file {file} out of range 0..{len(self.filenames) - 1}")
        # One lock per file for the download and decode, the scene's lock only around the
        # cache: two loaders fetch two files at once, never the same file twice.
        with self._lock:
            cloud = self.cache.get(file)
            if cloud is not None:
                return cloud
            file_lock = self._file_locks.setdefault(file, threading.Lock())
        with file_lock:
            with self._lock:
                cloud = self.cache.get(file)
            if cloud is None:
                cloud = self._load_file(file)
                with self._lock:
                    self.cache.put(file, cloud)
        return cloud

    def _load_file(self, file: int) -> SplatCloud:
        name = self.filenames[file]
        cloud = self._read_sog(name, "chunk file")
        with self._lock:
            self.files_loaded += 1
        dropped = int(cloud.metadata.get("dropped_nonfinite", 0))
        if dropped:
            raise CorruptStream(f"chunk file {name!r} holds {dropped} splats with non-finite values; the offsets "
                                "in lod-meta.json no longer apply", path=self.name)  # fmt: skip
        if cloud.count < self.file_needs[file]:
            raise CorruptStream(f"chunk file {name!r} holds {cloud.count:,} splats, but lod-meta.json reads up to "
                                f"splat {self.file_needs[file]:,} of it", path=self.name)  # fmt: skip
        return cloud

    def environment_cloud(self) -> SplatCloud | None:
        """The background splats shown at every level, or None."""
        if self.environment is None:
            return None
        if self._environment is None:
            self._environment = self._read_sog(self.environment, "environment file")
        return self._environment

    def chunk(self, leaf: int, level: int) -> SplatCloud | None:
        """The splats of leaf ``leaf`` (an index into ``leaves``) at ``level``; None if it lacks it."""
        ref = self.leaves[leaf].lods.get(level)
        if ref is None:
            return None
        file, offset, count = ref
        cloud = self.load_file(file)
        return cloud.subset(slice(offset, offset + count))

    # Scenes -----------------------------------------------------------------------------

    def shown_level(self, leaf: int, level: int) -> int | None:
        """The level leaf ``leaf`` shows when asked for ``level``: that one, or the next coarser
        level it has, or None."""
        have = np.flatnonzero(self.available[leaf, level:])
        return int(level + have[0]) if len(have) else None

    def runs_for(self, levels: np.ndarray | int) -> list[tuple[int, int, int]]:
        """(file, offset, count) of what a choice of levels (one per leaf, or one for all) shows."""
        per_leaf = np.broadcast_to(np.asarray(levels, np.int64), (len(self.leaves),))
        runs = []
        for i, node in enumerate(self.leaves):
            level = int(per_leaf[i]) if int(per_leaf[i]) == 0 else self.shown_level(i, int(per_leaf[i]))
            if level is not None and level in node.lods and node.lods[level][2]:
                runs.append(node.lods[level])
        return runs

    def files_for(self, levels: np.ndarray | int) -> list[int]:
        return sorted({file for file, _, _ in self.runs_for(levels)})

    def cloud_for(self, levels: np.ndarray | int) -> SplatCloud:
        """The scene at a level per leaf (or one level for all; level 0: the full-detail scene),
        with the environment. A leaf lacking a level shows its next coarser one, except at
        level 0, which is exactly the finest input."""
        by_file: dict[int, list[np.ndarray]] = {}
        for file, offset, count in self.runs_for(levels):
            by_file.setdefault(file, []).append(np.arange(offset, offset + count))
        parts = []
        total = sum(len(index) for runs in by_file.values() for index in runs)
        for file in sorted(by_file):
            cloud = self.load_file(file)
            if not parts:  # the files are budgeted as they decode; then the scene built from them
                budget.require(self.cache.bytes + budget.splat_cloud_bytes(total, cloud.sh_degree),
                               what=f"a {total:,}-splat scene from the chunk files", path=self.name)  # fmt: skip
            index = np.concatenate(by_file[file])
            parts.append(cloud if len(index) == cloud.count and (index == np.arange(cloud.count)).all()
                         else cloud.subset(index))  # fmt: skip
        env = self.environment_cloud()
        if env is not None:
            parts.append(env)
        if not parts:
            raise EmptyMedia("the selected levels hold no splats", path=self.name)
        cloud = concat_clouds(parts)
        cloud.metadata["format_info"] = self.describe()
        cloud.metadata["dropped_nonfinite"] = 0
        return cloud

    def full_cloud(self) -> SplatCloud:
        """Every leaf at level 0: the full-detail scene."""
        return self.cloud_for(0)

    def coarsest_cloud(self) -> SplatCloud:
        return self.cloud_for(self.levels - 1)

    def select(self, camera: Camera, budget: int | None) -> LodSelection:
        """The level per leaf for ``camera`` under ``budget`` splats (None: full detail)."""
        return select_for_camera(self.bound_min, self.bound_max, self.shown_counts, camera, budget)

    def cloud_for_camera(self, camera: Camera, budget: int | None) -> SplatCloud:
        """What ``camera`` needs under ``budget``: the finest levels that fit it. The same choice
        as the last call gives the same cloud object (a renderer then keeps what it uploaded)."""
        levels = self.select(camera, budget).levels
        key = levels.tobytes()
        with self._lock:
            last = self._last
        if last is not None and last[0] == key:
            return last[1]
        cloud = self.cloud_for(levels)
        with self._lock:
            self._last = (key, cloud)
        return cloud

    def fetch_plan(self, selection: LodSelection) -> list[int]:
        """Files to fetch, in order (coarse first, then finer by need), for ``selection``."""
        seen: dict[int, None] = {}
        for leaf, level in fetch_order(selection.levels, selection.need, self.available):
            seen.setdefault(self.leaves[leaf].lods[level][0], None)
        return list(seen)

    def describe(self) -> dict[str, Any]:
        """What ``holoscope info`` reports: levels, counts, files, chunks, bounds."""
        lo, hi = self.bounds
        info: dict[str, Any] = {
            "lod_levels": self.levels,
            "lod_counts": list(self.counts),
            "lod_files": len(self.filenames),
            "lod_chunks": len(self.leaves),
            "lod_nodes": len(self.nodes),
            "lod_chunk_bytes": self.bytes_read,  # of the chunk files decoded so far (level 0's for the full scene)
            "lod_bounds_min": [round(v, 6) for v in lo],
            "lod_bounds_max": [round(v, 6) for v in hi],
        }
        generator = self.asset.get("generator")
        if isinstance(generator, str):
            info["lod_generator"] = generator[:80]
        if self.environment is not None:
            info["lod_environment"] = self.environment
        return info


def _meta_source(source: Source) -> Source:
    if source.is_folder:
        return source.relative(META_NAME)
    return source


def read_lod(source: Source | str | bytes, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> LodScene:
    """Open lod-meta.json (or a folder holding it) as a :class:`LodScene`; no chunk is read."""
    source = _meta_source(source_for(source))
    if not source.exists():
        raise SourceNotFound("no such file", path=source.label)
    data = source.read_limited(MAX_META_BYTES, what="lod-meta.json")
    meta, nodes = parse_meta(data, source.label)
    return LodScene(source, meta, nodes, cache_bytes=cache_bytes)


def open_lod(source: Source) -> Media:
    """A static SPLATS Media: ``frame(0)`` is the full-detail scene (decoded on first use, then
    kept); ``media.lod_scene`` the :class:`LodScene`."""
    scene = read_lod(source)
    full: list[SplatCloud] = []
    lock = threading.Lock()

    def load(index: int) -> SplatCloud:
        with lock:
            if not full:
                full.append(scene.full_cloud())
            return full[0]

    info: dict[str, Any] = {"splats": scene.counts[0], "default_up": "-y", **scene.describe()}
    size = scene.source.size
    if size is not None:
        info["file_bytes"] = size
    media = Media(kind=MediaKind.SPLATS, format=FORMAT_NAME, reader=READER_NAME, frame_count=1, fps=0.0,
                  load_frame=load, path=str(scene.source.label), info=info)  # fmt: skip
    media.lod_scene = scene  # type: ignore[attr-defined]
    return media
