"""The built-in demo neural video: the shipped demo.nerv is the demo clip, trained by holoscope's
own encoder, and plays through every command under the name ``demo-nerv``."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from holoscope.assets.demo_nerv import (
    DEMO_NERV,
    DEMO_NERV_FPS,
    DEMO_NERV_FRAMES,
    DEMO_NERV_SIZE,
    demo_nerv_frames,
    demo_nerv_path,
)
from holoscope.cli import main

torch = pytest.importorskip("torch")

from holoscope.codecs.nerv.reader import open_nerv  # noqa: E402

MIN_DEMO_PSNR = 30.0  # the shipped stream decodes to at least this against the clip it was trained on


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * math.log10(255.0**2 / mse)


def test_the_clip_loops_and_moves():
    clip = demo_nerv_frames()
    assert clip.shape == (DEMO_NERV_FRAMES, DEMO_NERV_SIZE[1], DEMO_NERV_SIZE[0], 3) and clip.dtype == np.uint8
    steps = [psnr(clip[i], clip[(i + 1) % len(clip)]) for i in range(len(clip))]
    assert max(steps) - min(steps) < 6, "the step from the last frame back to the first is like any other"
    assert psnr(clip[0], clip[len(clip) // 2]) < 25, "the picture changes over the loop"


def test_the_shipped_stream_is_the_demo_clip():
    assert demo_nerv_path() == DEMO_NERV and DEMO_NERV.stat().st_size < 200_000
    clip = demo_nerv_frames()
    media = open_nerv(DEMO_NERV)
    try:
        assert (media.frame_count, media.fps) == (DEMO_NERV_FRAMES, DEMO_NERV_FPS)
        assert media.info["output_size"] == "{}x{}".format(*DEMO_NERV_SIZE)
        values = [psnr(media.frame(i).planes[0], clip[i]) for i in (0, 17, DEMO_NERV_FRAMES - 1)]
    finally:
        media.release()
    assert min(values) > MIN_DEMO_PSNR, values


def test_render_and_info_take_the_demo_name(tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    assert main(["render", "demo-nerv", "-o", str(out), "--frames", "0:6"]) == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == DEMO_NERV_SIZE
        assert sum(1 for _ in container.decode(stream)) == 6
    capsys.readouterr()
    assert main(["info", "demo-nerv"]) == 0
    assert "hnerv" in capsys.readouterr().out
