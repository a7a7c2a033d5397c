"""Plain video in the desktop app: timeline, play/pause, seek, step, on a video made here."""

from __future__ import annotations

import dataclasses
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
    qtbot.waitUntil(lambda: window.viewport.view.first_frame_shown, timeout=5000)
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


def test_opening_a_video_does_not_block_the_gui_thread_for_the_first_frame(window, qtbot, numbered_video):
    """The view is created at once; frame 0 appears through a repaint request once decoded."""
    import threading
    import time

    from holoscope.app.video_view import VideoView
    from holoscope.codecs.video.decode import open_video

    real = open_video(numbered_video)
    release = threading.Event()

    def slow_frames(start: int):
        release.wait(10)  # a decoder stuck on its first picture (network share, huge keyframe)
        yield from real.frames_from(start)

    media = dataclasses.replace(real, iter_from=slow_frames)
    repaints: list[float] = []
    t0 = time.monotonic()
    view = window.viewport.with_context(lambda ctx: VideoView(ctx, media, lambda: repaints.append(time.monotonic())))
    try:
        assert time.monotonic() - t0 < 1.0, "creating the view waited for a frame"
        assert not view.first_frame_shown and view.shown == 0
        window.viewport.set_view(view)
        window.viewport.update()
        qtbot.wait(200)
        assert not repaints and not view.first_frame_shown  # still nothing decoded: background
        release.set()
        qtbot.waitUntil(lambda: bool(repaints), timeout=5000)
        window.viewport.update()
        qtbot.waitUntil(lambda: view.first_frame_shown, timeout=5000)
        assert shown_index(window, qtbot) == 0
    finally:
        release.set()
        window.viewport.set_view(None)
        real.release()
    assert not view._first_thread.is_alive()


def test_a_first_frame_that_fails_to_decode_is_reported_on_the_gui_thread(window, qtbot, numbered_video):
    from holoscope.app.video_view import VideoView
    from holoscope.codecs.video.decode import open_video
    from holoscope.core.errors import CorruptStream

    real = open_video(numbered_video)

    def broken(start: int):
        raise CorruptStream("no picture", path=real.path)
        yield  # a generator, like the decoder's

    media = dataclasses.replace(real, iter_from=broken)
    repaints: list[int] = []
    view = window.viewport.with_context(lambda ctx: VideoView(ctx, media, lambda: repaints.append(1)))
    try:
        qtbot.waitUntil(lambda: bool(repaints), timeout=5000)
        with pytest.raises(CorruptStream, match="no picture"):
            view.show_frame(0)
        assert not view.first_frame_shown
    finally:
        window.viewport.with_context(lambda _ctx: view.release())
        real.release()


def test_a_10_bit_video_plays_at_its_true_levels(window, qtbot, tmp_path):
    # Lossless 10-bit greys whose codes are not multiples of 4, chosen so that the true level
    # lies within 0.2 of an 8-bit value while the code reduced to 8 bits (code >> 2) lies 0.75
    # or more away from it: a one-level error if anything dropped the low bits. Limited range:
    # the 8-bit output is (code / 4 - 16) * 255 / 219.
    path = tmp_path / "ten.mkv"
    codes = [239, 435, 747]  # Y codes; chroma neutral (512)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        stream.codec_context.color_range, stream.codec_context.colorspace = 1, 1
        for i, code in enumerate(codes):
            frame = av.VideoFrame(64, 48, "yuv420p10le")
            for plane, value in zip(frame.planes, (code, 512, 512)):
                np.frombuffer(plane, np.uint16)[:] = value
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    window.open_paths([str(path)])
    wait_for_media(qtbot, window, "ten.mkv")
    qtbot.waitUntil(lambda: window.viewport.view.first_frame_shown, timeout=5000)
    for i, code in enumerate(codes):
        if i:
            qtbot.keyClick(window.viewport, Qt.Key.Key_Right)
            qtbot.waitUntil(lambda: window.viewport.view.shown == i, timeout=5000)
        vp = window.viewport
        frames = vp.frames_painted
        vp.update()
        qtbot.waitUntil(lambda: vp.frames_painted > frames, timeout=10000)
        img = vp.screenshot()
        colour = img.pixelColor(img.width() // 2, img.height() // 2)
        expected = (code / 4 - 16) * 255 / 219
        for channel in (colour.red(), colour.green(), colour.blue()):
            assert abs(channel - expected) < 0.5, (i, channel, expected)


def test_window_playback_goes_through_the_player(window, qtbot, numbered_video):
    """One core Player per opened timed medium: the window's transport, timer and status all
    go through it, and its states follow play, pause and the end of a non-looping video."""
    from holoscope.app.video_view import QUEUE_FRAMES
    from holoscope.core.player import Player, PlayerState, read_ahead_bytes

    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    player = window.player
    assert isinstance(player, Player) and player is window.viewport.view.player
    assert window.clock is player.clock
    assert player.prefetcher.capacity == QUEUE_FRAMES and player.prefetcher.max_bytes == read_ahead_bytes()
    qtbot.waitUntil(lambda: player.index == 0, timeout=5000)  # the timer polled frame 0
    qtbot.waitUntil(lambda: not window._play_timer.isActive(), timeout=5000)  # settled: polling stops
    assert player.state is PlayerState.PAUSED
    window.refresh_info()
    assert window.info_rows()["Playback"] == "paused" and "paused" in window.status_label.text()

    window.timeline.loop_box.setChecked(False)
    assert not player.loop
    window.timeline.speed_box.setCurrentIndex(window.timeline.speed_box.findData(2.0))
    assert player.clock.rate == 2.0
    window.toggle_play()
    assert player.state in (PlayerState.PLAYING, PlayerState.BUFFERING)
    qtbot.waitUntil(lambda: (player.index or 0) >= 6, timeout=10000)
    window.toggle_play()
    assert player.state is PlayerState.PAUSED
    qtbot.waitUntil(lambda: player.settled, timeout=5000)
    assert window.viewport.view.shown == player.index == window.current_index

    window.seek_frame(FRAMES - 6)
    qtbot.waitUntil(lambda: player.index == FRAMES - 6, timeout=5000)
    window.toggle_play()
    qtbot.waitUntil(lambda: player.state is PlayerState.ENDED, timeout=10000)
    assert player.index == FRAMES - 1 and not window.clock.playing
    window.refresh_info()
    assert window.info_rows()["Playback"] == "ended" and "ended" in window.status_label.text()
    assert shown_index(window, qtbot) == FRAMES - 1

    window.step(-1)
    qtbot.waitUntil(lambda: player.index == FRAMES - 2, timeout=5000)
    assert player.state is PlayerState.PAUSED and shown_index(window, qtbot) == FRAMES - 2
    window.toggle_play()  # from the frame stepped to, and on to the end again
    qtbot.waitUntil(lambda: player.state is PlayerState.ENDED, timeout=10000)
    window.toggle_play()  # play at the end restarts from the first frame
    assert player.clock.playing and window.current_index < 6
    window.pause()


def test_a_decoder_failure_while_playing_stops_playback_with_a_message(window, qtbot, numbered_video):
    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    player = window.player
    qtbot.waitUntil(lambda: player.index == 0, timeout=5000)

    def broken(start: int):
        raise RuntimeError("the disk went away")
        yield

    player.media = dataclasses.replace(player.media, iter_from=broken)
    player.prefetcher.media = player.media
    window.toggle_play()
    assert window.clock.playing
    window.seek_frame(30)  # outside the read-ahead: a new decode run, which fails
    qtbot.waitUntil(lambda: window.playback_error is not None, timeout=5000)
    assert "the disk went away" in window.playback_error and not window.clock.playing
    assert not window._play_timer.isActive()
    assert "the disk went away" in window.info_rows()["Warning"]
