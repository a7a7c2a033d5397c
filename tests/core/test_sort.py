"""Back-to-front depth sorting and the newest-request-wins sort worker."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import holoscope.render.sort as sort_mod
from holoscope.core.camera import Camera, look_at
from holoscope.render.sort import SortResult, SortWorker, sort_back_to_front, view_depths

UP = np.array([0.0, 1.0, 0.0])


def view_from(eye, target=(0.0, 0.0, 0.0)) -> np.ndarray:
    return Camera(64, 64, 60.0, look_at(np.array(eye, float), np.array(target, float), UP)).view_matrix


def depth_along(means: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Depth in front of the camera, computed independently in float64 (camera looks down -Z)."""
    cam = (view @ np.c_[means.astype(np.float64), np.ones(len(means))].T).T
    return -cam[:, 2]


def random_means(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (n, 3)).astype(np.float32)


def test_view_depths_positive_in_front() -> None:
    means = np.array([[0, 0, 0], [0, 0, 4], [0, 0, 6]], np.float32)
    view = view_from([0, 0, 5])
    np.testing.assert_allclose(view_depths(means, view), [5, 1, -1], atol=1e-5)


def test_only_splats_in_front_of_near_far_first() -> None:
    means = random_means(5000)
    view = view_from([0.3, 0.5, 1.0])  # inside the cloud: many splats are behind
    near = 0.2
    depth = depth_along(means, view)
    order = sort_back_to_front(means, view, near)
    assert order.dtype == np.uint32
    expected = np.flatnonzero(depth > near + 1e-5)
    borderline = np.flatnonzero(np.abs(depth - near) <= 1e-5)
    assert set(expected) <= set(order.tolist()) <= set(expected) | set(borderline)
    assert len(np.unique(order)) == len(order)
    d = depth[order]
    tol = (d.max() - d.min()) / 65535 + 1e-6
    assert np.all(np.diff(d) <= tol)


def test_matches_argsort_on_separated_depths() -> None:
    n = 1000
    rng = np.random.default_rng(1)
    z = -rng.permutation(n).astype(np.float32) * 0.01 - 1.0  # distinct depths 1.00 .. 10.99
    means = np.c_[rng.uniform(-0.1, 0.1, (n, 2)), z].astype(np.float32)
    view = np.eye(4)  # camera at the origin looking down -Z
    depth = depth_along(means, view)
    order = sort_back_to_front(means, view)
    np.testing.assert_array_equal(order, np.argsort(-depth, kind="stable"))


def test_ties_keep_input_order() -> None:
    means = np.array([[0, 0, -2], [1, 0, -5], [0, 1, -2], [0, 0, -5], [2, 0, -2]], np.float32)
    order = sort_back_to_front(means, np.eye(4))
    np.testing.assert_array_equal(order, [1, 3, 0, 2, 4])


def test_all_same_depth() -> None:
    means = np.c_[np.random.default_rng(2).normal(size=(10, 2)), np.full(10, -3.0)].astype(np.float32)
    np.testing.assert_array_equal(sort_back_to_front(means, np.eye(4)), np.arange(10))


def test_empty_input() -> None:
    order = sort_back_to_front(np.zeros((0, 3), np.float32), np.eye(4))
    assert order.shape == (0,) and order.dtype == np.uint32


def test_all_behind() -> None:
    means = random_means(100) + np.array([0, 0, 10], np.float32)  # camera at origin looks down -Z
    assert sort_back_to_front(means, np.eye(4)).size == 0
    # In front, but all closer than the near plane.
    close = np.array([[0, 0, -0.1], [0, 0, -0.05]], np.float32)
    assert sort_back_to_front(close, np.eye(4), near=0.2).size == 0


# SortWorker ------------------------------------------------------------------------------

MEANS = random_means(20_000, seed=5)


def orbit_views(count: int) -> list[np.ndarray]:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return [view_from([6 * np.cos(a), 1.0, 6 * np.sin(a)]) for a in angles]


def test_worker_newest_request_wins() -> None:
    seen: list[int] = []
    views = orbit_views(30)
    with SortWorker(MEANS, near=0.2, on_result=lambda r: seen.append(r.request_id)) as worker:
        ids = [worker.submit(v) for v in views]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        result = worker.wait(ids[-1], timeout=30)
        assert isinstance(result, SortResult)
        assert result.request_id == ids[-1]
        np.testing.assert_array_equal(result.order, sort_back_to_front(MEANS, views[-1], 0.2))
        assert worker.wait_until_idle(timeout=30)
        assert worker.latest() is result
    # Results arrive in increasing request order and end with the newest one.
    assert seen == sorted(seen) and seen[-1] == ids[-1]
    assert set(seen) <= set(ids)


def test_worker_view_is_copied_on_submit() -> None:
    view = view_from([0, 0, 6])
    expected = sort_back_to_front(MEANS, view, 0.0)
    with SortWorker(MEANS) as worker:
        request = worker.submit(view)
        view[:] = np.nan  # the caller reuses its buffer
        np.testing.assert_array_equal(worker.wait(request, timeout=30).order, expected)


def test_worker_error_is_reraised_then_worker_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sort = sort_mod.sort_back_to_front
    calls = {"n": 0}

    def flaky(means, view, near=0.0):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("sort exploded")
        return real_sort(means, view, near)

    monkeypatch.setattr(sort_mod, "sort_back_to_front", flaky)
    views = orbit_views(2)
    with SortWorker(MEANS) as worker:
        first = worker.submit(views[0])
        with pytest.raises(RuntimeError, match="sort exploded"):
            worker.wait(first, timeout=30)
        assert worker.alive
        assert worker.latest() is None  # the error was handed over once

        second = worker.submit(views[1])
        result = worker.wait(second, timeout=30)
        assert result.request_id == second
        np.testing.assert_array_equal(result.order, real_sort(MEANS, views[1], 0.0))
        assert worker.alive


def test_worker_error_surfaces_through_latest(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = threading.Event()

    def broken(means, view, near=0.0):
        failed.set()
        raise ValueError("bad view")

    monkeypatch.setattr(sort_mod, "sort_back_to_front", broken)
    with SortWorker(MEANS) as worker:
        worker.submit(np.eye(4))
        assert failed.wait(timeout=30)
        assert worker.wait_until_idle(timeout=30)
        with pytest.raises(ValueError, match="bad view"):
            worker.latest()
        assert worker.latest() is None
        assert worker.alive


def test_close_stops_the_thread() -> None:
    worker = SortWorker(MEANS)
    assert worker.alive
    worker.close()
    assert not worker.alive
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(np.eye(4))


def test_wait_times_out_without_requests() -> None:
    with SortWorker(MEANS) as worker:
        with pytest.raises(TimeoutError):
            worker.wait(1, timeout=0.05)
