"""The one background-job pattern: newest wins, cancellation, partial results, errors."""

from __future__ import annotations

import threading
import time

import pytest

from holoscope.core.errors import CorruptStream
from holoscope.core.jobs import JobContext, LatestJob


def test_result_of_the_submitted_request():
    job = LatestJob(lambda x, ctx: x * 2)
    try:
        rid = job.submit(21)
        result = job.wait(rid, timeout=5)
        assert (result.request_id, result.value, result.final) == (rid, 42, True)
        assert job.latest() == result
    finally:
        job.close()
    assert not job.alive


def test_newest_request_wins_and_superseded_work_stops():
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def work(x: int, ctx: JobContext) -> int:
        seen.append(x)
        if x == 1:
            started.set()
            release.wait(5)
            ctx.check()  # superseded by now: raises Cancelled
            return -1
        return x

    job = LatestJob(work)
    try:
        job.submit(1)
        assert started.wait(5)
        for x in (2, 3, 4):  # 2 and 3 are replaced before they start
            last = job.submit(x)
        release.set()
        assert job.wait(last, timeout=5).value == 4
        assert seen == [1, 4]
        assert job.latest().value == 4  # request 1's value never appeared
    finally:
        job.close()


def test_partial_results_then_final():
    step = threading.Event()

    def refine(x: int, ctx: JobContext) -> str:
        ctx.partial(f"coarse {x}")
        step.wait(5)
        return f"fine {x}"

    job = LatestJob(refine)
    try:
        rid = job.submit(7)
        coarse = job.wait(rid, timeout=5, final=False)
        assert (coarse.value, coarse.final) == ("coarse 7", False)
        step.set()
        fine = job.wait(rid, timeout=5)
        assert (fine.value, fine.final) == ("fine 7", True)
    finally:
        job.close()


def test_cancel_stops_the_running_request_and_drops_its_result():
    running = threading.Event()

    def slow(x: int, ctx: JobContext) -> int:
        running.set()
        while not ctx.cancelled:
            time.sleep(0.005)
        return x

    job = LatestJob(slow)
    try:
        rid = job.submit(5)
        assert running.wait(5)
        job.cancel()
        assert job.wait_until_idle(5)
        assert job.latest() is None
        with pytest.raises(TimeoutError):
            job.wait(rid, timeout=0.05)
    finally:
        job.close()


def test_errors_reach_the_consumer_once_and_the_worker_survives():
    def maybe_fail(x: int, ctx: JobContext) -> int:
        if x < 0:
            raise CorruptStream("bad request")
        return x

    job = LatestJob(maybe_fail)
    try:
        rid = job.submit(-1)
        with pytest.raises(CorruptStream):
            job.wait(rid, timeout=5)
        assert job.latest() is None  # raised once only
        assert job.wait(job.submit(3), timeout=5).value == 3
        assert job.alive
    finally:
        job.close()


def test_on_result_runs_for_each_published_result():
    got = []
    done = threading.Event()

    def work(x: int, ctx: JobContext) -> int:
        ctx.partial(x)
        return x + 1

    def on_result(result):
        got.append((result.value, result.final))
        if result.final:
            done.set()

    job = LatestJob(work, on_result=on_result)
    try:
        job.submit(1)
        assert done.wait(5)
        assert got == [(1, False), (2, True)]
    finally:
        job.close()


def test_submit_after_close_is_refused():
    job = LatestJob(lambda x, ctx: x)
    job.close()
    with pytest.raises(RuntimeError):
        job.submit(1)
