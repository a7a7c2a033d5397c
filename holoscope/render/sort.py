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
class SortRequest:
    request_id: int
    view: np.ndarray  # [4, 4] world -> camera; never mutated after submission


@dataclass(frozen=True)
class SortResult:
    request_id: int
    order: np.ndarray  # [M] uint32, back to front


class SortWorker:
    """A thread that sorts for the newest requested view only.

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
        self._cond = threading.Condition()
        self._pending: SortRequest | None = None
        self._result: SortResult | None = None
        self._error: BaseException | None = None
        self._next_id = 0
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="holoscope-sort", daemon=True)
        self._thread.start()

    def submit(self, view: np.ndarray) -> int:
        with self._cond:
            if self._closed:
                raise RuntimeError("SortWorker is closed")
            self._next_id += 1
            self._pending = SortRequest(self._next_id, np.array(view, np.float32, copy=True))
            self._cond.notify_all()
            return self._next_id

    def latest(self) -> SortResult | None:
        with self._cond:
            self._raise_pending_error()
            return self._result

    def wait(self, request_id: int, timeout: float | None = None) -> SortResult:
        """Block until a result at least as new as ``request_id`` exists."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._error is not None
                or (self._result is not None and self._result.request_id >= request_id)
                or self._closed,
                timeout,
            )
            self._raise_pending_error()
            if not ok or self._result is None or self._result.request_id < request_id:
                raise TimeoutError(f"sort request {request_id} not finished")
            return self._result

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                request, self._pending = self._pending, None
                self._busy = True
            try:
                order = sort_back_to_front(self._means, request.view, self._near)
                result, error = SortResult(request.request_id, order), None
            except Exception as exc:  # handed to the consumer, the thread lives on
                result, error = None, exc
            with self._cond:
                self._busy = False
                if error is not None:
                    self._error = error
                elif self._result is None or result.request_id > self._result.request_id:
                    self._result = result
                self._cond.notify_all()
            if result is not None and self._on_result is not None:
                self._on_result(result)

    def __enter__(self) -> "SortWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
