"""The Qt-free player: states, real-time polling, every-frame access, seeking without stale
frames, failed frames, and the byte budget, on a medium whose decode time the test controls."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterator

import pytest

from holoscope.core.frames import FailedFrame
from holoscope.core.media import Media, MediaKind
from holoscope.core.player import Player, PlayerState


@dataclass(frozen=True)
class Pic:
    index: int
    nbytes: int = 100


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def medium(count: int = 30, fps: float = 10.0, failed: set[int] = frozenset(), gate: threading.Event | None = None) -> Media:
    def load(i: int):
        if gate is not None:
            gate.wait(5)
        return FailedFrame(i, f"f{i}.ply: damaged") if i in failed else Pic(i)

    def iter_from(start: int) -> Iterator[object]:
        for i in range(start, count):
            yield load(i)

    return Media(kind=MediaKind.SPLAT_SEQUENCE, format="test", reader="test", frame_count=count, fps=fps,
                 load_frame=load, iter_from=iter_from)  # fmt: skip


def poll_until(player: Player, want: int, timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = player.poll()
        if player.index == want:
            return frame
        time.sleep(0.002)
    raise AssertionError(f"frame {want} never shown (at {player.index}, {player.state})")


def test_states_play_pause_end():
    clock = FakeClock()
    with Player(medium(10, fps=10), now=clock) as player:
        assert player.state is PlayerState.PAUSED
        assert poll_until(player, 0).index == 0
        player.play()
        assert player.state is PlayerState.PLAYING
        clock.t = 0.35
        assert poll_until(player, 3).index == 3
        clock.t = 5.0  # far past the end, no loop
        poll_until(player, 9)
        assert player.state is PlayerState.ENDED


def test_buffering_when_the_frame_due_is_not_decoded():
    gate = threading.Event()
    clock = FakeClock()
    with Player(medium(10, gate=gate), now=clock) as player:
        player.play()
        assert player.poll() is None and player.state is PlayerState.BUFFERING
        gate.set()
        assert poll_until(player, 0).index == 0
        assert player.state is PlayerState.PLAYING


def test_seeking_never_shows_a_stale_frame():
    clock = FakeClock()
    with Player(medium(50), now=clock) as player:
        poll_until(player, 0)
        for target in (40, 5, 27, 26):
            player.seek(target)
            assert poll_until(player, target).index == target


def test_failed_frame_warns_and_playback_goes_on():
    clock = FakeClock()
    with Player(medium(10, failed={3}), now=clock) as player:
        player.play()
        clock.t = 0.2
        assert poll_until(player, 2).index == 2
        clock.t = 0.3
        assert poll_until(player, 3) is None
        assert player.state is PlayerState.FAILED_FRAME and "f3.ply" in player.warning
        assert player.frame.index == 2 and player.frame.payload == Pic(2)  # the last good picture stays
        clock.t = 0.4
        assert poll_until(player, 4).index == 4
        assert player.state is PlayerState.PLAYING


def test_every_frame_access_for_export_and_loops():
    with Player(medium(8, failed={5})) as player:
        got = [player.frame_at(i, timeout=5) for i in [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 7]]
        assert [g.index if g is not None else None for g in got] == [0, 1, 2, 3, 4, None, 6, 7, 0, 1, 7]


def test_read_ahead_within_the_byte_budget():
    with Player(medium(40), max_bytes=350, capacity=40) as player:
        for i in range(40):
            assert player.frame_at(i, timeout=5).index == i
            assert player.stats()["queued_bytes"] <= 350
        assert 0 < player.prefetcher.peak_queued_bytes <= 350


def test_untimed_media_are_refused():
    static = Media(kind=MediaKind.SPLATS, format="x", reader="x", frame_count=1, fps=0.0, load_frame=lambda i: None)
    with pytest.raises(ValueError):
        Player(static)


def test_step_moves_from_the_position_and_settled_says_when_polling_can_stop():
    gate = threading.Event()
    clock = FakeClock()
    with Player(medium(20, gate=gate), now=clock) as player:
        player.seek(10)
        assert player.due == 10 and player.index is None and not player.settled
        player.step(1)  # from the position, though frame 10 never reached the screen
        assert player.due == 11 and player.state is PlayerState.PAUSED
        gate.set()
        assert poll_until(player, 11).index == 11 and player.settled
        player.play()
        assert not player.settled


def test_read_ahead_bytes_is_a_quarter_of_the_budget_capped(monkeypatch):
    from holoscope.core import budget
    from holoscope.core.player import READ_AHEAD_CAP, read_ahead_bytes

    monkeypatch.setattr(budget, "_override", None)  # restored after the test
    budget.set_limit(400 << 20)
    assert read_ahead_bytes() == 100 << 20
    budget.set_limit(64 << 30)
    assert read_ahead_bytes() == READ_AHEAD_CAP == 512 << 20


def test_clock_time_maps_to_frames_without_float_slips():
    clock = FakeClock()
    with Player(medium(120, fps=30), now=clock) as player:
        for t, index in ((0.0, 0), (0.1, 3), (1 / 30 - 1e-4, 0), (2.0, 60), (3.99, 119)):
            player.clock.seek(t)
            assert player.due == index, t  # 0.1 * 30 is 2.9999999 in floats: still frame 3
