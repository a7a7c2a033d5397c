"""Gaussian video (.gsv files and segment folders, V^3 stream folders) in the desktop app, on a
real X server: opened by drop, command line and menu, played, paused, sought, stepped; a
damaged group warns, is skipped, and playback goes on with the next group."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from holoscope.app import recent
from holoscope.app.sequence_view import GaussianVideoView
from holoscope.app.view_table import Capabilities
from holoscope.assets.demo_video import demo_video_frames
from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.encode import encode_gsvideo
from holoscope.codecs.gsvideo.v3 import write_v3
from holoscope.codecs.inputs import open_input
from holoscope.core.player import PlayerState

from .conftest import wait_for_media
from .test_sequence_playback import screenshot_array
from .test_window import drop

FRAMES, GOF, FPS = 12, 4, 30


def splats_in(index: int) -> int:
    return 3000 - 500 * (index // GOF)  # every group its own count: a screen tells the group


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A small .gsv, its segment folder, a V^3 folder of the same clip, and a .gsv whose
    group 2 (frames 4..7) fails its checksum."""
    folder = tmp_path_factory.mktemp("gsvideo")
    frames = [c.subset(np.arange(splats_in(i))) for i, c in enumerate(demo_video_frames(FRAMES, 3000))]
    gsv, segments = folder / "clip.gsv", folder / "clip-segments"
    encode_gsvideo(frames, gsv, fps=FPS, preset="low", gof=GOF, segments=segments)
    write_v3(frames, folder / "clip-v3", group_size=GOF, fps=FPS)
    data = bytearray(gsv.read_bytes())
    header, _ = container.read_header(bytes(data), len(data), str(gsv))
    group = header.groups[1]
    assert (group.start, group.frames) == (4, 4)
    data[group.offset + group.length // 2] ^= 0xFF
    damaged = folder / "damaged.gsv"
    damaged.write_bytes(bytes(data))
    return {"gsv": gsv, "segments": segments, "v3": folder / "clip-v3", "damaged": damaged}


def decoded(path: Path, index: int):
    media = open_input(path)
    try:
        return media.frame(index)
    finally:
        media.release()


def recorded_presents(view) -> list[int]:
    """Indices of the frames the window hands to ``view`` from now on."""
    seen: list[int] = []
    present = view.present

    def record(frame):
        seen.append(frame.index)
        present(frame)

    view.present = record
    return seen


@pytest.mark.parametrize("kind", ["gsv", "segments", "v3"])
def test_gaussian_video_drops_plays_seeks_and_steps(window, qtbot, clips, kind):
    path = clips[kind]
    with qtbot.capture_exceptions() as raised:
        drop(window, [path])
        wait_for_media(qtbot, window, path.name)
        view = window.viewport.view
        assert type(view) is GaussianVideoView
        assert window.capabilities == Capabilities(interactive=True, timed=True)  # as a splat sequence
        assert window.timeline.isVisible() and window.timeline.slider.maximum() == FRAMES - 1
        assert window.media.frame_count == FRAMES and window.player is view.player
        assert window.clock is view.player.clock  # the window's transport drives the view's player
        assert recent.recent_files()[0] == str(path.resolve())
        first = screenshot_array(window, qtbot)
        assert first.std() > 3, "the first frame is drawn"
        assert view.cloud.count == splats_in(0)

        qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # play
        assert window.clock.playing
        qtbot.waitUntil(lambda: view.shown >= 3, timeout=20000)
        qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # pause
        assert not window.clock.playing
        moved = screenshot_array(window, qtbot)
        assert np.abs(moved.astype(int) - first.astype(int)).mean() > 0.1, "the knot moved while playing"

        window.seek_frame(9)  # into group 3: decoded from its start
        qtbot.waitUntil(lambda: view.shown == 9, timeout=10000)
        screenshot_array(window, qtbot)  # a paint uploads the frame taken
        assert view.cloud.count == splats_in(9) and view.stats()["frame"] == f"10 / {FRAMES}"
        np.testing.assert_array_equal(view.cloud.means, decoded(path, 9).means)
        window.step(-1)
        qtbot.waitUntil(lambda: view.shown == 8, timeout=10000)
        qtbot.keyClick(window.viewport, Qt.Key.Key_Left)  # back across a group boundary
        qtbot.waitUntil(lambda: view.shown == 7, timeout=10000)
        screenshot_array(window, qtbot)
        assert view.cloud.count == splats_in(7)
        np.testing.assert_array_equal(view.cloud.means, decoded(path, 7).means)
        assert window.player.warning is None and window.error_box is None
    assert not raised


def test_the_info_panel_describes_the_video(window, qtbot, clips):
    window.open_paths([str(clips["gsv"])])
    wait_for_media(qtbot, window, "clip.gsv")
    qtbot.keyClick(window, Qt.Key.Key_I)
    assert window.info_panel.isVisible()
    rows = window.info_panel.rows
    assert rows["Format"] == "gsv" and rows["Frames"] == f"{FRAMES} at {FPS} fps"
    assert rows["Groups"] == "3 of 4 frames" and rows["Preset"] == "low (h264)"
    assert rows["Splats per frame"] == "2,000 to 3,000" and rows["Splats"].startswith("3,000 splats")
    assert rows["Decode path"].startswith("software") and rows["Bytes per frame"].endswith("KB")
    assert "Mb/s" in rows["Bitrate"]

    window.open_paths([str(clips["v3"])])
    wait_for_media(qtbot, window, "clip-v3")
    window.refresh_info()
    rows = window.info_panel.rows
    assert rows["Format"] == "v3" and rows["Groups"] == "3 of 4 frames" and rows["Codec"].startswith("h264")
    assert "Preset" not in rows and rows["Decode path"].startswith("software")


def test_a_damaged_group_warns_and_playback_goes_on_at_the_next(window, qtbot, clips, caplog):
    window.timeline.loop_box.setChecked(False)  # play to the end once
    with qtbot.capture_exceptions() as raised, caplog.at_level(logging.WARNING, logger="holoscope"):
        window.open_paths([str(clips["damaged"])])
        wait_for_media(qtbot, window, "damaged.gsv")
        view = window.viewport.view
        shown = recorded_presents(view)
        qtbot.keyClick(window.viewport, Qt.Key.Key_Space)  # play through
        qtbot.waitUntil(lambda: window.player.state is PlayerState.ENDED, timeout=20000)
        # (Under load late frames are dropped, failed ones too: which frames show varies.)
        assert shown and shown[-1] == FRAMES - 1 == view.shown, "playback went on to the end"
        assert not set(shown) & {4, 5, 6, 7}, "no frame of the damaged group is shown"
        assert any("group 2" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
        screenshot_array(window, qtbot)
        assert view.cloud.count == splats_in(FRAMES - 1)

        # Frame by frame into the damaged group: the failed-frame state, named in the status
        # bar and the info panel, with the previous picture kept.
        window.seek_frame(3)
        qtbot.waitUntil(lambda: view.shown == 3, timeout=10000)
        qtbot.keyClick(window.viewport, Qt.Key.Key_Right)
        qtbot.waitUntil(lambda: window.player.index == 4, timeout=10000)
        assert window.player.state is PlayerState.FAILED_FRAME and view.shown == 3
        assert "group 2" in window.statusBar().currentMessage()
        warning = window.info_rows()["Warning"]
        assert warning.startswith("frame 5 could not be read") and "group 2" in warning and "checksum" in warning
        window.refresh_info()
        assert "failed frame" in window.status_label.text()
        qtbot.keyClick(window.viewport, Qt.Key.Key_Right)
        qtbot.waitUntil(lambda: window.player.index == 5, timeout=10000)
        assert window.player.state is PlayerState.FAILED_FRAME and view.shown == 3
        window.seek_frame(8)  # group 3 plays again
        qtbot.waitUntil(lambda: view.shown == 8, timeout=10000)
        assert window.player.state is PlayerState.PAUSED and window.error_box is None
        screenshot_array(window, qtbot)
        assert view.cloud.count == splats_in(8)
    assert not raised


def test_a_first_group_that_fails_opens_at_the_next(window, qtbot, clips, tmp_path):
    data = bytearray(clips["gsv"].read_bytes())
    header, _ = container.read_header(bytes(data), len(data), "clip.gsv")
    data[header.groups[0].offset + 100] ^= 0xFF
    path = tmp_path / "bad-start.gsv"
    path.write_bytes(bytes(data))
    window.open_paths([str(path)])
    wait_for_media(qtbot, window, path.name)
    assert window.viewport.view.shown == 4 and window.viewport.view.cloud.count == splats_in(4)


def test_the_command_line_opens_gaussian_video_files_and_folders(qtbot, clips, monkeypatch):
    import holoscope.app.main as app_main
    from holoscope.cli import main

    names = [str(clips["gsv"]), str(clips["v3"]), str(clips["segments"])]
    handed: list[list[str]] = []
    monkeypatch.setattr(app_main, "run_app", lambda paths: handed.append(paths) or 0)
    assert main(names) == 0, "run_gui accepts a .gsv, a V^3 folder and a segment folder"
    assert handed == [names]

    win = app_main.create_window(handed[0])
    qtbot.addWidget(win)
    win.show()
    try:
        wait_for_media(qtbot, win, "clip.gsv")
        win.next_item()
        wait_for_media(qtbot, win, "clip-v3")
        assert type(win.viewport.view) is GaussianVideoView and win.timeline.slider.maximum() == FRAMES - 1
    finally:
        win.close()


def test_the_menu_opens_the_demo_video(window, qtbot):
    from holoscope.assets.demo_video import DEMO_VIDEO_VERSION, demo_video_path

    file_menu = window.menuBar().actions()[0].menu()
    assert window.demo_video_action in file_menu.actions()
    with qtbot.capture_exceptions() as raised:
        window.demo_video_action.trigger()  # encoded on the loader thread on first use
        wait_for_media(qtbot, window, f"demo-video-v{DEMO_VIDEO_VERSION}.gsv", timeout=60000)
        view = window.viewport.view
        assert type(view) is GaussianVideoView and window.media.frame_count == 60
        assert window.media_path == str(demo_video_path()) and window.up_box.currentText() == "+y"
        assert view.cloud.count == 20_000 and window.timeline.isVisible()
        assert screenshot_array(window, qtbot).std() > 3
        window.toggle_play()
        qtbot.waitUntil(lambda: view.shown >= 2, timeout=20000)

        from holoscope.assets.demo import DEMO_VERSION

        window.open_demo(video=False)  # File > Open Demo Scene: from playing video to a still scene
        wait_for_media(qtbot, window, f"demo-v{DEMO_VERSION}.ply")
        assert window.player is None and not window.timeline.isVisible()
    assert not raised
