"""Hostile video input: a few frames followed by a sparse multi-GB tail (frame counting and the
decoder's flush must not scan it), pictures larger than the memory budget (refused before FFmpeg
allocates them), and FIFOs (refused before FFmpeg could block on them). Every file is generated
here with PyAV; the sparse tails come from os.truncate."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from holoscope.codecs.video import decode
from holoscope.codecs.video.decode import open_video
from tests.video_reference import probe_video, read_video_frames
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, HoloscopeError, NotAFile
from holoscope.core.playback import FramePrefetcher

from .test_video_decode import frame_number, frame_planes, make_video
from tests.capped import run_capped

ADDRESS_SPACE = 2 << 30  # the RLIMIT_AS every command line test runs under
TAIL = 64 << 30


@pytest.fixture(autouse=True)
def _software(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "no")


def sparse_tail(path: Path, size: int = TAIL) -> Path:
    os.truncate(path, size)
    if os.stat(path).st_blocks * 512 > 64 << 20:
        pytest.skip("this file system has no sparse files")
    return path


class _NoSeek(io.RawIOBase):
    """A write-only stream that cannot seek: the Matroska muxer then writes no cues and no duration."""

    def __init__(self, fh: io.BufferedWriter) -> None:
        self.fh = fh

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self.fh.write(data)


def live_mkv(path: Path, n: int = 5) -> Path:
    """An H.264 Matroska file written as a live stream: no frame count, no duration, no index."""
    with open(path, "wb") as fh, av.open(_NoSeek(fh), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane, data in zip(frame.planes, frame_planes(i)):
                np.frombuffer(plane, np.uint8).reshape(plane.height, -1)[:, : plane.width] = data
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def png_mov_claiming(path: Path, side: int) -> Path:
    """A ~1 KB MOV of PNG frames whose pictures (and sample description) claim side x side."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "rgb24"
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 90, np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    pos = 0
    while (pos := data.find(b"IHDR", pos)) >= 0:  # the PNG header: width, height (CRC unchecked)
        data[pos + 4 : pos + 12] = side.to_bytes(4, "big") * 2
        pos += 12
    entry = data.index(b"png ", data.index(b"stsd"))  # the visual sample entry: width, height
    data[entry + 28 : entry + 32] = side.to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return path


def run_python(code: str, *args: str | Path, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """``python -c CODE ARGS`` (``-m holoscope ARGS`` for "cli") under a 2 GB address-space limit."""
    env = {k: v for k, v in os.environ.items() if k != budget.ENV_VAR}
    env["HOLOSCOPE_HWDEC"] = "no"
    argv = [sys.executable, "-m", "holoscope"] if code == "cli" else [sys.executable, "-c", code]
    started = time.perf_counter()
    proc = run_capped([*argv, *map(str, args)], timeout=30, env=env, cwd=cwd)
    return proc, time.perf_counter() - started


# Sparse tails ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_sparse_tail_is_not_scanned_to_count_frames_or_to_play(tmp_path):
    path = make_video(tmp_path / "tail.mkv", "libx264", n=5, fps=25)
    media = open_video(path)
    assert media.frame_count == 5 and media.info["frames_estimated"] is False
    media.release()
    sparse_tail(path)
    started = time.perf_counter()
    media = open_video(path)
    assert time.perf_counter() - started < 5  # ~1 s: counting stops at the read timeout
    assert media.frame_count == 5 and media.info["frames_estimated"] is True
    assert media.info["frame_count_source"] == "duration x rate"
    started = time.perf_counter()
    with FramePrefetcher(media, capacity=4, start=0) as prefetcher:
        numbers = [frame_number(prefetcher.wait_for(i, timeout=30).payload.planes[0]) for i in range(5)]
    assert numbers == [0, 1, 2, 3, 4]
    # The last pictures wait for the decoder's flush, which comes when a read runs past the
    # read timeout instead of after scanning 64 GB (minutes).
    assert time.perf_counter() - started < 3 * decode._READ_TIMEOUT + 5
    started = time.perf_counter()
    assert [frame_number(media.frame(i).planes[0]) for i in (4, 0, 2, 4)] == [4, 0, 2, 4]
    assert time.perf_counter() - started < 3 * decode._READ_TIMEOUT + 5
    media.release()


@pytest.mark.timeout(120)
def test_a_live_written_mkv_with_a_sparse_tail_counts_a_bounded_prefix(tmp_path):
    path = live_mkv(tmp_path / "live.mkv")
    media = open_video(path)
    assert media.frame_count == 5 and media.info["frame_count_source"] == "counted packets"
    media.release()
    sparse_tail(path)
    started = time.perf_counter()
    media = open_video(path)
    assert time.perf_counter() - started < 5
    assert media.frame_count == 5 and media.info["frames_estimated"] is True
    assert media.info["frame_count_source"] == "counted packets (partial)"
    assert [frame_number(f.payload.planes[0]) for f in media.frames_from(0)] == [0, 1, 2, 3, 4]
    media.release()


@pytest.mark.timeout(120)
def test_info_on_a_sparse_tail_finishes_in_seconds_under_a_2_gb_limit(tmp_path):
    five = sparse_tail(make_video(tmp_path / "five.mkv", "libx264", n=5, fps=25))
    proc, seconds = run_python("cli", "info", "--json", five, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"frames": 5' in proc.stdout and proc.stderr == ""
    assert seconds < 8, seconds  # ~1.5 s
    # One frame: FFmpeg wants more before it has seen enough, so every stage runs into its
    # time limit (open, count, reopen, flush): still far inside the 20 s the contract allows.
    one = sparse_tail(make_video(tmp_path / "one.mkv", "libx264", n=1, fps=25))
    proc, seconds = run_python("cli", "info", one, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert seconds < 18, seconds  # ~7 s


# Pictures beyond the budget ---------------------------------------------------------------------


def test_a_picture_beyond_the_budget_is_refused_before_decoding(tmp_path):
    path = make_video(tmp_path / "square.mp4", "libx264", n=2, width=2048, height=2048)
    budget.set_limit(64 << 20, "the test")
    try:
        with pytest.raises(BudgetExceeded, match="2048x2048 video"):
            open_video(path)
    finally:
        budget.set_limit(None)
    assert open_video(path).info["width"] == 2048


@pytest.mark.timeout(60)
def test_a_tiny_file_claiming_a_huge_picture_does_not_allocate_it(tmp_path):
    path = png_mov_claiming(tmp_path / "claim.mov", 16000)
    assert path.stat().st_size < 4096
    budget.set_limit(1 << 30, "the test")
    try:
        with pytest.raises(CorruptStream, match="memory budget"):  # FFmpeg's max_pixels refused it
            open_video(path)
    finally:
        budget.set_limit(None)
    with pytest.raises(HoloscopeError, match="memory budget"):  # any budget: refused one way or the other
        open_video(path)
    # In a process of its own: before the fix FFmpeg allocated the pictures (1.5 GB peak here).
    code = (
        "import resource, sys\n"
        "from holoscope.codecs.video.decode import open_video\n"
        "from holoscope.core.errors import HoloscopeError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    open_video(sys.argv[1])\n"
        "except HoloscopeError as exc:\n"
        "    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    proc, _ = run_python(code, path)
    assert proc.returncode == 0, proc.stderr
    message, grown_mb = proc.stdout.splitlines()
    assert "memory budget" in message and int(grown_mb) < 200, proc.stdout
    proc, seconds = run_python("cli", "info", path, cwd=tmp_path)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("holoscope: error: "), proc.stderr
    assert seconds < 20


def test_the_budget_estimate_follows_the_pixel_format():
    decoded, delivered = decode._picture_bytes("yuv420p", 1920, 1080)
    assert (decoded, delivered) == (1920 * 1080 * 3 // 2,) * 2
    # 10-bit samples are kept (two bytes each) from decode to the renderer
    assert decode._picture_bytes("yuv420p10le", 1920, 1080) == (1920 * 1080 * 3, 1920 * 1080 * 3)
    assert decode._picture_bytes("yuv444p", 64, 64) == (64 * 64 * 3, 64 * 64 * 3)
    assert decode._picture_bytes(None, 64, 64) == (64 * 64 * 4, 64 * 64 * 3)
    assert decode.max_pixels() * 1.5 <= budget.current().limit


# FIFOs --------------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)
    for reader in (open_video, read_video_frames, probe_video):
        with pytest.raises(NotAFile, match="FIFO"):
            reader(fifo)
    proc, _ = run_python("cli", "info", "--format", "video", fifo, cwd=tmp_path)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "FIFO" in lines[0], proc.stderr
