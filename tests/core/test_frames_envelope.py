"""The frame envelope (index, pts, duration, payload, device) and media of unknown length
(streams): the prefetcher and the player find the end where ``frames_from`` stops."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pytest

from holoscope.core.frames import FailedFrame, Frame, VideoFrame, frame_nbytes
from holoscope.core.media import Media, MediaKind
from holoscope.core.playback import FramePrefetcher
from holoscope.core.player import Player, PlayerState
from tests.core.test_player import FakeClock, poll_until


@dataclass(frozen=True)
class Pic:
    number: int  # no ``index``: the envelope's index comes from the medium
    nbytes: int = 100


def stream(length: int = 12, fps: float = 10.0) -> tuple[Media, list[int]]:
    """A medium whose length is not declared: a generator that simply stops after ``length``."""
    runs: list[int] = []

    def iter_from(start: int) -> Iterator[Pic]:
        runs.append(start)
        i = start
        while i < length:  # the reader only learns the end by reaching it
            yield Pic(i)
            i += 1

    def load(i: int) -> Pic:
        if i >= length:
            raise IndexError(f"frame {i} is past the end of the stream")
        return Pic(i)

    media = Media(kind=MediaKind.VIDEO, format="fake-stream", reader="test", frame_count=None, fps=fps,
                  load_frame=load, iter_from=iter_from)  # fmt: skip
    return media, runs


# ---- the envelope --------------------------------------------------------------------------------


def test_the_envelope_is_immutable_and_measures_its_payload():
    frame = Frame.wrap(Pic(3, nbytes=1234), 3, 25.0)
    assert (frame.index, frame.pts, frame.duration, frame.device) == (3, 3 / 25, 1 / 25, "cpu")
    assert frame.end == pytest.approx(4 / 25) and frame.on_cpu and not frame.failed
    assert frame_nbytes(frame) == frame.nbytes == 1234
    assert frame.cpu_payload() == Pic(3, nbytes=1234)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.index = 4  # type: ignore[misc]
    assert Frame.wrap(frame, 9, 1.0) is frame  # an envelope is not wrapped twice


def test_a_payload_that_knows_its_index_and_time_is_the_one_source_of_truth():
    y = np.zeros((4, 4), np.uint8)
    uv = np.zeros((2, 2), np.uint8)
    video = VideoFrame((y, uv, uv), "yuv420p", 4, 4, pts=1.5, index=45)
    frame = Frame.wrap(video, 0, 30.0)  # the medium's count would say 0: the payload wins
    assert (frame.index, frame.pts) == (45, 1.5) and frame.payload is video
    assert frame_nbytes(frame) == frame_nbytes(video) == 24


def test_a_failed_frame_travels_in_an_envelope():
    frame = Frame.wrap(FailedFrame(2, "f3.ply: damaged"), 2, 10.0)
    assert frame.failed and frame.index == 2 and frame.pts == pytest.approx(0.2)
    assert frame_nbytes(frame) == 0


def test_a_payload_on_another_device_is_not_handed_to_a_gl_upload():
    frame = Frame(0, 0.0, 0.04, object(), device="cuda:0")
    assert not frame.on_cpu
    with pytest.raises(ValueError, match="cuda:0"):
        frame.cpu_payload()


def test_frame_returns_the_bare_payload_and_frames_from_yields_envelopes():
    media = Media(kind=MediaKind.SPLAT_SEQUENCE, format="t", reader="t", frame_count=3, fps=10.0,
                  load_frame=lambda i: Pic(i))  # fmt: skip
    assert media.frame(1) == Pic(1)
    frames = list(media.frames_from(1))
    assert all(isinstance(f, Frame) for f in frames)
    assert [(f.index, f.payload.number) for f in frames] == [(1, 1), (2, 2)]
    assert [f.pts for f in frames] == pytest.approx([0.1, 0.2])


# ---- streams of unknown length -------------------------------------------------------------------


def test_a_stream_has_no_count_and_no_duration():
    media, _ = stream()
    assert media.frame_count is None and media.duration is None and not media.length_known
    assert [f.index for f in media.frames_from(7)] == [7, 8, 9, 10, 11]
    with pytest.raises(IndexError):
        next(media.frames_from(-1))
    with pytest.raises(IndexError, match="past the end"):
        media.frame(40)


def test_the_prefetcher_finds_the_end_where_the_stream_stops():
    media, _ = stream(6)
    with FramePrefetcher(media, capacity=4) as pf:
        assert pf.end is None or pf.end == 6  # not known until the decoder got there
        assert [pf.wait_for(i, timeout=5).index for i in range(6)] == list(range(6))
        deadline = time.monotonic() + 5
        while pf.end is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert pf.end == 6
        with pytest.raises(LookupError):
            pf.wait_for(6, timeout=5)  # the run ended before it
        with pytest.raises(IndexError, match="out of range 0..5"):
            pf.seek(9)  # the end is known now


def test_playing_a_stream_through_to_the_end_gives_ended():
    media, _ = stream(40, fps=10.0)
    clock = FakeClock()
    with Player(media, capacity=16, now=clock) as player:
        assert player.frame_count is None  # the end is not known yet (the read-ahead holds 16)
        assert poll_until(player, 0).payload == Pic(0)
        player.play()
        clock.t = 0.55
        assert poll_until(player, 5).index == 5
        assert player.state is PlayerState.PLAYING
        clock.t = 60.0  # far past the end: the clock has no end until the stream's is found
        poll_until(player, 39)
        assert player.frame_count == 40 and player.clock.duration == pytest.approx(4.0)
        assert player.state is PlayerState.ENDED and player.settled
        assert player.frame.index == 39 and player.frame.payload == Pic(39)
        player.play()  # play at the end restarts, as for any medium
        assert player.clock.time == 0.0 and poll_until(player, 0).index == 0


def test_seeking_backwards_in_a_stream_works():
    media, runs = stream(30, fps=10.0)
    clock = FakeClock()
    with Player(media, now=clock) as player:
        player.seek(20)
        assert poll_until(player, 20).payload == Pic(20)
        for target in (4, 0, 17):
            player.seek(target)
            assert poll_until(player, target).index == target
        assert player.frame.payload == Pic(17)
        assert len(runs) >= 2 and 0 in runs  # a backwards seek restarted the stream earlier
        assert [player.frame_at(i, timeout=5).index for i in (25, 3, 29)] == [25, 3, 29]


def test_seeking_past_the_end_of_a_stream_finds_the_end_and_shows_the_last_frame():
    media, runs = stream(40, fps=10.0)
    clock = FakeClock()
    with Player(media, capacity=16, now=clock) as player:
        assert poll_until(player, 0).index == 0
        assert player.frame_count is None  # the read-ahead holds 16 frames: the end is not known
        player.seek(100)  # the clock goes there; the stream has nothing from there on
        assert poll_until(player, 39).payload == Pic(39)
        assert player.frame_count == 40 and player.due == 39
        assert runs[:3] == [0, 100, 0]  # a run past the end found nothing; the rescan found the end
        assert player.state is PlayerState.ENDED
        player.seek(2)  # and back
        assert poll_until(player, 2).index == 2


def test_frame_at_past_the_end_of_a_stream_raises_a_clear_error():
    media, _ = stream(8)
    with Player(media) as player:
        assert player.frame_at(7, timeout=5).index == 7
        with pytest.raises(IndexError, match="frame 8 is past the end"):
            player.frame_at(8, timeout=5)
        assert player.frame_count == 8
        with pytest.raises(IndexError, match="past the end .*8 frames"):
            player.frame_at(50, timeout=5)
    media, _ = stream(5)
    with Player(media) as player:  # straight past the end, before the end is known
        with pytest.raises(IndexError, match="frame 40 is past the end"):
            player.frame_at(40, timeout=5)
        assert player.frame_at(4, timeout=5).index == 4  # and the stream still plays


def test_exporting_or_listing_frames_of_a_stream_is_refused_clearly():
    from holoscope.core.errors import InvalidArgument
    from holoscope.render.timeline import parse_frame_range, plan_timeline

    with pytest.raises(InvalidArgument, match="unknown length"):
        plan_timeline(None, 10.0, cameras=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="frame count"):
        parse_frame_range("0:4", None)  # type: ignore[arg-type]
