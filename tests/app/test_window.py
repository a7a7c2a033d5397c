"""The desktop app on a real X server: opening, dropping, navigating, screenshots, export."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.video_reference import probe_video, read_image, read_video_frames
from holoscope.render.export import SplatFrameRenderer

from .conftest import wait_for_media


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def drop(win, paths: list[Path]) -> None:
    """A drag entering the window, then the drop: the sequence Qt delivers for a real drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = QPoint(win.width() // 2, win.height() // 2)
    with warnings.catch_warnings():  # QDragEnterEvent's only constructor takes a QPoint
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted(), "the window accepts file drags"
    event = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, event)


def drag(widget, start: QPointF, end: QPointF, button=Qt.MouseButton.LeftButton, mods=Qt.KeyboardModifier.NoModifier, steps: int = 5) -> None:
    QApplication.sendEvent(widget, QMouseEvent(QMouseEvent.Type.MouseButtonPress, start, widget.mapToGlobal(start), button, button, mods))
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        QApplication.sendEvent(widget, QMouseEvent(QMouseEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton, button, mods))
    QApplication.sendEvent(widget, QMouseEvent(QMouseEvent.Type.MouseButtonRelease, end, widget.mapToGlobal(end), button, Qt.MouseButton.NoButton, mods))


def wheel(widget, notches: int) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    QApplication.sendEvent(widget, event)


def test_startup_shows_the_demo(qtbot):
    from holoscope.app.main import create_window

    win = create_window([])
    qtbot.addWidget(win)
    win.show()
    from holoscope.assets.demo import DEMO_VERSION

    wait_for_media(qtbot, win, f"demo-v{DEMO_VERSION}.ply")
    assert "demo" in win.windowTitle()
    assert win.up_box.currentText() == "-y", "the demo is a PLY in COLMAP axes: upright with -Y up"
    img = win.viewport.screenshot()
    assert img.width() > 100 and img.height() > 100
    pixels = np.array([img.pixelColor(x, y).value() for x in range(0, img.width(), 37) for y in range(0, img.height(), 37)])
    assert pixels.std() > 10, "the demo scene is visible, not a blank viewport"
    win.close()


def test_drop_opens_a_real_sample_and_unsupported_drop_keeps_it(window, qtbot, samples_dir, tmp_path):
    lod4 = samples_dir / "splats" / "lod4.ply"
    drop(window, [lod4])
    wait_for_media(qtbot, window, "lod4.ply")
    assert "lod4.ply" in window.windowTitle()
    view_before = window.viewport.view
    bad = tmp_path / "notes.txt"
    bad.write_text("not a scene")
    drop(window, [bad])
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=10000)
    text = window.error_box.text() + window.error_box.informativeText()
    assert "notes.txt" in text and "Supported formats" in text and "ply" in text
    assert not window.error_box.isModal()
    assert window.media_path == str(lod4) and window.viewport.view is view_before, "the previous media stays"


def test_dropping_several_files_queues_a_playlist(window, qtbot, samples_dir):
    files = [samples_dir / "splats" / "lod5.ply", samples_dir / "splats" / "lod4.ply"]
    drop(window, files)
    wait_for_media(qtbot, window, "lod5.ply")
    assert "[1/2]" in window.windowTitle()
    window.next_item()
    wait_for_media(qtbot, window, "lod4.ply")
    window.previous_item()
    wait_for_media(qtbot, window, "lod5.ply")


def test_orbit_pan_zoom_and_reset_with_real_events(window, qtbot, samples_dir):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    vp = window.viewport
    rig = vp.rig
    start_c2w = rig.camera_to_world().copy()
    c = QPointF(vp.width() / 2, vp.height() / 2)
    drag(vp, c, c + QPointF(120, 40))
    orbited = rig.camera_to_world().copy()
    assert not np.allclose(orbited, start_c2w)
    assert np.linalg.norm(rig.eye() - rig.orbit.target) == pytest.approx(rig.orbit.distance)
    d0 = rig.orbit.distance
    wheel(vp, 3)
    assert rig.orbit.distance < d0
    t0 = rig.orbit.target.copy()
    drag(vp, c, c + QPointF(60, 0), button=Qt.MouseButton.MiddleButton)
    assert not np.allclose(rig.orbit.target, t0)
    frames = vp.frames_painted
    qtbot.waitUntil(lambda: vp.frames_painted > frames, timeout=10000)
    qtbot.keyClick(vp, Qt.Key.Key_R)
    np.testing.assert_allclose(rig.camera_to_world(), start_c2w, atol=1e-9)


def test_fly_mode_moves_forward_while_w_is_held(window, qtbot, samples_dir):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    vp = window.viewport
    vp.setFocus()
    eye = vp.rig.eye()
    forward = -vp.rig.camera_to_world()[:3, 2]
    qtbot.keyPress(vp, Qt.Key.Key_W)
    qtbot.wait(300)
    qtbot.keyRelease(vp, Qt.Key.Key_W)
    moved = vp.rig.eye() - eye
    assert np.linalg.norm(moved) > 0
    np.testing.assert_allclose(moved / np.linalg.norm(moved), forward, atol=1e-6)


def test_double_click_focuses_on_the_splat_under_the_cursor(window, qtbot, samples_dir):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    vp = window.viewport
    cam = vp.current_camera()
    cloud = vp.view.cloud
    target = cloud.means[int(np.argmax(cloud.opacities))].astype(np.float64)
    pts = cam.view_matrix @ np.append(target, 1.0)
    ratio = vp.devicePixelRatioF()
    x = (cam.focal * pts[0] / -pts[2] + cam.width / 2) / ratio
    y = (-cam.focal * pts[1] / -pts[2] + cam.height / 2) / ratio
    eye = vp.rig.eye()
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=QPoint(round(x), round(y)))
    np.testing.assert_allclose(vp.rig.eye(), eye, atol=1e-6)
    look = -vp.rig.camera_to_world()[:3, 2]
    to_target = vp.rig.orbit.target - eye
    np.testing.assert_allclose(look, to_target / np.linalg.norm(to_target), atol=1e-6)
    # The focus point is a real splat near the clicked pixel.
    assert np.min(np.linalg.norm(cloud.means - vp.rig.orbit.target, axis=1)) < 1e-6


def test_screenshot_matches_a_headless_render_of_the_same_camera(window, qtbot, samples_dir, tmp_path):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    window.set_up_axis("-y")
    vp = window.viewport
    frames = vp.frames_painted
    qtbot.waitUntil(lambda: vp.frames_painted > frames, timeout=10000)
    qtbot.wait(200)  # let the newest sort land and repaint
    shot = tmp_path / "shot.png"
    window.save_screenshot(shot)
    gui = read_image(shot)
    camera = vp.current_camera()
    assert gui.shape == (camera.height, camera.width, 3)
    renderer = SplatFrameRenderer(vp.view.cloud)
    try:
        rgb = renderer.render(camera, vp.settings)
    finally:
        renderer.release()
    headless = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    assert headless.std() > 5
    assert psnr(gui, headless) >= 30.0


def test_up_axis_is_remembered_per_file(window, qtbot, samples_dir):
    lod4, lod5 = samples_dir / "splats" / "lod4.ply", samples_dir / "splats" / "lod5.ply"
    window.open_paths([str(lod4)])
    wait_for_media(qtbot, window, "lod4.ply")
    window.up_box.setCurrentText("-y")
    window.open_paths([str(lod5)])
    wait_for_media(qtbot, window, "lod5.ply")
    window.up_box.setCurrentText("+z")
    window.open_paths([str(lod4)])
    wait_for_media(qtbot, window, "lod4.ply")
    assert window.up_box.currentText() == "-y" and window.viewport.rig.up == "-y"
    from holoscope.app import recent

    assert str(lod4.resolve()) in recent.recent_files()


def test_files_open_upright_and_the_users_choice_wins(window, qtbot, samples_dir, tmp_path):
    """Issue 8: a PLY opens with -Y up (its format's default), an SPZ with +Y (the default is
    per file, not whatever the box showed last), and a choice made for a file wins on reopening."""
    import shutil

    from holoscope.app import recent

    scene = shutil.copy(samples_dir / "splats" / "lod4.ply", tmp_path / "scene.ply")
    other = shutil.copy(samples_dir / "splats" / "lod4.ply", tmp_path / "other.ply")
    spz = shutil.copy(samples_dir / "splats" / "minimal-v3.spz", tmp_path / "minimal.spz")
    assert recent.remembered_up(str(scene)) is None

    def shows(up: str) -> bool:
        camera_up = window.viewport.current_camera().camera_to_world[:3, 1]
        axis = {"+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1)}[up]
        return window.up_box.currentText() == up and window.viewport.rig.up == up and camera_up @ axis > 0.8

    window.open_paths([str(scene)])
    wait_for_media(qtbot, window, "scene.ply")
    assert shows("-y")
    assert recent.remembered_up(str(scene)) is None, "a default is not a choice"
    window.up_box.setCurrentText("+z")  # the user's choice
    assert shows("+z") and recent.remembered_up(str(scene)) == "+z"

    window.open_paths([str(spz)])
    wait_for_media(qtbot, window, "minimal.spz")
    assert shows("+y")
    window.open_paths([str(other)])
    wait_for_media(qtbot, window, "other.ply")
    assert shows("-y")
    recent.remember_up(str(other), "sideways")  # a damaged setting is no choice
    window.open_paths([str(scene)])
    wait_for_media(qtbot, window, "scene.ply")
    assert shows("+z")
    window.open_paths([str(other)])
    wait_for_media(qtbot, window, "other.ply")
    assert shows("-y")


def test_view_settings_change_the_picture(window, qtbot, samples_dir):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    vp = window.viewport

    def grab() -> np.ndarray:
        frames = vp.frames_painted
        vp.update()
        qtbot.waitUntil(lambda: vp.frames_painted > frames, timeout=10000)
        img = vp.screenshot().convertToFormat(QImage.Format.Format_RGB888)
        rows = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
        return rows[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()

    base = grab()
    window.set_background((1.0, 1.0, 1.0))
    assert grab()[0, 0].tolist() == [255, 255, 255]
    window.set_background((0.0, 0.0, 0.0))
    window.scale_slider.setValue(40)
    small = grab()
    assert psnr(small, base) < 40
    window.fov_box.setValue(80)
    assert vp.current_camera().fov_y == 80


def test_info_panel_toggles_and_reports(window, qtbot, samples_dir):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    assert not window.info_panel.isVisible()
    window.viewport.setFocus()
    qtbot.keyClick(window.viewport, Qt.Key.Key_I)
    assert window.info_panel.isVisible()
    window.refresh_info()
    rows = window.info_panel.rows
    assert rows["Format"] == "ply" and rows["Reader"] == "holoscope.ply_inria"
    assert rows["Splats"].startswith("489 splats")
    memory = rows["Memory (CPU)"]  # the whole process: GB after heavier tests in the same session
    assert "ms/frame" in rows["Render"] and ("MB" in memory or "GB" in memory) and rows["Renderer"].startswith("OpenGL on")


def test_export_runs_in_the_background_and_decodes_back(window, qtbot, samples_dir, tmp_path):
    from holoscope.app.export import ExportRequest

    window.open_paths([str(samples_dir / "splats" / "lod5.ply")])
    wait_for_media(qtbot, window, "lod5.ply")
    out = tmp_path / "export.mp4"
    progress: list[tuple[int, int]] = []
    job = window.start_export(ExportRequest(str(out), 96, 64, 24.0, "h264", "orbit", frames=12))
    assert job is not None
    job.progress.connect(lambda d, t: progress.append((d, t)))
    with qtbot.waitSignal(job.finished, timeout=120000) as blocker:
        pass
    assert blocker.args[0] is True, blocker.args
    info = probe_video(out)
    assert info["frames"] == 12 and (info["width"], info["height"]) == (96, 64)
    frames = read_video_frames(out)
    assert not np.array_equal(frames[0], frames[6])
    assert progress and progress[-1][0] == progress[-1][1]


def test_cancelled_export_leaves_nothing(window, qtbot, samples_dir, tmp_path):
    from holoscope.app.export import ExportRequest

    window.open_paths([str(samples_dir / "splats" / "lod5.ply")])
    wait_for_media(qtbot, window, "lod5.ply")
    out = tmp_path / "cancelled.mp4"
    job = window.start_export(ExportRequest(str(out), 64, 48, 24.0, "h264", "orbit", frames=2000))
    job.progress.connect(lambda done, total: job.cancel() if done >= 3 else None)
    with qtbot.waitSignal(job.finished, timeout=120000) as blocker:
        pass
    assert blocker.args[0] is False and "cancel" in blocker.args[1].lower()
    assert list(tmp_path.iterdir()) == []


def test_recorded_keyframes_make_a_camera_path_render_can_use(window, qtbot, samples_dir, tmp_path):
    from holoscope.cli import main

    lod5 = samples_dir / "splats" / "lod5.ply"
    window.open_paths([str(lod5)])
    wait_for_media(qtbot, window, "lod5.ply")
    vp = window.viewport
    vp.setFocus()
    qtbot.keyClick(vp, Qt.Key.Key_K)
    c = QPointF(vp.width() / 2, vp.height() / 2)
    drag(vp, c, c + QPointF(150, 0))
    qtbot.keyClick(vp, Qt.Key.Key_K)
    assert len(window.keyframes) == 2
    path = tmp_path / "camera_path.json"
    n = window.save_camera_path(path, seconds_per_keyframe=0.5, fps=8)
    assert n == 5
    out = tmp_path / "path.mkv"
    assert main(["render", str(lod5), "-o", str(out), "--camera-path", str(path), "--size", "64x48", "--codec", "ffv1"]) == 0
    assert probe_video(out)["frames"] == 5
