"""The player on a streamed medium: a buffer sized in seconds (and still bounded in bytes), a
stall that holds the clock instead of dropping frames and resumes by itself once enough is
ready (or the stream ends), the stall counters, and the buffer reported to an adaptive
controller. A local medium keeps dropping late frames. The medium's frames arrive when the test
releases them, as bytes over a link would."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from holoscope.core.adaptive import AdaptiveController
from holoscope.core.media import Media, MediaKind
from holoscope.core.player import STREAM_BUFFER_S, Player, PlayerState


from tests.core.test_player import FakeClock, Pic  # the same fakes as the plain player's tests


def medium(count: int, fps: float = 10.0, *, streamed: bool = True,
           arrivals: threading.Semaphore | None = None) -> Media:  # fmt: skip
    """``count`` frames; each waits for one release of ``arrivals`` (None: all at once)."""

    def iter_from(start: int) -> Iterator[object]:
        for i in range(start, count):
            if arrivals is not None and not arrivals.acquire(timeout=10):
                return
            yield Pic(i)

    return Media(kind=MediaKind.SPLAT_VIDEO, format="test", reader="test", frame_count=count, fps=fps,
                 load_frame=Pic, iter_from=iter_from, info={"streamed": streamed})  # fmt: skip


def wait_ready(player: Player, index: int, frames: int, timeout: float = 5.0) -> None:
    """Until ``frames`` frames from ``index`` on are decoded (the decode runs on its thread)."""
    deadline = time.monotonic() + timeout
    while player.prefetcher.ahead(index)[0] < frames:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {player.prefetcher.ahead(index)[0]} frames ready from {index}")
        time.sleep(0.002)


def play_to(player: Player, clock: FakeClock, until: float, step: float = 0.1) -> None:
    """Advance the clock in GUI-timer steps, polling at each (the frame shown follows)."""
    while clock.t < until - 1e-9:
        clock.t = round(clock.t + step, 6)
        player.poll()


def test_a_stream_stalls_instead_of_dropping_and_resumes_by_itself():
    clock, arrivals = FakeClock(), threading.Semaphore(5)
    with Player(medium(40, arrivals=arrivals), now=clock, buffer_seconds=1.0, resume_seconds=0.5) as player:
        assert player.streamed and player.prefetcher.capacity == 10
        wait_ready(player, 0, 5)
        player.play()
        player.poll()
        assert player.index == 0
        play_to(player, clock, 0.5)  # frames 1-4 shown; 5 is due and has not arrived
        assert player.index == 4 and player.state is PlayerState.BUFFERING and player.stalled
        assert player.stats()["stalls"] == 1
        clock.t += 2.0  # two seconds without data: the clock does not move on
        player.poll()
        assert player.due == 5 and player.index == 4 and player.state is PlayerState.BUFFERING
        arrivals.release(3)
        wait_ready(player, 5, 3)
        frame = player.poll()  # the frame due is shown as soon as it comes, the clock still held
        assert frame is not None and frame.index == 5 and player.stalled
        player.poll()  # 0.2 s ready after it, 0.5 s wanted
        assert player.stalled and player.stats()["buffer_s"] == pytest.approx(0.2)
        arrivals.release(3)
        wait_ready(player, 6, 5)
        assert player.poll() is None and player.state is PlayerState.PLAYING  # resumed where it stopped
        clock.t += 0.1
        frame = player.poll()
        assert frame is not None and frame.index == 6
        stats = player.stats()
        assert stats["stalled_s"] == pytest.approx(2.0) and stats["stalls"] == 1
        assert stats["frames_dropped"] == 0
        arrivals.release(100)
        wait_ready(player, 7, 3)
        play_to(player, clock, clock.t + 0.3)
        assert player.index == 9 and player.stats()["frames_dropped"] == 0


def test_a_stall_near_the_end_resumes_when_the_stream_ends():
    clock, arrivals = FakeClock(), threading.Semaphore(3)
    with Player(medium(5, arrivals=arrivals), now=clock, resume_seconds=1.0) as player:
        wait_ready(player, 0, 3)
        player.play()
        play_to(player, clock, 0.3)
        assert player.index == 2 and player.stalled  # frame 3 due
        arrivals.release(2)  # the last two frames: fewer than a second, but the end
        deadline = time.monotonic() + 5
        while player.index != 3 and time.monotonic() < deadline:
            player.poll()
            time.sleep(0.002)
        assert player.index == 3 and not player.stalled  # the end came: no buffer to wait for
        play_to(player, clock, clock.t + 0.5)
        assert player.index == 4 and player.state is PlayerState.ENDED


def test_the_byte_budget_bounds_the_buffer_and_a_full_buffer_resumes():
    clock, arrivals = FakeClock(), threading.Semaphore(1)
    # 100 bytes a frame: 350 bytes hold 3 frames, fewer than the 1 s the player waits for
    with Player(medium(40, arrivals=arrivals), now=clock, max_bytes=350, resume_seconds=1.0) as player:
        assert player.prefetcher.capacity == round(STREAM_BUFFER_S * 10)
        wait_ready(player, 0, 1)
        player.play()
        player.poll()
        play_to(player, clock, 0.1)
        assert player.stalled
        arrivals.release(100)
        wait_ready(player, 1, 3)
        time.sleep(0.05)
        assert player.prefetcher.queued == 3  # the budget, not the 20-frame buffer
        deadline = time.monotonic() + 5
        while player.stalled and time.monotonic() < deadline:  # a full queue counts as ready
            player.poll()
            time.sleep(0.002)
        assert player.index == 1 and not player.stalled


def test_a_local_medium_still_drops_late_frames():
    clock = FakeClock()
    with Player(medium(40, streamed=False), now=clock, capacity=8) as player:
        assert not player.streamed and player.buffer_seconds is None and player.prefetcher.capacity == 8
        wait_ready(player, 0, 8)
        player.play()
        player.poll()
        clock.t = 0.5  # frames 1-4 are late
        frame = player.poll()
        assert frame is not None and frame.index == 5 and player.stats()["frames_dropped"] == 4
        assert player.stats()["stalls"] == 0


def test_pause_during_a_stall_and_the_stream_option():
    clock, arrivals = FakeClock(), threading.Semaphore(1)
    with Player(medium(20, streamed=False, arrivals=arrivals), now=clock, streamed=True) as player:
        assert player.streamed and player.buffer_seconds == STREAM_BUFFER_S
        wait_ready(player, 0, 1)
        player.play()
        player.poll()
        play_to(player, clock, 0.1)
        assert player.stalled
        clock.t += 1.0
        player.toggle()  # shows as playing (buffering): toggling pauses
        assert player.state is PlayerState.PAUSED and not player.clock.playing
        assert player.stats()["stalled_s"] == pytest.approx(1.0)
        clock.t += 5.0  # paused time is not stall time
        assert player.stats()["stalled_s"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        Player(medium(5), buffer_seconds=0)


def test_the_buffer_is_reported_to_the_adaptive_controller():
    clock = FakeClock()
    media = medium(40)
    media.adaptive = AdaptiveController([("high", 4e6), ("low", 1e6)])  # what a multi-level reader attaches
    media.adaptive.record(500_000, 1.0)  # 4 Mbit/s measured
    with Player(media, now=clock, buffer_seconds=1.5) as player:
        wait_ready(player, 0, 1)
        player.poll()  # frame 0 shown
        wait_ready(player, 1, 15)  # a full buffer after it
        stats = player.stats()
        assert stats["buffer_s"] == pytest.approx(1.5)
        assert media.adaptive.stats()["buffer_s"] == pytest.approx(1.5)
        assert stats["level"] == "low" and stats["throughput_bps"] == 4_000_000 and stats["adaptive"]


def test_a_one_level_medium_reports_throughput_but_no_level():
    media = medium(10)
    media.adaptive = AdaptiveController([("v3", 0.0)], fixed=0)  # what a .gsv or V^3 URL attaches
    media.adaptive.record(1_000_000, 0.5)
    with Player(media, now=FakeClock()) as player:
        stats = player.stats()
    assert stats["level"] is None and stats["levels"] == 1 and not stats["adaptive"]
    assert stats["throughput_bps"] == 16_000_000


def test_a_player_fetches_the_first_group_at_the_lowest_level_of_a_dormant_controller():
    # A multi-level URL's controller sleeps (export reads the best level); playing engages it
    # before the first group is fetched, so that group comes at the safe lowest level.
    media = medium(10)
    controller = AdaptiveController([("high", 4e6), ("low", 1e6)], start=0, engaged=False)
    media.adaptive = controller
    chosen = []
    frames = media.frames_from

    def frames_from(start):
        chosen.append(controller.choose())
        return frames(start)

    media.frames_from = frames_from
    with Player(media, now=FakeClock()) as player:
        assert chosen == []  # nothing fetched before the first poll
        player.poll()
        wait_ready(player, 0, 1)
    assert chosen[0] == 1
