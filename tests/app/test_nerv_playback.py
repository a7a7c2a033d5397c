"""A .nerv neural video in the desktop app: shown by the video view, with its timeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import wait_for_media

torch = pytest.importorskip("torch")

from tests.nerv_data import write_tiny_nerv  # noqa: E402

FRAMES, FPS = 12, 24


@pytest.fixture(scope="module")
def tiny_nerv(tmp_path_factory) -> Path:
    """A small random HNeRV decoder and embeddings written as a .nerv (fast to decode)."""
    return write_tiny_nerv(tmp_path_factory.mktemp("nerv") / "tiny.nerv", frames=FRAMES, fps=FPS)


def test_a_nerv_stream_opens_in_the_video_view_and_plays(window, qtbot, tiny_nerv):
    window.open_paths([str(tiny_nerv)])
    wait_for_media(qtbot, window, "tiny.nerv")
    assert type(window.viewport.view).__name__ == "VideoView"
    qtbot.waitUntil(lambda: window.viewport.view.first_frame_shown, timeout=10000)
    window.toggle_play()
    qtbot.waitUntil(lambda: window.current_index >= 4, timeout=10000)
    window.pause()
    assert window.info_rows()["Resolution"] == "48x32"


def test_the_menu_opens_the_demo_neural_video(window, qtbot):
    from holoscope.assets.demo_nerv import DEMO_NERV_FRAMES, DEMO_NERV_SIZE, demo_nerv_path

    file_menu = window.menuBar().actions()[0].menu()
    assert window.demo_nerv_action in file_menu.actions()
    with qtbot.capture_exceptions() as raised:
        window.demo_nerv_action.trigger()
        wait_for_media(qtbot, window, "demo.nerv")
        assert window.media_path == str(demo_nerv_path()) and window.media.frame_count == DEMO_NERV_FRAMES
        assert window.info_rows()["Resolution"] == "{}x{}".format(*DEMO_NERV_SIZE)
        qtbot.waitUntil(lambda: window.viewport.view.first_frame_shown, timeout=10000)
        window.toggle_play()
        qtbot.waitUntil(lambda: window.current_index >= 3, timeout=20000)
        window.pause()
    assert not raised
