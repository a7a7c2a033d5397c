"""A .nerv neural video in the desktop app: shown by the video view, with its timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import wait_for_media

torch = pytest.importorskip("torch")

FRAMES, FPS = 12, 24


@pytest.fixture(scope="module")
def tiny_nerv(tmp_path_factory) -> Path:
    """A small random HNeRV decoder and embeddings written as a .nerv (fast to decode)."""
    from holoscope.codecs.nerv import stream
    from holoscope.codecs.nerv.config import NervConfig
    from holoscope.codecs.nerv.neural.model import build_decoder, official_names

    config = NervConfig(family="hnerv", height=32, width=48, frame_count=FRAMES, fps=float(FPS), fc_dim=12, fc_h=1,
                        fc_w=1, strides=(4, 2, 2), kernels=(1, 3, 5), channels=(10, 8, 6), head_kernel=3,
                        embed_channels=16, embed_h=2, embed_w=3)  # fmt: skip
    torch.manual_seed(0)
    own = dict(build_decoder(config).named_parameters())
    weights = {official: stream.quantise(own[mine].detach().numpy(), 8) for official, mine in official_names(config).items()}
    embedding = stream.quantise(np.random.default_rng(0).standard_normal(config.embedding_shape()), 6, axes=(1,))
    path = tmp_path_factory.mktemp("nerv") / "tiny.nerv"
    stream.write_nerv(path, config.to_dict(), weights, embedding, fps=FPS, chunk_frames=5)
    return path


def test_a_nerv_stream_opens_in_the_video_view_and_plays(window, qtbot, tiny_nerv):
    window.open_paths([str(tiny_nerv)])
    wait_for_media(qtbot, window, "tiny.nerv")
    assert type(window.viewport.view).__name__ == "VideoView"
    qtbot.waitUntil(lambda: window.viewport.view.first_frame_shown, timeout=10000)
    window.toggle_play()
    qtbot.waitUntil(lambda: window.current_index >= 4, timeout=10000)
    window.pause()
    assert window.info_rows()["Resolution"] == "48x32"
