"""Streaming a level-of-detail scene (``lod-meta.json``) into a viewer, Qt-free.

:class:`LodStreamer` owns a :class:`~holoscope.codecs.formats.lod.LodScene` and background
loader threads that fetch its chunk files in need order for the newest camera: the coarsest
level of every leaf first (the whole scene appears early), then finer files by screen-space need
(:func:`~holoscope.core.lod_select.fetch_order`), down to each leaf's level under the splat
budget. Each loader re-plans before every fetch, so a fetch for a camera that has since moved is
never started (one already running finishes and is kept).

Loaded files stay in a byte-bounded cache. The plan is cut where its estimated bytes reach the
limit (what does not fit is not fetched); under pressure the files that are neither shown nor in
the cut plan go first, the least needed (not needed at all, then latest in the plan) and then
the least recently used. A file a shown leaf uses is never evicted.

:meth:`LodStreamer.cloud_for_view` returns what to draw: each leaf at the finest level that is
both selected (the budget's level, or a coarser one) and loaded; a leaf that has nothing loaded
at or above that level keeps what it showed (never a hole where something was), and a leaf whose
coarsest level has not arrived is not drawn yet. The version changes only when the shown set
changes, so a viewer re-uploads only then, and a leaf's level swaps in one upload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from holoscope.codecs.formats.lod import LodScene, concat_clouds
from holoscope.core.camera import Camera
from holoscope.core.errors import HoloscopeError, NetworkError
from holoscope.core.frames import SplatCloud
from holoscope.core.lod_select import LodSelection, check_budget, fetch_order

log = logging.getLogger("holoscope")

# The default splat budget: the largest per-splat GPU buffer is the SH one (16 coefficients x 3
# colours x 4 bytes at SH 3 = 192 B), which must fit GL_MAX_SHADER_STORAGE_BLOCK_SIZE (128 MiB
# on Mesa llvmpipe: about 700k splats; 2 GiB on desktop NVIDIA: 11M). Capped at 3M: the CPU depth
# sort of 3M splats takes about 40 ms (README, Performance), the most an interactive view should
# wait per camera move; floored at 250k so a GPU that reports a small limit still shows detail.
SH3_BYTES_PER_SPLAT = 192
MAX_DEFAULT_BUDGET = 3_000_000
MIN_DEFAULT_BUDGET = 250_000
DEFAULT_SPLAT_BUDGET = MAX_DEFAULT_BUDGET
DEFAULT_STREAM_CACHE_BYTES = 2 << 30  # decoded chunk files kept (SplatCloud bytes)
DEFAULT_WORKERS = 2  # one file downloads while another decodes
RETRY_FAILED_S = 2.0  # a file that failed on the network is tried again after this, doubling (at most 60 s)
# "steps": every level between a leaf's coarsest and its selected one, coarse to fine (the picture
# sharpens in steps; up to about twice the bytes of the selected levels alone). "direct": the
# coarsest level, then the selected one (full detail sooner on a slow link; one larger change).
REFINE_MODES = ("steps", "direct")
_GUESS_BYTES_PER_SPLAT = 236  # a decoded SH 3 splat, until a loaded file tells the real figure


def default_budget(max_ssbo_bytes: int | None) -> int:
    """A splat budget for a GPU whose GL_MAX_SHADER_STORAGE_BLOCK_SIZE is ``max_ssbo_bytes``
    (None or 0: unknown, the desktop default)."""
    if not max_ssbo_bytes or max_ssbo_bytes <= 0:
        return DEFAULT_SPLAT_BUDGET
    return int(min(MAX_DEFAULT_BUDGET, max(MIN_DEFAULT_BUDGET, max_ssbo_bytes // SH3_BYTES_PER_SPLAT)))


@dataclass(frozen=True)
class StreamProgress:
    """Where the streaming stands for the newest camera."""

    loaded_files: int  # files of the plan that are loaded
    needed_files: int  # files the camera's selection needs (the whole plan)
    planned_files: int  # of those, the files that fit the cache (the rest are not fetched)
    loaded_bytes: int  # decoded bytes held
    cache_limit: int
    fetching: int  # files being fetched now
    failed: int  # files that could not be read (skipped)
    fetched_files: int  # files fetched since the start (re-fetches after eviction included)
    evicted_files: int
    shown_splats: int
    shown_per_level: tuple[int, ...]  # leaves shown at each level
    leaves: int

    @property
    def complete(self) -> bool:
        """Every file the plan can hold is loaded (nothing left to fetch for this camera)."""
        return self.fetching == 0 and self.loaded_files >= self.planned_files


def _camera_key(camera: Camera) -> bytes:
    return np.asarray(camera.camera_to_world, np.float64).tobytes() + np.array(
        [camera.width, camera.height, camera.fov_y, camera.near], np.float64).tobytes()  # fmt: skip


class LodStreamer:
    """Streams ``scene`` for the newest camera (see the module docstring). ``on_change`` is
    called (on a loader thread) whenever a file has arrived or failed: the view re-selects."""

    def __init__(self, scene: LodScene, *, budget: int | None = DEFAULT_SPLAT_BUDGET,
                 cache_bytes: int = DEFAULT_STREAM_CACHE_BYTES, workers: int = DEFAULT_WORKERS,
                 refine: str = "steps", on_change: Callable[[], None] | None = None) -> None:  # fmt: skip
        if cache_bytes < 0 or workers < 1:
            raise HoloscopeError("the stream cache must not be negative and it needs a loader")
        if refine not in REFINE_MODES:
            raise HoloscopeError(f"refine must be one of {', '.join(REFINE_MODES)}, not {refine!r}")
        self.refine = refine
        self.scene = scene
        # The streamer keeps files by its own priorities: the scene's cache keeps none of them.
        scene.cache.limit = 0
        scene.cache.clear()
        self._budget = check_budget(budget)
        self.cache_limit = int(cache_bytes)
        self._on_change = on_change
        self._cond = threading.Condition()
        self._build_lock = threading.Lock()
        self._camera: Camera | None = None
        self._camera_key: bytes | None = None
        self._selection: tuple[bytes, int | None, LodSelection] | None = None
        self._plan: list[int] = []  # every file the selection needs, in fetch order
        self._cut = 0  # the plan's first files that fit the cache
        self._plan_stamp: tuple | None = None
        self._files: OrderedDict[int, SplatCloud] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._sizes: dict[int, int] = {}  # decoded bytes of every file seen (kept after eviction)
        self._inflight: set[int] = set()
        self._failed: dict[int, str] = {}  # files that cannot be read (damaged, missing): skipped
        self._retry: dict[int, tuple[float, int]] = {}  # network failures: (when to try again, tries)
        self._environment_done = scene.environment is None  # taken by a loader (or none to fetch)
        self._environment: SplatCloud | None = None  # once it has arrived
        self._shown_environment = False
        self._files_changed = 0  # counts arrivals and evictions (the plan's memory cut depends on them)
        nleaves = len(scene.leaves)
        self._shown = np.full(nleaves, -1, np.int64)  # the level each leaf shows, -1: none
        self._shown_cloud: SplatCloud | None = None
        self._version = 0
        self.fetched = 0
        self.evicted = 0
        self.fetch_log: list[int] = []  # files in the order they arrived (for tests and statistics)
        self.warning: str | None = None
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"holoscope-lod-load-{i}", daemon=True)
                         for i in range(workers)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    # What a viewer calls ---------------------------------------------------------------
    @property
    def budget(self) -> int | None:
        return self._budget

    def set_budget(self, budget: int | None) -> None:
        """A new splat budget (None: full detail); the next selection and plan use it."""
        budget = check_budget(budget)
        with self._cond:
            self._budget = budget
            self._cond.notify_all()

    def set_camera(self, camera: Camera) -> None:
        """Plan fetches for ``camera`` from now on (the newest camera wins)."""
        key = _camera_key(camera)
        with self._cond:
            if key != self._camera_key:
                self._camera, self._camera_key = camera, key
                self._cond.notify_all()

    def cloud_for_view(self, camera: Camera) -> tuple[SplatCloud | None, int]:
        """What to draw for ``camera`` and its version (None, 0 until a coarsest level has
        arrived). The same shown set gives the same cloud object and version."""
        self.set_camera(camera)
        with self._build_lock:
            with self._cond:
                selection = self._select_locked(camera)
                levels = self._display_levels_locked(selection)
                environment = self._environment
                if np.array_equal(levels, self._shown) and self._shown_environment == (environment is not None):
                    return self._shown_cloud, self._version
                runs = self._runs_locked(levels)
                files = {file: self._files[file] for file, _, _ in runs}
                for file in files:
                    self._files.move_to_end(file)
            cloud = _build(runs, files, environment)
            with self._cond:
                for file, loaded in files.items():  # evicted meanwhile (a loader's turn): shown files stay
                    if file not in self._files:
                        self._files[file] = loaded
                        self._bytes += loaded.nbytes
                self._shown = levels
                self._shown_environment = environment is not None
                self._shown_cloud = cloud
                self._version += 1
                self._evict_locked()  # what only the old shown set held may go now
                self._cond.notify_all()
                return cloud, self._version

    @property
    def version(self) -> int:
        return self._version

    @property
    def shown_levels(self) -> np.ndarray:
        """The level each leaf shows now (-1: not drawn yet); a copy."""
        with self._cond:
            return self._shown.copy()

    def progress(self) -> StreamProgress:
        with self._cond:
            self._update_plan_locked()
            plan = self._plan
            shown = self._shown
            per_level = tuple(int(np.count_nonzero(shown == level)) for level in range(self.scene.levels))
            cloud = self._shown_cloud
            return StreamProgress(
                loaded_files=sum(1 for f in plan if f in self._files), needed_files=len(plan),
                planned_files=sum(1 for f in plan[: self._cut] if f not in self._failed),
                loaded_bytes=self._bytes, cache_limit=self.cache_limit, fetching=len(self._inflight),
                failed=len(self._failed), fetched_files=self.fetched, evicted_files=self.evicted,
                shown_splats=0 if cloud is None else cloud.count, shown_per_level=per_level,
                leaves=len(shown))  # fmt: skip

    def loaded_files(self) -> list[int]:
        with self._cond:
            return list(self._files)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is left to fetch for the newest camera (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if (self._camera is not None and not self._inflight and self._next_file_locked() is None
                        and not any(f in self._retry for f in self._plan[: self._cut])):  # fmt: skip
                    return True  # (a file to try again after a network failure is still to come)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(min(left, 0.1))

    def close(self, wait: bool = True) -> None:
        """Stop fetching. ``wait=False`` returns at once (a viewer closing a scene must not wait
        for a slow download): a loader inside a fetch ends when it returns, keeping nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(timeout=30)

    def __enter__(self) -> "LodStreamer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Selection -------------------------------------------------------------------------
    def _select_locked(self, camera: Camera) -> LodSelection:
        key = _camera_key(camera)
        cached = self._selection
        if cached is not None and cached[0] == key and cached[1] == self._budget:
            return cached[2]
        selection = self.scene.select(camera, self._budget)
        self._selection = (key, self._budget, selection)
        return selection

    def _usable(self, leaf: int, level: int, wanted: set[int]) -> bool:
        file, _, count = self.scene.leaves[leaf].lods[level]
        return count == 0 or (file in self._files and file in wanted)

    def _display_levels_locked(self, selection: LodSelection) -> np.ndarray:
        """Per leaf: the finest level at or above the wanted one whose file is loaded and kept by
        the plan; else what it shows now (its file is kept while shown); else nothing (-1)."""
        scene = self.scene
        self._update_plan_locked()
        wanted = set(self._plan[: self._cut])
        out = np.full(len(scene.leaves), -1, np.int64)
        for leaf in range(len(scene.leaves)):
            target = int(selection.levels[leaf])
            # As LodScene.cloud_for: level 0 is exactly the finest input, coarser ones fall back.
            want = (0 if scene.available[leaf, 0] else None) if target == 0 else scene.shown_level(leaf, target)
            if want is None:
                continue
            for level in np.flatnonzero(scene.available[leaf, want:]) + want:
                if self._usable(leaf, int(level), wanted):
                    out[leaf] = int(level)
                    break
            else:
                if self._shown[leaf] >= 0:
                    out[leaf] = self._shown[leaf]
        return out

    def _runs_locked(self, levels: np.ndarray) -> list[tuple[int, int, int]]:
        runs = []
        for leaf, level in enumerate(levels):
            if level >= 0:
                run = self.scene.leaves[leaf].lods[int(level)]
                if run[2]:
                    runs.append(run)
        return runs

    def _shown_files_locked(self) -> set[int]:
        return {file for file, _, _ in self._runs_locked(self._shown)}

    # Planning --------------------------------------------------------------------------
    def _bytes_per_splat(self) -> float:
        count = sum(c.count for c in self._files.values())
        return sum(c.nbytes for c in self._files.values()) / count if count else _GUESS_BYTES_PER_SPLAT

    def _update_plan_locked(self) -> None:
        """The plan for the newest camera and budget, cut where it stops fitting the cache."""
        if self._camera is None:
            self._plan, self._cut = [], 0
            return
        stamp = (self._camera_key, self._budget, self._files_changed, self._version)
        if stamp == self._plan_stamp:
            return
        self._plan_stamp = stamp
        selection = self._select_locked(self._camera)
        plan = self.scene.fetch_plan(selection) if self.refine == "steps" else self._direct_plan(selection)
        per_splat = self._bytes_per_splat()
        # Memory holds the shown files (kept) and the plan's first files, as many as fit.
        shown = self._shown_files_locked()
        used = sum(self._files[f].nbytes for f in shown if f in self._files)
        cut = 0
        for file in plan:
            if file not in shown:
                known = self._sizes.get(file)
                used += known if known is not None else int(self.scene.file_needs[file] * per_splat)
            if used > self.cache_limit:
                break
            cut += 1
        self._plan, self._cut = plan, cut

    def _direct_plan(self, selection: LodSelection) -> list[int]:
        """The fetch order without the intermediate levels: each leaf's coarsest, then the level
        it shows for the selection."""
        scene = self.scene
        plan: dict[int, None] = {}
        for leaf, level in fetch_order(selection.levels, selection.need, scene.available):
            target = int(selection.levels[leaf])
            shown = 0 if target == 0 else scene.shown_level(leaf, target)
            coarsest = int(np.flatnonzero(scene.available[leaf])[-1])
            if level in (coarsest, shown):
                plan.setdefault(scene.leaves[leaf].lods[level][0], None)
        return list(plan)

    def _next_file_locked(self) -> int | None:
        if not self._environment_done:
            return -1  # the environment (background splats) comes before any chunk
        self._update_plan_locked()
        now = time.monotonic()
        for file in self._plan[: self._cut]:
            if file not in self._files and file not in self._inflight and file not in self._failed:
                if file in self._retry and self._retry[file][0] > now:
                    continue  # a network failure a moment ago: its turn comes again later
                return file
        return None

    def _wait_locked(self) -> None:
        """Sleep until notified, or until a file that failed on the network may be tried again."""
        pending = [when for when, _ in self._retry.values()]
        self._cond.wait(None if not pending else max(0.05, min(pending) - time.monotonic()))

    def _evict_locked(self) -> None:
        if self._bytes <= self.cache_limit:
            return
        self._update_plan_locked()
        # Files in the plan's cut go only when estimates for files not seen before were low (their
        # real sizes now cut the plan earlier, so they are not fetched again); shown files never.
        shown = self._shown_files_locked()
        rank = {file: i for i, file in enumerate(self._plan)}
        unneeded = len(self._plan)
        while self._bytes > self.cache_limit:
            # Least needed first (not in the plan, then latest in it), then least recently used.
            candidates = [(-rank.get(f, unneeded), age, f) for age, f in enumerate(self._files) if f not in shown]
            if not candidates:
                return
            _, _, victim = min(candidates)
            self._bytes -= self._files.pop(victim).nbytes
            self.evicted += 1
            self._files_changed += 1

    # Loader threads --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (file := self._next_file_locked()) is None:
                    self._wait_locked()
                if self._closed:
                    return
                self._inflight.add(file)
                if file == -1:
                    self._environment_done = True  # taken by this loader (the others move on)
            cloud, error, transient = None, None, False
            try:
                if file == -1:
                    cloud = self.scene.environment_cloud()
                else:
                    cloud = self.scene.load_file(file)
            except NetworkError as exc:  # the link, not the file: tried again with back-off
                error, transient = str(exc), True
            except HoloscopeError as exc:
                error = str(exc)
            except Exception as exc:  # a loader must survive anything a file does to the reader
                log.exception("loading a LOD chunk file failed")
                error = f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._inflight.discard(file)
                if self._closed:
                    return
                if error is not None:
                    name = "the environment" if file == -1 else self.scene.filenames[file]
                    self.warning = f"{name}: {error}"
                    if file != -1 and transient:
                        tries = self._retry.get(file, (0.0, 0))[1] + 1
                        self._retry[file] = (time.monotonic() + min(RETRY_FAILED_S * 2 ** (tries - 1), 60.0), tries)
                    elif file != -1:
                        self._failed[file] = error
                    log.warning("LOD scene %s: %s", self.scene.name, self.warning)
                elif file == -1:
                    self._environment = cloud
                elif cloud is not None:
                    self._retry.pop(file, None)
                    self._files[file] = cloud
                    self._sizes[file] = cloud.nbytes
                    self._bytes += cloud.nbytes
                    self.fetched += 1
                    self.fetch_log.append(file)
                    self._files_changed += 1
                    self._evict_locked()
                self._cond.notify_all()
            if self._on_change is not None:
                try:
                    self._on_change()
                except Exception:  # the viewer's callback must not kill the loader
                    log.exception("LOD on_change callback failed")


def _build(runs: list[tuple[int, int, int]], files: dict[int, SplatCloud], environment: SplatCloud | None
           ) -> SplatCloud | None:  # fmt: skip
    """The splats of ``runs`` laid out as :meth:`LodScene.cloud_for` lays them out (by file,
    then run order), so a complete stream equals the scene read whole."""
    by_file: dict[int, list[np.ndarray]] = {}
    for file, offset, count in runs:
        by_file.setdefault(file, []).append(np.arange(offset, offset + count))
    parts = []
    for file in sorted(by_file):
        cloud = files[file]
        index = np.concatenate(by_file[file])
        whole = len(index) == cloud.count and bool((index == np.arange(cloud.count)).all())
        parts.append(cloud if whole else cloud.subset(index))
    if environment is not None:
        parts.append(environment)
    if not parts:
        return None
    return concat_clouds(parts)
