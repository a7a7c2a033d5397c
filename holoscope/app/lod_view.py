"""LodView: a streamed level-of-detail scene (lod-meta.json, local or a URL) in the viewport.

Nothing is read whole: a :class:`~holoscope.render.lod_stream.LodStreamer` fetches chunk files
on its own threads, coarsest level first, then finer ones by need for the newest camera under the
splat budget. A latest-wins job re-selects what to show (when a file arrives, when the camera
stops, and every ``RESELECT_S`` while it moves) and sorts it for the view; ``paint`` uploads a new
shown set together with its order in one go, so a leaf's level swaps in one upload and nothing
that was on screen disappears. The GUI thread never waits for the network or a sort.

The splat budget is set from View > Splat Budget (remembered), else it follows the GPU
(:func:`~holoscope.render.lod_stream.default_budget` of GL_MAX_SHADER_STORAGE_BLOCK_SIZE).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import moderngl
import numpy as np
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QInputDialog, QWidget

from holoscope.app.info_panel import human_bytes
from holoscope.app.views import pick_splat
from holoscope.core.camera import Camera
from holoscope.core.camera_rig import Bounds
from holoscope.core.frames import SplatCloud
from holoscope.core.jobs import JobContext, LatestJob
from holoscope.core.media import Media
from holoscope.render.gl.splat_renderer import GlSplatRenderer, RenderSettings
from holoscope.render.lod_stream import LodStreamer, default_budget
from holoscope.render.sort import sort_back_to_front

log = logging.getLogger("holoscope")

RESELECT_S = 0.2  # while the camera moves, the shown set is re-selected at most this often
BUDGET_KEY = "lod/splat_budget"  # QSettings: the user's budget, 0 or absent: the GPU's default
BUDGET_RANGE = (1_000, 100_000_000)
GL_MAX_SHADER_STORAGE_BLOCK_SIZE = 0x90DE


def max_ssbo_bytes(ctx: moderngl.Context) -> int | None:
    """GL_MAX_SHADER_STORAGE_BLOCK_SIZE of the current context, or None if it cannot be asked.
    moderngl's info table is empty for Qt's context, so GL is asked directly then."""
    value = ctx.info.get("GL_MAX_SHADER_STORAGE_BLOCK_SIZE") if ctx is not None else None
    if value:
        return int(value)
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("GL") or "libGL.so.1")
        out = ctypes.c_int64(0)
        lib.glGetInteger64v(GL_MAX_SHADER_STORAGE_BLOCK_SIZE, ctypes.byref(out))
        return int(out.value) or None
    except (OSError, AttributeError):
        return None


def remembered_budget() -> int | None:
    value = QSettings().value(BUDGET_KEY, 0)
    try:
        budget = int(value)
    except (TypeError, ValueError):
        return None
    return budget if BUDGET_RANGE[0] <= budget <= BUDGET_RANGE[1] else None


@dataclass(frozen=True)
class Prepared:
    """What the job hands to ``paint``: the shown set (its version) and its order for a view."""

    version: int
    cloud: SplatCloud | None
    order: np.ndarray | None


class LodView:
    interactive = True
    timed = False
    progressive = True  # the picture refines (finer chunks arrive) while the view is still
    exportable = True  # the full-detail scene, as `holoscope render` renders it (export_cloud)

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        self.media = media
        self.scene = media.lod_scene  # type: ignore[attr-defined]
        # File > Export Video renders the full-detail scene (what `holoscope render` renders),
        # not the shown set of the moment; read on the export's thread (it may download).
        self.export_cloud: Callable[[], SplatCloud] = lambda: media.frame(0)
        self._repaint = request_repaint
        self.gpu_default_budget = default_budget(max_ssbo_bytes(ctx))
        self._dirty = True  # a file arrived or the budget changed: re-select at the next paint
        # "direct": the coarsest level, then each chunk's selected level straight away. Measured
        # (tests/bench/bench_lod_streaming.py, 1M splats at 12.5 MB/s): full detail in 1.04x the
        # whole-scene load against 1.94x for every intermediate level, half the bytes.
        self.streamer = LodStreamer(self.scene, budget=remembered_budget() or self.gpu_default_budget,
                                    refine="direct", on_change=self._changed)  # fmt: skip
        self.renderer = GlSplatRenderer(ctx)
        self.cloud: SplatCloud | None = None  # what is uploaded
        self.version = 0
        self.uploads = 0  # shown sets uploaded (each a whole swap)
        self._job_state: tuple[int, SplatCloud | None] = (0, None)  # the job thread's own
        self.job: LatestJob[tuple[Camera, bool], Prepared] = LatestJob(
            self._prepare, name="holoscope-lod-view", on_result=lambda _r: request_repaint())
        self._submitted: bytes | None = None
        self._last_select = 0.0
        self._drawn_id = 0
        # When the camera stops between two throttled selections, select once more for it.
        self._settle = QTimer(singleShot=True, interval=int(RESELECT_S * 1000), timeout=self._changed)

    # Background --------------------------------------------------------------------------
    def _changed(self) -> None:
        self._dirty = True
        self._repaint()

    def _prepare(self, request: tuple[Camera, bool], ctx: JobContext) -> Prepared:
        camera, reselect = request
        version, cloud = self._job_state
        if reselect or cloud is None:
            cloud, version = self.streamer.cloud_for_view(camera)
            self._job_state = (version, cloud)
        ctx.check()
        order = None if cloud is None else sort_back_to_front(cloud.means, camera.view_matrix)
        return Prepared(version, cloud, order)

    # What the viewport asks --------------------------------------------------------------
    def bounds(self) -> Bounds:
        lo, hi = self.scene.bounds
        return Bounds(np.asarray(lo, np.float64), np.asarray(hi, np.float64))

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        key = camera.view_matrix.tobytes() + bytes(f"{camera.width}x{camera.height}:{camera.fov_y}", "ascii")
        moved = key != self._submitted
        if moved or self._dirty:
            now = time.monotonic()
            reselect = self._dirty or now - self._last_select >= RESELECT_S
            if reselect:
                self._dirty = False
                self._last_select = now
            else:
                self._settle.start()  # the camera may stop before the next selection is due
            self._submitted = key
            self.job.submit((camera, reselect))
        result = self.job.latest()  # re-raises a failure here, on the GUI thread
        if result is not None and result.request_id != self._drawn_id:
            ready = result.value
            if ready.cloud is not None:
                if ready.version != self.version:  # a new shown set: uploaded with its order, at once
                    self.renderer.upload(ready.cloud)
                    self.cloud, self.version = ready.cloud, ready.version
                    self.uploads += 1
                self.renderer.set_order(ready.order)
            self._drawn_id = result.request_id
        self.renderer.draw(camera, settings)

    def pick(self, camera: Camera, x: float, y: float, radius_px: float = 6.0) -> np.ndarray | None:
        return None if self.cloud is None else pick_splat(self.cloud, camera, x, y, radius_px)

    # Budget ----------------------------------------------------------------------------
    @property
    def splat_budget(self) -> int | None:
        return self.streamer.budget

    def set_splat_budget(self, budget: int | None) -> None:
        """A new budget (None: the GPU's default); the next selection and fetches follow it."""
        self.streamer.set_budget(budget or self.gpu_default_budget)
        self._changed()

    # Info --------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        p = self.streamer.progress()
        scene, cloud = self.scene, self.cloud
        per_level = ", ".join(f"L{level}: {n}" for level, n in enumerate(p.shown_per_level) if n)
        fetching = f", {p.fetching} fetching" if p.fetching else ""
        failed = f", {p.failed} failed" if p.failed else ""
        budget = self.streamer.budget
        default = " (GPU default)" if budget == self.gpu_default_budget else ""
        details = {
            "LOD scene": f"{scene.levels} levels, {len(scene.leaves)} chunks in {len(scene.filenames)} files, "
                         f"{scene.counts[0]:,} splats at full detail",
            "LOD budget": f"{budget:,} splats{default}" if budget else "none (full detail)",
            "LOD shown": f"{p.shown_splats:,} splats; chunks per level {per_level or 'none yet'}",
            "LOD files": f"{p.loaded_files}/{p.needed_files} loaded{fetching}{failed}; "
                         f"{human_bytes(p.loaded_bytes)} of {human_bytes(p.cache_limit)}",
        }  # fmt: skip
        out: dict[str, Any] = {"details": details, "cpu_bytes": p.loaded_bytes}
        if cloud is not None:
            out.update(splats=cloud.count, sh_degree=cloud.sh_degree,
                       gpu_bytes=cloud.count * (16 + 32 + 4 + 48) + cloud.sh.nbytes)  # fmt: skip
        if self.streamer.warning:
            out["warning"] = self.streamer.warning
        return out

    def release(self) -> None:
        self._settle.stop()
        self.job.close()
        self.streamer.close(wait=False)  # a download in flight must not hold up the GUI
        self.renderer.release()


# The View menu's dialog -------------------------------------------------------------------------


def ask_splat_budget(window: QWidget, view: Any) -> int | None:
    """Ask for a splat budget (0: the GPU's default), apply it to ``view`` and remember it."""
    current = int(view.splat_budget or view.gpu_default_budget)
    value, ok = QInputDialog.getInt(window, "Splat budget",
                                    f"Most splats drawn at once (0: this GPU's default, {view.gpu_default_budget:,}):",
                                    current, 0, BUDGET_RANGE[1], 100_000)  # fmt: skip
    if not ok:
        return None
    return apply_splat_budget(view, value)


def apply_splat_budget(view: Any, value: int) -> int:
    """Set and remember ``value`` (0: back to the GPU's default); returns the budget in force."""
    value = 0 if value <= 0 else max(BUDGET_RANGE[0], min(BUDGET_RANGE[1], int(value)))
    QSettings().setValue(BUDGET_KEY, value)
    view.set_splat_budget(value or None)
    return int(view.splat_budget)


__all__ = ["LodView", "ask_splat_budget", "apply_splat_budget", "max_ssbo_bytes", "default_budget"]
