"""Splat sequences in the desktop app, on a real X server: the wave flipbook dropped as a
folder, played, paused, stepped; a damaged frame warns and playback goes on."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from holoscope.codecs.formats.ply_inria import write_ply
from holoscope.core import budget
from holoscope.core.player import PlayerState
from tests.codecs.helpers import blob_cloud

from .conftest import wait_for_media
from .test_window import drag, drop


def screenshot_array(win, qtbot) -> np.ndarray:
    vp = win.viewport
    frames = vp.frames_painted
    vp.update()
    qtbot.waitUntil(lambda: vp.frames_painted > frames, timeout=10000)
    shot = vp.screenshot()
    img = shot.convertToFormat(shot.Format.Format_RGB888)
    rows = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return rows[:, : img.width() * 3].copy()  # a copy: the QImage's memory goes with it


def test_wave_folder_drop_plays_and_steps(window, qtbot, samples_dir):
    wave = samples_dir / "splat-sequences" / "wave"
    if not wave.is_dir():
        pytest.skip("the wave sample sequence is not in the samples folder")
    drop(window, [wave])
    wait_for_media(qtbot, window, "wave")
    view = window.viewport.view
    assert window.media.frame_count == 200 and window.timeline.isVisible()
    assert getattr(view, "interactive", False) and view.timed
    assert window.up_box.currentText() == "-y"  # PlayCanvas frames: sky towards -Y
    first = screenshot_array(window, qtbot)
    assert first.std() > 3, "the first frame is drawn"

    qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # play
    assert window.clock.playing
    qtbot.waitUntil(lambda: window.current_index >= 10 and view.shown >= 10, timeout=20000)
    qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # pause
    assert not window.clock.playing
    moved = screenshot_array(window, qtbot)
    assert np.abs(moved.astype(int) - first.astype(int)).mean() > 0.1, "the wave moved while playing"

    at = window.current_index
    qtbot.keyClick(window.viewport, Qt.Key.Key_Right)  # step
    qtbot.waitUntil(lambda: view.shown == at + 1, timeout=10000)
    window.seek_frame(150)
    qtbot.waitUntil(lambda: view.shown == 150, timeout=10000)
    assert view.stats()["splats"] == 4225 and view.stats()["frame"] == "151 / 200"

    # Orbiting while paused re-sorts the same frame: the camera stays the user's.
    still = screenshot_array(window, qtbot)
    c2w = window.viewport.rig.camera_to_world().copy()
    c = QPointF(window.viewport.width() / 2, window.viewport.height() / 2)
    drag(window.viewport, c, c + QPointF(150, 40))
    assert not np.allclose(window.viewport.rig.camera_to_world(), c2w), "the drag orbits the camera"
    turned = screenshot_array(window, qtbot)
    assert view.shown == 150 and np.abs(turned.astype(int) - still.astype(int)).mean() > 0.5


def test_damaged_frame_warns_and_playback_goes_on(window, qtbot, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(8):
        write_ply(blob_cloud(i * 0.1, 200 + 10 * i, i), folder / f"f{i + 1}.ply")
    (folder / "f4.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nend_header\n")
    window.open_paths([str(folder)])
    wait_for_media(qtbot, window, "seq")
    view = window.viewport.view
    for _ in range(5):
        qtbot.keyClick(window.viewport, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: view.shown == 5, timeout=10000)
    assert view.warning is not None and "f4.ply" in view.warning
    assert "f4.ply" in window.info_rows().get("Warning", "")
    assert window.player is view.player
    assert view.player.prefetcher.max_bytes == min(512 << 20, budget.current().limit // 4)
    screenshot_array(window, qtbot)  # a paint uploads the frame taken
    assert view.cloud.count == 250  # frame 6 is on screen again after the damaged one


def test_a_damaged_frame_shows_the_failed_frame_state(window, qtbot, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(6):
        write_ply(blob_cloud(i * 0.1, 200 + 10 * i, i), folder / f"f{i + 1}.ply")
    (folder / "f3.ply").write_bytes(b"not a ply at all")
    window.open_paths([str(folder)])
    wait_for_media(qtbot, window, "seq")
    player = window.player
    window.seek_frame(1)
    qtbot.waitUntil(lambda: player.index == 1, timeout=10000)
    window.seek_frame(2)  # the damaged one: never handed out, frame 2 stays on screen
    qtbot.waitUntil(lambda: player.index == 2, timeout=10000)
    assert player.state is PlayerState.FAILED_FRAME and "f3.ply" in player.warning
    assert window.viewport.view.shown == 1
    window.refresh_info()
    assert "failed frame" in window.status_label.text()
    assert window.info_rows()["Playback"] == "failed frame" and "f3.ply" in window.info_rows()["Warning"]
    window.step(1)
    qtbot.waitUntil(lambda: player.index == 3, timeout=10000)
    assert player.state is PlayerState.PAUSED and window.viewport.view.shown == 3
