"""Output sizes are checked against the memory budget and the GL limits before anything is
allocated, and an interrupted or refused render leaves no file behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from holoscope.core import budget
from holoscope.core.camera import OrbitController
from holoscope.core.camera_path import CameraPath, orbit_path
from holoscope.core.errors import BudgetExceeded, Cancelled, InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.render import export
from holoscope.render.export import check_output_size, output_bytes, render_to_output
from holoscope.render.gl.splat_renderer import OffscreenTarget, check_target_size, max_target_size
from tests.capped import run_capped

W, H = 48, 32


def small_cloud(n: int = 200) -> SplatCloud:
    rng = np.random.default_rng(3)
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return SplatCloud(
        means=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        scales=np.full((n, 3), 0.05, np.float32),
        quats=quats,
        opacities=np.full(n, 0.8, np.float32),
        sh=rng.uniform(0, 1, (n, 1, 3)).astype(np.float32),
    )


def small_path(frames: int = 4, width: int = W, height: int = H) -> CameraPath:
    return orbit_path(OrbitController(np.zeros(3), 4.0), frames, width=width, height=height, fov_y=50.0)


@pytest.fixture
def tight_budget():
    budget.set_limit(256 << 20, "a test")
    yield
    budget.set_limit(None)


class Terminated(KeyboardInterrupt):
    """What the CLI raises on SIGTERM."""


# ---- the size check on its own ----------------------------------------------------------------


def test_budget_refuses_before_any_context_exists(tight_budget) -> None:
    with pytest.raises(BudgetExceeded) as info:
        check_output_size(16384, 16384, "x.mp4")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("x.mp4: rendering 16384x16384 frames (h264) needs about")
    assert "over the 256.0 MB memory budget (from a test; change it with --max-memory" in message
    check_output_size(640, 360, "x.png")  # about 15 MB


@pytest.mark.parametrize(("output", "codec"), [("x.mp4", None), ("x.mkv", "ffv1"), ("x.webm", None),
                                               ("x.png", None), ("f_%04d.png", None)])
def test_estimate_grows_with_the_encoder(output: str, codec: str | None) -> None:
    png = output_bytes(1000, 1000, "x.png")
    assert output_bytes(1000, 1000, output, codec) >= png >= 1000 * 1000 * export.RENDER_BYTES_PER_PIXEL
    assert output_bytes(2000, 1000, output, codec) == 2 * output_bytes(1000, 1000, output, codec)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (16385, 10), (10, -1), (2.5, 10), (True, 10)])
def test_sides_out_of_range(width, height) -> None:
    with pytest.raises(InvalidArgument, match="whole number of pixels within 1..16384"):
        check_output_size(width, height, "x.png")


class FakeContext:
    """A context that reports smaller limits than llvmpipe does."""

    info = {"GL_MAX_TEXTURE_SIZE": 4096, "GL_MAX_RENDERBUFFER_SIZE": 8192, "GL_MAX_VIEWPORT_DIMS": (16384, 2048)}


def test_smallest_gl_limit_applies_per_side() -> None:
    ctx = FakeContext()
    assert max_target_size(ctx) == (4096, 2048)  # type: ignore[arg-type]
    check_output_size(4096, 2048, "x.png", ctx=ctx)  # type: ignore[arg-type]
    for size in ((4097, 8), (8, 2049)):
        with pytest.raises(InvalidArgument, match=r"larger than this GPU supports \(4096x2048"):
            check_output_size(*size, "x.png", ctx=ctx)  # type: ignore[arg-type]


def test_contexts_reporting_no_limits_fall_back_to_the_gl43_minimum() -> None:
    class Silent:
        info = {"GL_MAX_TEXTURE_SIZE": 0}

    assert max_target_size(Silent()) == (16384, 16384)  # type: ignore[arg-type]


# ---- on the real EGL context ------------------------------------------------------------------


@pytest.mark.gl
def test_gl_limits_of_the_real_context(gl_ctx) -> None:
    max_w, max_h = max_target_size(gl_ctx)
    assert max_w >= 16384 and max_h >= 16384  # required by OpenGL 4.3
    assert max_w <= gl_ctx.info["GL_MAX_TEXTURE_SIZE"] and max_w <= gl_ctx.info["GL_MAX_RENDERBUFFER_SIZE"]
    assert (max_w, max_h) <= tuple(gl_ctx.info["GL_MAX_VIEWPORT_DIMS"])
    check_target_size(gl_ctx, max_w, max_h)  # the limit itself is fine
    with pytest.raises(InvalidArgument, match="GL_MAX_TEXTURE_SIZE, GL_MAX_RENDERBUFFER_SIZE, GL_MAX_VIEWPORT_DIMS"):
        check_target_size(gl_ctx, max_w + 1, 8)
    with pytest.raises(InvalidArgument, match="larger than this GPU supports"):
        OffscreenTarget(gl_ctx, 8, max_h + 1)  # refused before any allocation: no GL error follows


@pytest.mark.gl
def test_over_budget_render_touches_nothing(gl_ctx, tmp_path: Path, tight_budget, monkeypatch) -> None:
    def no_context():
        raise AssertionError("a GL context was created for a refused size")

    monkeypatch.setattr(export, "create_headless_context", no_context)
    with pytest.raises(BudgetExceeded):
        render_to_output(small_cloud(), small_path(2, 8192, 8192), tmp_path / "big.mp4")
    assert os.listdir(tmp_path) == []


@pytest.mark.gl
def test_render_refuses_mixed_camera_sizes(gl_ctx, tmp_path: Path) -> None:
    path = small_path(2)
    mixed = CameraPath((path.cameras[0], path.cameras[1].resized(W + 2, H)), path.fps)
    with pytest.raises(InvalidArgument, match="same image size"):
        render_to_output(small_cloud(), mixed, tmp_path / "x.mp4", ctx=gl_ctx)
    assert os.listdir(tmp_path) == []


# ---- nothing partial is left behind -----------------------------------------------------------


@pytest.mark.gl
@pytest.mark.parametrize("name", ["clip.mp4", "still.png", "f_%03d.png"])
@pytest.mark.parametrize("stop", [Terminated, KeyboardInterrupt, RuntimeError])
def test_interrupted_render_leaves_nothing(gl_ctx, tmp_path: Path, name: str, stop: type) -> None:
    def progress(done: int, total: int) -> None:
        if done == 2 or total == 1:
            raise stop("stop")

    with pytest.raises(stop):
        render_to_output(small_cloud(), small_path(4), tmp_path / name, progress=progress, ctx=gl_ctx)
    assert os.listdir(tmp_path) == []


@pytest.mark.gl
@pytest.mark.parametrize("name", ["clip.mp4", "f_%03d.png"])
def test_cancelled_render_leaves_nothing(gl_ctx, tmp_path: Path, name: str) -> None:
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        render_to_output(small_cloud(), small_path(4), tmp_path / name, progress=lambda d, t: cancel.set(),
                         cancel=cancel, ctx=gl_ctx)  # fmt: skip
    assert os.listdir(tmp_path) == []


@pytest.mark.gl
def test_render_to_a_non_utf8_name(gl_ctx, tmp_path: Path) -> None:
    name = os.fsdecode(b"orbit\xff.mp4")
    assert render_to_output(small_cloud(), small_path(3), tmp_path / name, ctx=gl_ctx) == 3
    assert os.listdir(os.fsencode(tmp_path)) == [b"orbit\xff.mp4"]


# ---- in a fresh process: its own context, and the original 16384x16384 report ---------------


def run_child(code: str, limit_as: int | None = None) -> subprocess.CompletedProcess:
    return run_capped([sys.executable, "-c", textwrap.dedent(code)], limit_as, timeout=300)


@pytest.mark.gl
def test_huge_size_under_an_address_space_cap_is_refused_not_a_crash(tmp_path: Path) -> None:
    code = f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.render.test_export_limits import small_cloud, small_path
        from holoscope.core.errors import BudgetExceeded
        from holoscope.render.export import render_to_output
        for name in ("x.mp4", "x.png"):
            try:
                render_to_output(small_cloud(), small_path(2, 16384, 16384), os.path.join({str(tmp_path)!r}, name))
            except BudgetExceeded as exc:
                print("refused:", exc)
            else:
                sys.exit("rendered?")
    """
    result = run_child(code, limit_as=6 << 30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("refused:") == 2 and "memory budget" in result.stdout
    assert os.listdir(tmp_path) == []


@pytest.mark.gl
def test_render_makes_and_releases_its_own_context(tmp_path: Path) -> None:
    code = f"""
        import os, sys, threading
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.render.test_export_limits import small_cloud, small_path
        from holoscope.render.export import render_to_output
        out = {str(tmp_path)!r}
        assert render_to_output(small_cloud(), small_path(2), os.path.join(out, "a.png")) == 1
        assert render_to_output(small_cloud(), small_path(3), os.path.join(out, "b.mp4")) == 3
        job = (small_cloud(), small_path(2), os.path.join(out, "c.mkv"))
        worker = threading.Thread(target=render_to_output, args=job)
        worker.start(); worker.join()
        print("done")
    """
    result = run_child(code)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.mp4", "c.mkv"]
