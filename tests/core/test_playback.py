"""The decode-ahead worker (FramePrefetcher), on fake and real media."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from holoscope.core.media import Media, MediaKind
from holoscope.core.playback import FramePrefetcher


@dataclass(frozen=True)
class FakeFrame:
    index: int
    generation: int  # which frames_from call produced it


class FakeVideo:
    """In-memory timed media with hooks: a per-frame delay, a gate, a one-shot failure."""

    def __init__(self, count: int = 100, delay: float = 0.0) -> None:
        self.count = count
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.fail_once_at: int | None = None
        self.runs: list[int] = []  # start index of every frames_from call
        self.produced: list[int] = []

    def iter_from(self, start: int) -> Iterator[FakeFrame]:
        run = len(self.runs)
        self.runs.append(start)
        for i in range(start, self.count):
            self.gate.wait(10)
            if self.delay:
                time.sleep(self.delay)
            if self.fail_once_at == i:
                self.fail_once_at = None
                raise RuntimeError(f"decoder exploded at frame {i}")
            self.produced.append(i)
            yield FakeFrame(i, run)

    def media(self) -> Media:
        return Media(kind=MediaKind.VIDEO, format="fake", reader="test", frame_count=self.count, fps=25.0,
                     load_frame=lambda i: FakeFrame(i, -1), iter_from=self.iter_from)


def wait_until(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


@pytest.fixture
def threads_before() -> Iterator[set[threading.Thread]]:
    before = set(threading.enumerate())
    yield before
    # No prefetcher thread outlives its test.
    leaked = [t for t in threading.enumerate() if t not in before and t.name.startswith("holoscope-prefetch")]
    assert not leaked, leaked


def test_frames_arrive_in_order(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(40)
    with FramePrefetcher(fake.media(), capacity=4) as pf:
        got = [pf.wait_for(i, timeout=5).index for i in range(40)]
        assert got == list(range(40))
        assert pf.frames_decoded == 40 and pf.frames_dropped == 0
        assert pf.stats()["decode_ms"] >= 0
    assert not pf.alive


def test_a_full_queue_blocks_the_decoder(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(100)
    with FramePrefetcher(fake.media(), capacity=3) as pf:
        wait_until(lambda: pf.queued == 3)
        time.sleep(0.05)
        # Backpressure: three queued plus at most the one the worker holds, waiting for room.
        assert pf.queued == 3 and len(fake.produced) <= 4
        assert pf.take(0).index == 0
        wait_until(lambda: pf.queued == 3)
        assert len(fake.produced) <= 5


def test_take_never_blocks_and_drops_late_frames(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(100)
    fake.gate.clear()
    with FramePrefetcher(fake.media(), capacity=6) as pf:
        t0 = time.monotonic()
        assert pf.take(0) is None  # nothing decoded yet: no waiting
        assert time.monotonic() - t0 < 0.5
        fake.gate.set()
        wait_until(lambda: pf.queued == 6)  # frames 0..5
        frame = pf.take(4)  # the consumer is late: 0..3 are dropped
        assert frame.index == 4 and pf.frames_dropped == 4
        assert pf.take(4) is None  # already handed out
        assert pf.take(5).index == 5
        assert pf.frames_dropped == 4


def test_seek_far_ahead_newest_request_wins(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(1000, delay=0.001)
    with FramePrefetcher(fake.media(), capacity=4) as pf:
        wait_until(lambda: pf.queued >= 2)
        pf.seek(300)
        pf.seek(700)  # supersedes 300 before it ran (or cancels its run)
        frames = [pf.wait_for(i, timeout=5) for i in range(700, 720)]
        assert [f.index for f in frames] == list(range(700, 720))
        generation = frames[0].payload.generation
        assert all(f.payload.generation == generation for f in frames)  # no frame of an older run
        assert fake.runs[-1] == 700
        assert pf.take(650) is None and pf.position >= 720
        assert pf.frames_flushed >= 1


def test_seek_while_the_decoder_is_blocked_on_a_full_queue(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(500)
    with FramePrefetcher(fake.media(), capacity=2) as pf:
        wait_until(lambda: pf.queued == 2)
        pf.seek(400)
        assert pf.wait_for(400, timeout=5).index == 400
        assert pf.wait_for(401, timeout=5).index == 401
        with pytest.raises(LookupError):
            pf.wait_for(10, timeout=1)  # behind this run: seek first


def test_worker_exception_is_reraised_and_the_worker_survives(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(50)
    fake.fail_once_at = 6
    with FramePrefetcher(fake.media(), capacity=4) as pf:
        for i in range(6):  # frames decoded before the failure are still delivered
            assert pf.wait_for(i, timeout=5).index == i
        with pytest.raises(RuntimeError, match="exploded at frame 6"):
            pf.wait_for(6, timeout=5)
        assert pf.alive
        pf.seek(6)
        assert [pf.wait_for(i, timeout=5).index for i in range(6, 12)] == list(range(6, 12))


def test_take_reraises_the_worker_exception_once(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(50)
    fake.fail_once_at = 0
    with FramePrefetcher(fake.media(), capacity=4) as pf:
        wait_until(lambda: pf._error is not None)  # noqa: SLF001 - wait for the failure itself
        with pytest.raises(RuntimeError, match="exploded"):
            pf.take(0)
        assert pf.take(0) is None  # raised once, not forever
        assert not pf.covers(0) or pf.position == 0
        pf.seek(0)
        assert pf.wait_for(0, timeout=5).index == 0


def test_close_joins_the_thread_even_when_blocked(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(100)
    pf = FramePrefetcher(fake.media(), capacity=2)
    wait_until(lambda: pf.queued == 2)  # the worker now waits for room
    assert pf.alive and pf.thread in threading.enumerate()
    pf.close()
    pf.close()  # idempotent
    assert not pf.alive and pf.thread not in threading.enumerate()
    with pytest.raises(RuntimeError, match="closed"):
        pf.take(3)


def test_idle_start_and_end_of_media(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(10)
    with FramePrefetcher(fake.media(), capacity=4, start=None) as pf:
        time.sleep(0.02)
        assert fake.runs == [] and pf.position is None and pf.take(0) is None
        pf.seek(7)
        assert [pf.wait_for(i, timeout=5).index for i in (7, 8, 9)] == [7, 8, 9]
        wait_until(lambda: not pf._running)  # noqa: SLF001
        assert not pf.covers(9)  # the run ended: nothing more is coming
        with pytest.raises(LookupError):
            pf.wait_for(9, timeout=1)
        with pytest.raises(IndexError):
            pf.seek(10)


def test_many_seeks_leave_no_threads_and_no_stale_frames(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(2000)
    with FramePrefetcher(fake.media(), capacity=3) as pf:
        for target in range(0, 2000, 97):
            pf.seek(target)
            assert pf.wait_for(target, timeout=5).index == target
        assert threading.active_count() <= len(threads_before) + 1


def test_prefetcher_on_a_real_video(tmp_path: Path, threads_before, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from holoscope.core.registry import open_media
    from tests.codecs.test_video_decode import frame_number, make_video

    monkeypatch.setenv("HOLOSCOPE_HWDEC", "no")
    media = open_media(make_video(tmp_path / "clip.mp4", "libx264", n=48))
    try:
        with FramePrefetcher(media, capacity=4) as pf:
            for i in range(10):
                frame = pf.wait_for(i, timeout=10)
                assert (frame.index, frame_number(frame.payload.planes[0])) == (i, i)
            pf.seek(30)
            assert [frame_number(pf.wait_for(i, timeout=10).payload.planes[0]) for i in range(30, 48)] == list(range(30, 48))
            # The GUI thread may fetch a still from the same media meanwhile.
            assert frame_number(media.frame(5).planes[0]) == 5
            pf.seek(2)
            assert frame_number(pf.wait_for(2, timeout=10).payload.planes[0]) == 2
            assert pf.stats()["decode_ms"] > 0
    finally:
        media.release()


# Decode-ahead within a memory budget (frames of a splat sequence differ in size) -------------


@dataclass(frozen=True)
class SizedFrame:
    index: int
    nbytes: int


def sized_media(sizes: list[int]) -> Media:
    def iter_from(start: int) -> Iterator[SizedFrame]:
        for i in range(start, len(sizes)):
            yield SizedFrame(i, sizes[i])

    return Media(kind=MediaKind.SPLAT_SEQUENCE, format="test", reader="test", frame_count=len(sizes), fps=30.0,
                 load_frame=lambda i: SizedFrame(i, sizes[i]), iter_from=iter_from)  # fmt: skip


def test_queue_stays_within_its_byte_budget():
    sizes = [100, 400, 50, 300, 300, 10, 10, 900, 20, 20] * 3
    with FramePrefetcher(sized_media(sizes), capacity=100, max_bytes=1000) as pre:
        got = []
        for i in range(len(sizes)):
            time.sleep(0.002)  # let the decoder run ahead as far as the budget allows
            got.append(pre.wait_for(i, timeout=5).nbytes)
            assert pre.stats()["queued_bytes"] <= 1000
        assert got == sizes
        assert 0 < pre.peak_queued_bytes <= 1000
        assert pre.frames_decoded == len(sizes)


def test_a_frame_larger_than_the_budget_still_plays_alone():
    with FramePrefetcher(sized_media([10, 5000, 10]), capacity=8, max_bytes=100) as pre:
        assert [pre.wait_for(i, timeout=5).nbytes for i in range(3)] == [10, 5000, 10]
        assert pre.peak_queued_bytes == 5000  # held alone, never beside another frame


def test_seek_releases_the_budget():
    with FramePrefetcher(sized_media([400] * 20), capacity=100, max_bytes=1000) as pre:
        assert pre.wait_for(0, timeout=5).nbytes == 400
        deadline = time.monotonic() + 5
        while pre.stats()["queued_bytes"] < 800 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert pre.stats()["queued_bytes"] == 800  # two more frames fit, a third would not
        pre.seek(10)
        assert pre.wait_for(10, timeout=5).index == 10
        assert pre.stats()["queued_bytes"] <= 1000


def test_wait_ready_waits_without_taking_and_leaves_errors_to_the_consumer(threads_before) -> None:  # noqa: ANN001
    fake = FakeVideo(10)
    fake.gate.clear()
    with FramePrefetcher(fake.media(), capacity=4) as pf:
        assert pf.wait_ready(0, timeout=0.05) is False  # not decoded yet: times out
        fake.gate.set()
        assert pf.wait_ready(0, timeout=5) is True
        assert pf.queued >= 1 and pf.take(0).index == 0  # still there for the consumer
        with pytest.raises(LookupError):
            pf.wait_ready(0, timeout=5)  # behind the decoder
    failing = FakeVideo(10)
    failing.fail_once_at = 0
    with FramePrefetcher(failing.media(), capacity=4) as pf:
        assert pf.wait_ready(0, timeout=5) is False
        with pytest.raises(RuntimeError, match="exploded"):
            pf.take(0)  # the error stayed for the consumer
    closed = FramePrefetcher(FakeVideo(10).media(), capacity=4, start=None)
    closed.close()
    with pytest.raises(RuntimeError):
        closed.wait_ready(0)
