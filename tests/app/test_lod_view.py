"""The app streams a lod-meta.json scene (app/lod_view.py): the coarsest level appears first, finer
chunks replace it as they arrive, and the splat budget (View > Splat Budget) changes what is shown."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage

from holoscope.codecs.formats.lod import LodScene, read_lod
from holoscope.codecs.formats.lod_write import write_lod
from tests.codecs.test_lod import spread_cloud

from .conftest import wait_for_media


def drawn_pixels(window) -> int:
    """Pixels of the viewport that differ from the background (splats drawn)."""
    image = window.viewport.screenshot().convertToFormat(QImage.Format.Format_RGB888)
    rgb = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgb = rgb[:, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)
    background = np.round(np.array(window.viewport.settings.background) * 255)
    return int(np.count_nonzero(np.abs(rgb - background).max(axis=2) > 8))


@pytest.fixture(scope="module")
def lod_scene_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("app-lod") / "scene" / "lod-meta.json"
    write_lod(spread_cloud(6000, seed=8), out, chunk_count=1, chunk_min=1, chunk_extent=16.0, iterations=1)
    return out


@pytest.fixture(autouse=True)
def gpu_default_budget():
    """Every test starts from the GPU's default budget (the choice is remembered in QSettings)."""
    QSettings().remove("lod/splat_budget")
    yield
    QSettings().remove("lod/splat_budget")


@pytest.fixture
def gate(monkeypatch):
    """Holds back every chunk file but the coarse ones (``gate.open``) until ``gate.release``."""

    class Gate:
        open: set[int] = set()
        released = threading.Event()
        asked: list[int] = []

    load = LodScene.load_file

    def gated(scene, file):
        Gate.asked.append(file)
        if file not in Gate.open:
            assert Gate.released.wait(60)
        return load(scene, file)

    monkeypatch.setattr(LodScene, "load_file", gated)
    yield Gate
    Gate.released.set()


def test_coarse_level_first_then_refined(qtbot, window, lod_scene_path, gate):
    scene = read_lod(lod_scene_path)
    coarsest = scene.levels - 1
    gate.open = set(scene.files_for(coarsest))
    window.open_path(str(lod_scene_path))
    wait_for_media(qtbot, window, "lod-meta.json")
    view = window.viewport.view
    assert type(view).__name__ == "LodView" and window.budget_action.isEnabled()
    qtbot.waitUntil(lambda: view.cloud is not None, timeout=20000)
    assert view.cloud.count == scene.counts[coarsest]  # every chunk at its coarsest level, nothing finer
    assert (view.streamer.shown_levels == coarsest).all()
    assert set(gate.asked) - gate.open <= set(gate.asked[-2:])  # finer files asked for, held back
    painted = window.viewport.frames_painted
    assert drawn_pixels(window) > 100  # the coarse level is on screen
    window.refresh_info()
    rows = window.info_rows()
    assert "LOD files" in rows and f"{len(scene.filenames)} files" in rows["LOD scene"]
    assert rows["Splats"].startswith(f"{scene.counts[coarsest]:,} splats")

    gate.released.set()
    qtbot.waitUntil(lambda: view.streamer.progress().complete and view.cloud.count > scene.counts[coarsest] and
                    view.version == view.streamer.version, timeout=60000)  # fmt: skip
    shown = view.streamer.shown_levels
    assert (shown >= 0).all() and shown.min() < coarsest  # finer chunks replaced coarse ones
    assert view.cloud.count == sum(scene.leaf_counts[i, level] for i, level in enumerate(shown))
    assert view.uploads <= view.version  # one upload per shown set, never more
    assert window.viewport.frames_painted > painted
    window.refresh_info()
    rows = window.info_rows()
    loaded, needed = rows["LOD files"].split(" ")[0].split("/")
    assert loaded == needed


def test_budget_changes_the_splats_shown(qtbot, window, lod_scene_path):
    from holoscope.app.lod_view import apply_splat_budget

    scene = read_lod(lod_scene_path)
    window.open_path(str(lod_scene_path))
    wait_for_media(qtbot, window, "lod-meta.json")
    view = window.viewport.view
    default = view.splat_budget
    assert default == view.gpu_default_budget >= 250_000  # above this scene: everything at full detail
    qtbot.waitUntil(lambda: view.cloud is not None and view.cloud.count == scene.counts[0], timeout=60000)

    small = scene.counts[0] // 4
    assert apply_splat_budget(view, small) == small == view.streamer.budget
    qtbot.waitUntil(lambda: view.cloud.count <= small, timeout=60000)
    fewer = view.cloud.count
    assert scene.counts[-1] <= fewer < scene.counts[0]
    window.refresh_info()
    assert f"{small:,} splats" in window.info_rows()["LOD budget"]
    assert window.info_rows()["Splats"].startswith(f"{fewer:,} splats")
    assert QSettings().value("lod/splat_budget") in (small, str(small))  # remembered

    assert apply_splat_budget(view, 0) == default  # 0: back to the GPU's default, full detail again
    qtbot.waitUntil(lambda: view.cloud.count == scene.counts[0], timeout=60000)



def test_export_renders_the_full_detail_scene(qtbot, window, lod_scene_path, tmp_path):
    from holoscope.app.export import ExportRequest
    from tests.video_reference import probe_video

    scene = read_lod(lod_scene_path)
    window.open_path(str(lod_scene_path))
    wait_for_media(qtbot, window, "lod-meta.json")
    assert window.export_action.isEnabled()
    window.viewport.view.streamer.set_budget(scene.counts[-1])  # the view shows the coarsest level ...
    out = tmp_path / "lod.mp4"
    job = window.start_export(ExportRequest(str(out), 64, 48, 24.0, "h264", "orbit", frames=3))
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=120000) as blocker:
        pass
    assert blocker.args[0] is True, blocker.args
    assert probe_video(out)["frames"] == 3
    assert callable(job.cloud) and job.cloud().count == scene.counts[0]  # ... the export all of it


def expected_levels(scene, camera, budget) -> np.ndarray:
    """What each leaf shows once everything it needs has arrived: its selected level (or the next
    coarser one it has)."""
    selection = scene.select(camera, budget)
    return np.array([0 if level == 0 else scene.shown_level(i, int(level)) for i, level in enumerate(selection.levels)])


def test_moving_the_camera_reselects(qtbot, window, lod_scene_path):
    from holoscope.app.lod_view import apply_splat_budget
    from holoscope.core.camera import look_at

    scene = read_lod(lod_scene_path)
    window.open_path(str(lod_scene_path))
    wait_for_media(qtbot, window, "lod-meta.json")
    view, viewport = window.viewport.view, window.viewport
    budget = apply_splat_budget(view, scene.counts[0] // 3)

    def settled() -> bool:
        cam = viewport.current_camera()
        return (view.streamer.progress().complete and view.version == view.streamer.version
                and np.array_equal(view.streamer.shown_levels, expected_levels(scene, cam, budget)))  # fmt: skip

    for x in (-28.0, 28.0):  # close to one end of the long axis, then the other
        for step in range(1, 6):  # a move in steps, as a drag makes it
            eye = np.array([x * step / 5, 0.0, 30.0 - 4.0 * step])
            viewport.rig.set_camera_to_world(look_at(eye, np.array([x * step / 5, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])))
            viewport.update()
            qtbot.wait(30)
        qtbot.waitUntil(settled, timeout=30000)  # re-selected for where the camera stopped
        shown = view.streamer.shown_levels
        centres = (scene.bound_min[:, 0] + scene.bound_max[:, 0]) / 2
        near, far = int(np.argmin(np.abs(centres - x))), int(np.argmax(np.abs(centres - x)))
        assert shown[near] < shown[far]  # detail where the camera is
        assert view.cloud.count <= budget


# By URL: nginx on loopback through the fault proxy (the streaming tests' test bed) -----------------

from tests.net.conftest import fault_proxy, http_cache, nginx, proxy, streams_dir  # noqa: E402

_TESTBED = (fault_proxy, http_cache, nginx, proxy, streams_dir)  # fixtures used by name below


def test_url_streams_coarse_first(qtbot, window, lod_scene_path, proxy, streams_dir):
    import shutil

    folder = streams_dir / "app-lod"
    if not folder.exists():
        shutil.copytree(lod_scene_path.parent, folder)
    scene = read_lod(lod_scene_path)
    coarse = {scene.filenames[f].split("/")[0] for f in scene.files_for(scene.levels - 1)}
    # The first request of each loader for a finer file waits 1.5 s: the coarse level shows alone first.
    proxy.delay(rf"/app-lod/[0-{scene.levels - 2}]_[0-9]+/", headers=1.5, times=2)
    window.open_path(proxy.url("streams/app-lod/lod-meta.json"))
    qtbot.waitUntil(lambda: type(window.viewport.view).__name__ == "LodView", timeout=20000)
    view = window.viewport.view
    qtbot.waitUntil(lambda: view.cloud is not None, timeout=20000)
    assert view.cloud.count == scene.counts[-1]
    qtbot.waitUntil(lambda: view.streamer.progress().complete and view.cloud.count == scene.counts[0] and
                    view.version == view.streamer.version, timeout=60000)  # fmt: skip
    served = {r.path.split("/app-lod/")[1].split("/")[0] for r in proxy.requests("/app-lod/.+/")}
    # the app refines directly: the coarsest level, then level 0, no level in between
    finest = {scene.filenames[f].split("/")[0] for f in scene.files_for(0)}
    assert served == coarse | finest


def test_the_menu_opens_the_demo_lod_scene(qtbot, window):
    from holoscope.assets.demo_lod import demo_lod_path

    file_menu = window.menuBar().actions()[0].menu()
    assert window.demo_lod_action in file_menu.actions()
    window.demo_lod_action.trigger()
    wait_for_media(qtbot, window, "lod-meta.json")
    view = window.viewport.view
    assert type(view).__name__ == "LodView" and window.media_path == str(demo_lod_path())
    qtbot.waitUntil(lambda: view.cloud is not None and view.cloud.count > 0, timeout=60000)
    assert np.isfinite(view.cloud.means).all()
