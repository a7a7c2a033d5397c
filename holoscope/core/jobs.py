"""One background-job pattern for every worker: the newest request wins.

:class:`LatestJob` runs a function on one thread for the newest request only. ``submit``
replaces a request that has not started; a request that is running sees ``ctx.cancelled``
turn true as soon as a newer one (or :meth:`LatestJob.cancel`) arrives, and should return or
raise :class:`~holoscope.core.errors.Cancelled` at its next check. A function may publish
partial results (a coarse image first, then a refined one) with ``ctx.partial(value)``; the
consumer sees them through :meth:`LatestJob.latest` like final ones, marked ``final=False``.

Errors raised by the function are stored and re-raised once, on the consumer side, by the next
:meth:`~LatestJob.latest` or :meth:`~LatestJob.wait`; the thread survives and serves the next
request. Results carry the id of the request that produced them, so a consumer can tell a
result for the view it asked for from an older one.

Threads: the worker only calls ``fn``; all shared state is guarded by one condition variable.
An ``on_result`` callback runs on the worker thread (the GUI uses it to post a repaint).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from holoscope.core.errors import Cancelled

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class JobResult(Generic[Res]):
    request_id: int
    value: Res
    final: bool = True


class JobContext:
    """What a running job can ask: was it superseded, and how to hand over a partial result."""

    def __init__(self, owner: "LatestJob", request_id: int) -> None:
        self._owner = owner
        self.request_id = request_id

    @property
    def cancelled(self) -> bool:
        return self._owner._is_cancelled(self.request_id)

    def check(self) -> None:
        """Raise :class:`Cancelled` if a newer request or a cancel superseded this one."""
        if self.cancelled:
            raise Cancelled("superseded by a newer request")

    def partial(self, value: object) -> None:
        """Publish an intermediate result (ignored once this request is superseded)."""
        self._owner._publish(self.request_id, value, final=False)


class LatestJob(Generic[Req, Res]):
    """Run ``fn(request, ctx)`` on a worker thread for the newest submitted request only."""

    def __init__(self, fn: Callable[[Req, JobContext], Res], *, name: str = "holoscope-job",
                 on_result: Callable[[JobResult[Res]], None] | None = None) -> None:  # fmt: skip
        self._fn = fn
        self._on_result = on_result
        self._cond = threading.Condition()
        self._pending: tuple[int, Req] | None = None
        self._running_id: int | None = None
        self._cancel_below = 0  # requests with a smaller id are cancelled
        self._result: JobResult[Res] | None = None
        self._error: BaseException | None = None
        self._next_id = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- consumer side -------------------------------------------------------------------

    def submit(self, request: Req) -> int:
        """Queue ``request`` (replacing one not yet started); returns its id."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the job worker is closed")
            self._next_id += 1
            self._pending = (self._next_id, request)
            self._cancel_below = self._next_id  # a running older request is superseded
            self._cond.notify_all()
            return self._next_id

    def cancel(self) -> None:
        """Drop the pending request and ask the running one to stop."""
        with self._cond:
            self._pending = None
            self._cancel_below = self._next_id + 1
            self._cond.notify_all()

    def latest(self) -> JobResult[Res] | None:
        """The newest published result (final or partial); re-raises a stored error once."""
        with self._cond:
            self._raise_error()
            return self._result

    def wait(self, request_id: int, timeout: float | None = None, *, final: bool = True) -> JobResult[Res]:
        """Block until a result for ``request_id`` or newer exists (final unless told)."""

        def ready() -> bool:
            r = self._result
            done = r is not None and r.request_id >= request_id and (r.final or not final)
            return done or self._error is not None or self._closed

        with self._cond:
            ok = self._cond.wait_for(ready, timeout)
            self._raise_error()
            r = self._result
            if not ok or r is None or r.request_id < request_id or (final and not r.final):
                raise TimeoutError(f"request {request_id} has not finished")
            return r

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and self._running_id is None, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cancel_below = self._next_id + 1
            self._cond.notify_all()
        if self._thread is not threading.current_thread():  # a job may close its own owner
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        """The worker thread (for diagnostics and tests that check it ends)."""
        return self._thread

    # -- worker side ---------------------------------------------------------------------

    def _is_cancelled(self, request_id: int) -> bool:
        with self._cond:
            return self._closed or request_id < self._cancel_below

    def _publish(self, request_id: int, value: object, *, final: bool) -> None:
        with self._cond:
            if request_id < self._cancel_below and not final:
                return  # a superseded request's partial result would be stale
            if self._result is not None and self._result.request_id > request_id:
                return
            result = JobResult(request_id, value, final)  # type: ignore[arg-type]
            self._result = result
            self._cond.notify_all()
        if self._on_result is not None:
            self._on_result(result)

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                request_id, request = self._pending  # type: ignore[misc]
                self._pending = None
                self._running_id = request_id
            try:
                value = self._fn(request, JobContext(self, request_id))
            except Cancelled:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, thread survives
                with self._cond:
                    if request_id >= self._cancel_below:  # errors of superseded work are moot
                        self._error = exc
                    self._cond.notify_all()
            else:
                if not self._is_cancelled(request_id):
                    self._publish(request_id, value, final=True)
            finally:
                with self._cond:
                    self._running_id = None
                    self._cond.notify_all()
