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
