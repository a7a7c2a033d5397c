"""Plain video in the desktop app: timeline, play/pause, seek, step, on a video made here."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from .conftest import wait_for_media

FRAMES, FPS = 48, 24


def gray_of(index: int) -> int:
    return 40 + 4 * index  # every frame a distinct flat grey, so a screenshot tells the frame


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.options = {"crf": "10", "g": "12"}
        for i in range(FRAMES):
            rgb = np.full((90, 160, 3), gray_of(i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def shown_index(win, qtbot) -> int:
    vp = win.viewport
    frames = vp.frames_painted
    vp.update()
    qtbot.waitUntil(lambda: vp.frames_painted > frames, timeout=10000)
    img = vp.screenshot()
    grey = img.pixelColor(img.width() // 2, img.height() // 2).red()
    return round((grey - 40) / 4)


def test_video_opens_with_a_timeline_and_plays_pauses_seeks_steps(window, qtbot, numbered_video):
    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    assert window.timeline.isVisible()
    assert window.media.frame_count == FRAMES and window.media.fps == FPS
    assert shown_index(window, qtbot) == 0

    qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # play
    assert window.clock.playing
    qtbot.waitUntil(lambda: window.current_index >= 6, timeout=10000)
    qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # pause
    assert not window.clock.playing
    paused_at = window.current_index
    qtbot.wait(300)
    assert window.current_index == paused_at, "paused playback does not advance"
    qtbot.waitUntil(lambda: window.viewport.view.shown == paused_at, timeout=5000)
    assert shown_index(window, qtbot) == paused_at

    # Seek by clicking the timeline at three quarters of its width.
    slider = window.timeline.slider
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=QPoint(round(slider.width() * 0.75), slider.height() // 2))
    target = window.current_index
    assert abs(target - 0.75 * (FRAMES - 1)) <= 3
    qtbot.waitUntil(lambda: window.viewport.view.shown == target, timeout=5000)
    assert shown_index(window, qtbot) == target

    qtbot.keyClick(window.viewport, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.viewport.view.shown == target + 1, timeout=5000)
    assert shown_index(window, qtbot) == target + 1
    qtbot.keyClick(window.viewport, Qt.Key.Key_Comma)
    qtbot.waitUntil(lambda: window.viewport.view.shown == target, timeout=5000)
    assert shown_index(window, qtbot) == target


def test_playback_loops_and_speed_changes_the_clock(window, qtbot, numbered_video):
    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    window.timeline.speed_box.setCurrentIndex(window.timeline.speed_box.findData(4.0))
    assert window.clock.rate == 4.0
    window.seek_frame(FRAMES - 4)
    window.toggle_play()
    qtbot.waitUntil(lambda: window.current_index < FRAMES - 10, timeout=10000)  # wrapped around
    window.pause()
    window.timeline.loop_box.setChecked(False)
    window.seek_frame(FRAMES - 3)
    window.toggle_play()
    qtbot.waitUntil(lambda: not window.clock.playing, timeout=10000)
    assert window.current_index == FRAMES - 1, "without loop, playback stops on the last frame"


def test_video_info_reports_the_decode_path(window, qtbot, numbered_video):
    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    window.toggle_play()
    qtbot.waitUntil(lambda: window.current_index >= 4, timeout=10000)
    window.pause()
    rows = window.info_rows()
    assert rows["Resolution"] == "160x90"
    assert "software" in rows["Decode path"] or "hardware" in rows["Decode path"]
    assert "ms/frame" in rows["Decode"]
    assert not window.export_action.isEnabled(), "export renders splat scenes only"


def test_closing_the_window_stops_every_worker_thread(qtbot, numbered_video, samples_dir):
    import threading

    from holoscope.app.window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_paths([str(samples_dir / "splats" / "lod5.ply")])
    wait_for_media(qtbot, win, "lod5.ply")
    win.open_paths([str(numbered_video)])
    wait_for_media(qtbot, win, "numbered.mp4")
    win.toggle_play()
    qtbot.wait(200)
    win.close()

    def workers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("holoscope-") and t.is_alive()]

    qtbot.waitUntil(lambda: not workers(), timeout=5000)
