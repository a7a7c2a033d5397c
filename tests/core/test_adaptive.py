"""The adaptive quality rule on its own: a safe start, one step up at a time only when the
throughput comfortably exceeds the next level and the buffer is healthy, straight down to a
level the link carries, one step down when the buffer runs low, and a fixed level untouched."""

from __future__ import annotations

import pytest

from holoscope.core.adaptive import AdaptiveController

LEVELS = [("high", 8e6), ("medium", 4e6), ("low", 1e6)]  # best first, bits per second


def measured(controller: AdaptiveController, bps: float, samples: int = 1) -> None:
    for _ in range(samples):
        controller.record(int(bps / 8), 1.0)  # a second's worth of bytes in a second


def test_starts_at_the_lowest_level_and_holds_until_measured():
    c = AdaptiveController(LEVELS)
    assert c.adaptive and c.level_name == "low" and c.throughput_bps is None
    assert c.choose() == 2 and c.switches == 0
    assert AdaptiveController(LEVELS, start=0).level == 0


def test_up_one_level_at_a_time_with_a_fast_link_and_a_healthy_buffer():
    c = AdaptiveController(LEVELS)
    measured(c, 20e6, 3)
    assert [c.choose() for _ in range(3)] == [1, 0, 0]
    assert c.history == [1, 0, 0] and c.switches == 2


def test_no_step_up_without_margin_or_with_a_thin_buffer():
    c = AdaptiveController(LEVELS)
    measured(c, 4.5e6, 5)  # carries medium (4.5 * 0.8 >= 4) but not 1.25 x 4 = 5 to go up to it
    assert c.choose() == 2
    measured(c, 6e6, 10)
    c.report_buffer(1.0)  # above low_buffer_s, below healthy_buffer_s
    assert c.choose() == 2
    c.report_buffer(3.0)
    assert c.choose() == 1


def test_down_at_once_to_what_the_link_carries():
    c = AdaptiveController(LEVELS, start=0)
    measured(c, 20e6, 4)
    assert c.choose() == 0
    measured(c, 0.5e6, 3)  # the fast average falls below every level's need at once
    assert c.choose() == 2


def test_a_draining_buffer_steps_down_one_level():
    c = AdaptiveController(LEVELS, start=0)
    measured(c, 11e6, 5)
    c.report_buffer(0.2)
    assert c.choose() == 1 and c.choose() == 2 and c.choose() == 2
    c.report_buffer(5.0)
    assert c.choose() == 1  # the link is fine and the buffer is back: up again


def test_a_cached_read_counts_as_at_most_twice_the_best_bitrate():
    c = AdaptiveController(LEVELS, start=0)
    c.record(10_000_000, 0.0)  # instantly: served from the cache
    assert c.throughput_bps == pytest.approx(16e6)
    measured(c, 3e6, 2)  # a real slower link is seen after two reads (uncapped: after dozens)
    assert c.throughput_bps == pytest.approx(6.25e6) and c.choose() == 1


def test_a_fixed_level_never_changes():
    c = AdaptiveController(LEVELS, fixed=1)
    measured(c, 100e6, 3)
    assert c.throughput_bps == pytest.approx(100e6)  # measured, not capped: nothing to decide
    c.report_buffer(0.0)
    assert not c.adaptive and [c.choose() for _ in range(3)] == [1, 1, 1] and c.switches == 0
    with pytest.raises(ValueError):
        AdaptiveController(LEVELS, fixed=3)
    with pytest.raises(ValueError):
        AdaptiveController([])


def test_stats_for_the_info_panel():
    c = AdaptiveController(LEVELS)
    measured(c, 2e6)
    c.report_buffer(1.23456)
    c.choose()
    stats = c.stats()
    assert stats["level"] == "low" and stats["level_index"] == 2 and stats["levels"] == 3
    assert stats["throughput_bps"] == 2_000_000 and stats["buffer_s"] == pytest.approx(1.235)
    assert stats["bytes_fetched"] == 250_000


def test_a_dormant_controller_holds_its_start_until_engaged():
    c = AdaptiveController(LEVELS, start=0, engaged=False)
    measured(c, 0.1e6, 3)  # far too slow for the best level: no matter while dormant
    assert [c.choose() for _ in range(2)] == [0, 0] and not c.stats()["adaptive"]
    c.engage()
    assert c.choose() == 2 and c.stats()["adaptive"]
    fresh = AdaptiveController(LEVELS, start=0, engaged=False)
    fresh.engage()  # nothing fetched yet: the first group comes at the safe level
    assert fresh.level == 2


def test_a_full_read_ahead_counts_as_a_healthy_buffer():
    # frames so large that the read-ahead's byte budget holds 0.2 s: still room to go up
    thin = AdaptiveController(LEVELS)
    measured(thin, 20e6, 3)
    thin.report_buffer(0.2)
    assert thin.choose() == 2  # a thin buffer that is not full: one step down, no step up
    full = AdaptiveController(LEVELS)
    measured(full, 20e6, 3)
    full.report_buffer(0.2, full=True)
    assert [full.choose() for _ in range(2)] == [1, 0]
