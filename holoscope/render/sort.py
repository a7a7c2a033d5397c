"""Depth sorting for back-to-front splat blending, off the render path.

``sort_back_to_front`` quantises view depth to 16-bit keys and uses numpy's stable sort, which
is an LSD radix sort for 16-bit integers (see tests/bench for how it compares with
``argsort`` on float depths). ``SortWorker`` runs it on a thread where only the newest requested view is sorted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from holoscope.core.jobs import JobContext, JobResult, LatestJob

KEY_BITS = 16
CULLED_KEY = 2**KEY_BITS - 1


def view_depths(means: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Distance along the viewing direction (positive in front) for OpenGL view matrices."""
    row = -np.asarray(view, np.float32)[2]
    return means @ row[:3] + row[3]


def sort_back_to_front(means: np.ndarray, view: np.ndarray, near: float = 0.0) -> np.ndarray:
    """uint32 indices of the splats in front of ``near``, farthest first.

    Visible splats get keys 0..65534 (far to near); culled ones get 65535, so after one stable
    radix sort of all keys the visible splats are exactly the leading prefix: no mask gathers.
    Splats in the same 16-bit depth bucket keep their input order.
    """
    depth = view_depths(means, view)
    visible = depth > near
    n_visible = int(np.count_nonzero(visible))
    if n_visible == 0:
        return np.zeros(0, np.uint32)
    all_visible = n_visible == depth.size
    in_front = depth if all_visible else depth[visible]
    lo, hi = float(in_front.min()), float(in_front.max())
    scale = np.float32((CULLED_KEY - 1) / (hi - lo) if hi > lo else 0.0)
    scaled = np.subtract(np.float32(hi), depth, dtype=np.float32)
    scaled *= scale
    np.clip(scaled, 0, CULLED_KEY - 1, out=scaled)  # float32 rounding must not reach the culled key
    keys = scaled.astype(np.uint16)
    if not all_visible:
        np.putmask(keys, ~visible, CULLED_KEY)
    order = np.argsort(keys, kind="stable")  # LSD radix sort for 16-bit integers
    return order[:n_visible].astype(np.uint32)


@dataclass(frozen=True)
class SortResult:
    request_id: int
    order: np.ndarray  # [M] uint32, back to front


class SortWorker:
    """Sorts for the newest requested view only, on the one background-job pattern
    (:class:`~holoscope.core.jobs.LatestJob`).

    ``submit`` replaces any request that has not started yet (the newest request wins);
    ``latest`` returns the most recent finished result. An exception raised while sorting is
    re-raised by the next ``latest``/``wait`` call on the consumer side, and the worker keeps
    serving later requests.
    """

    def __init__(
        self,
        means: np.ndarray,
        *,
        near: float = 0.0,
        on_result: Callable[[SortResult], None] | None = None,
    ) -> None:
        self._means = means
        self._near = near
        self._on_result = on_result
        self._last: tuple[JobResult[np.ndarray], SortResult] | None = None
        self._wrap_lock = threading.Lock()
        self._job: LatestJob[np.ndarray, np.ndarray] = LatestJob(
            self._sort, name="holoscope-sort", on_result=self._deliver if on_result is not None else None
        )

    def _wrap(self, result: JobResult[np.ndarray]) -> SortResult:
        # The same job result gives the same SortResult object, as consumers compare them.
        with self._wrap_lock:  # called from the worker (on_result) and the consumer
            last = self._last
            if last is None or last[0] is not result:
                last = self._last = (result, SortResult(result.request_id, result.value))
            return last[1]

    def _sort(self, view: np.ndarray, ctx: JobContext) -> np.ndarray:
        return sort_back_to_front(self._means, view, self._near)

    def _deliver(self, result: JobResult[np.ndarray]) -> None:
        assert self._on_result is not None
        self._on_result(self._wrap(result))

    def submit(self, view: np.ndarray) -> int:
        # A copy: the caller's matrix may change after submission.
        return self._job.submit(np.array(view, np.float32, copy=True))

    def latest(self) -> SortResult | None:
        result = self._job.latest()
        return None if result is None else self._wrap(result)

    def wait(self, request_id: int, timeout: float | None = None) -> SortResult:
        """Block until a result at least as new as ``request_id`` exists."""
        try:
            result = self._job.wait(request_id, timeout)
        except TimeoutError:
            raise TimeoutError(f"sort request {request_id} not finished") from None
        return self._wrap(result)

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        return self._job.wait_until_idle(timeout)

    def close(self) -> None:
        self._job.close()

    @property
    def alive(self) -> bool:
        return self._job.alive

    def __enter__(self) -> "SortWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
