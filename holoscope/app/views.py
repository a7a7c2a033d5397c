"""What the viewport draws: one view object per kind of media, sharing one interface.

A view owns its GL resources and background workers; it never blocks the GUI thread: the
splat view submits depth sorts to a latest-wins worker and draws with the newest finished
order, the video view takes whatever decoded frame is due from a bounded prefetch queue.
Views never call Qt; they call ``request_repaint`` (marshalled to the GUI thread by the
viewport) when new work has landed.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import moderngl
import numpy as np

from holoscope.core.camera import Camera
from holoscope.core.camera_rig import Bounds
from holoscope.core.frames import SplatCloud
from holoscope.core.media import Media
from holoscope.render.gl.splat_renderer import GlSplatRenderer, RenderSettings
from holoscope.render.sort import SortWorker

FIRST_SORT_TIMEOUT = 5.0  # seconds; only the very first frame of a scene waits for its sort


class SplatView:
    """A static splat scene: GL renderer + depth-sort worker."""

    # Capabilities (see app/view_table.py): the window shows controls from these, never from the kind.
    interactive = True  # the camera can move
    timed = False
    progressive = False
    exportable = True  # File > Export Video renders the scene headless

    def __init__(self, ctx: moderngl.Context, media: Media, request_repaint: Callable[[], None]) -> None:
        self.media = media
        self.cloud: SplatCloud = media.frame(0)
        self.renderer = GlSplatRenderer(ctx)
        self.renderer.upload(self.cloud)
        self._request_repaint = request_repaint
        self.sorter = SortWorker(self.cloud.means, near=0.0, on_result=lambda _result: request_repaint())
        self._last_view: np.ndarray | None = None
        self._drawn_id = 0
        self._last_request = 0
        self._shown_order: np.ndarray | None = None  # the order on the GPU (kept across a grow)

    def update_cloud(self, cloud: SplatCloud) -> None:
        """Show ``cloud``, a larger prefix of the scene on screen (a file still downloading),
        with the GL context current. The order drawn so far indexes the splats the view had,
        which the new cloud begins with, so it keeps being drawn until the new sort lands: the
        picture never goes blank and the GUI thread never waits for a sort."""
        self.cloud = cloud
        self.renderer.upload(cloud)
        if self._shown_order is not None:
            self.renderer.set_order(self._shown_order)
        old, self.sorter = self.sorter, SortWorker(cloud.means, near=0.0, on_result=lambda _r: self._request_repaint())
        # Closing waits for a sort in progress: not on the GUI thread.
        threading.Thread(target=old.close, name="holoscope-sort-close", daemon=True).start()
        self._last_view = None  # sort again at the next paint
        self._drawn_id = 0

    def bounds(self) -> Bounds:
        lo, hi = self.cloud.robust_bounds()
        return Bounds(lo, hi)

    def paint(self, camera: Camera, settings: RenderSettings) -> None:
        view = camera.view_matrix
        if self._last_view is None or not np.allclose(view, self._last_view, atol=1e-9):
            self._last_request = self.sorter.submit(view)
            self._last_view = view
        result = self.sorter.latest()
        if result is None and self._shown_order is None:  # wait once so the first frame is not empty
            result = self.sorter.wait(self._last_request, FIRST_SORT_TIMEOUT)
        if result is not None and result.request_id != self._drawn_id:
            self.renderer.set_order(result.order)
            self._drawn_id, self._shown_order = result.request_id, result.order
        self.renderer.draw(camera, settings)

    def pick(self, camera: Camera, x: float, y: float, radius_px: float = 6.0) -> np.ndarray | None:
        return pick_splat(self.cloud, camera, x, y, radius_px)

    def stats(self) -> dict[str, Any]:
        c = self.cloud
        gpu = c.count * (16 + 32 + 4 + 48) + c.sh.nbytes
        return {"splats": c.count, "sh_degree": c.sh_degree, "gpu_bytes": gpu, "cpu_bytes": c.nbytes}

    def release(self) -> None:
        self.sorter.close()
        self.renderer.release()


def pick_splat(cloud: SplatCloud, camera: Camera, x: float, y: float, radius_px: float = 6.0) -> np.ndarray | None:
    """World point of the nearest reasonably opaque splat whose centre is near pixel (x, y)."""
    view = camera.view_matrix
    pts = cloud.means @ view[:3, :3].T + view[:3, 3]
    depth = -pts[:, 2]
    ok = (depth > camera.near) & (cloud.opacities > 0.2)
    if not ok.any():
        return None
    px = camera.focal * pts[:, 0] / np.where(ok, depth, 1) + camera.width / 2
    py = -camera.focal * pts[:, 1] / np.where(ok, depth, 1) + camera.height / 2
    near = ok & ((px - x) ** 2 + (py - y) ** 2 <= radius_px**2)
    if not near.any():
        return None
    idx = np.flatnonzero(near)
    return cloud.means[idx[np.argmin(depth[idx])]].astype(np.float64)


class PlayerView:
    """What every timed view shares: the window's transport talks to ``self.player`` and frames
    reach the view through ``present`` (defined by the view)."""

    player: Any

    def show_frame(self, index: int) -> bool:
        """Seek the player to ``index`` and present it if it has been decoded; True when the
        picture changes. A decode failure is raised here, on the GUI thread."""
        if self.player.due != index:
            self.player.seek(index)
        frame = self.player.poll()
        if frame is None:
            return False
        self.present(frame)  # type: ignore[attr-defined]
        return True
