"""Decode-ahead for timed media: the worker behind the desktop app's timeline (Qt-free).

:class:`FramePrefetcher` runs one thread that decodes sequentially with
``media.frames_from(start)`` into a bounded queue. A full queue blocks the decoder
(backpressure), so at most ``capacity`` frames are held. The consumer (the GUI thread, on a
timer) calls :meth:`FramePrefetcher.take`, which never blocks; tests and exporters use the
blocking :meth:`FramePrefetcher.wait_for`.

Seeking follows the same rule as the depth-sort worker (``render/sort.py``): the newest request
wins. :meth:`FramePrefetcher.seek` bumps a generation counter, flushes the queue and cancels the
decode run in progress at its next frame; frames of an older generation are never queued, so a
consumer cannot see a stale frame after a seek.

An exception raised by the media while decoding is stored and raised, once, by the consumer's
next :meth:`~FramePrefetcher.take` or :meth:`~FramePrefetcher.wait_for` that the queue cannot
serve (frames decoded before the failure are still delivered). The thread survives; the next
:meth:`~FramePrefetcher.seek` starts a fresh run.

:class:`~holoscope.core.player.Player` joins it with the presentation clock for playback and
export.

Threads: the worker only calls ``media.frames_from`` (the media guards its own decoder); all
shared state here is guarded by one condition variable.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Iterator

from holoscope.core.frames import frame_nbytes
from holoscope.core.jobs import JobContext, LatestJob
from holoscope.core.media import Media

_TIMING_WINDOW = 32  # frames in the decode-time moving average


class FramePrefetcher:
    """Sequential decode-ahead of ``media`` into a queue of at most ``capacity`` frames.

    ``start`` is where decoding begins right away (``None``: wait for the first :meth:`seek`).
    Frames are the :class:`~holoscope.core.frames.Frame` envelopes ``media.frames_from``
    yields, passed through untouched (their ``index`` places them; anything without one is
    counted from the run's start). The byte budget measures the payloads.

    A medium whose ``frame_count`` is ``None`` (a stream) is never range-checked against a
    count: a run ends where ``frames_from`` stops, and :attr:`end` then holds the frame count.

    Counters for the info panel: ``frames_decoded`` (frames the worker queued),
    ``frames_dropped`` (late frames :meth:`take` discarded), ``frames_flushed`` (queued frames a
    seek threw away) and ``decode_ms`` (moving average of the time per frame).
    """

    def __init__(self, media: Media, capacity: int = 4, *, start: int | None = 0, name: str = "holoscope-prefetch",
                 max_bytes: int | None = None, size_of: Callable[[Any], int] = frame_nbytes) -> None:  # fmt: skip
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.media = media
        self.capacity = int(capacity)
        # A memory budget for what the queue holds (frames of a splat sequence differ in size, so
        # a count alone does not bound memory). One frame is always allowed, however large.
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._queued_bytes = 0
        self.peak_queued_bytes = 0
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[int, Any, int]] = collections.deque()  # index, frame, bytes
        self._generation = 0
        self._start: int | None = None  # start index of the requested run
        self._run_generation = -1  # generation the worker last started
        self._running = False  # a run of the current generation is decoding (or blocked)
        self._next_index = 0  # index the current run will produce next
        self._error: BaseException | None = None
        self._closed = False
        self._blocked = -1  # the generation of the run waiting for room in a full queue (-1: none)
        self._end: int | None = None  # frame count learnt at the end of a stream
        self._end_at_most: int | None = None  # a run from here found nothing: the end is at or before
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.frames_flushed = 0
        self._times: collections.deque[float] = collections.deque(maxlen=_TIMING_WINDOW)
        # The decode runs on the one background-job pattern: a seek submits a new run, which
        # supersedes the one in progress (newest wins); the generation counter keeps the queue
        # free of frames from a superseded run.
        self._job: LatestJob[tuple[int, int], None] = LatestJob(self._run_request, name=name)
        if start is not None:
            self._check_index(start)
            self._start = start
            self._next_index = start
            self._generation = 1
            self._job.submit((1, start))

    # -- consumer side (any thread; normally the GUI thread) ------------------------------------

    def seek(self, index: int) -> None:
        """Restart decoding at ``index``; the newest request wins, queued frames are flushed."""
        self._check_index(index)
        with self._cond:
            self._check_open()
            self._generation += 1
            self._start = index
            self._next_index = index
            self.frames_flushed += len(self._queue)
            self._clear_queue()
            self._error = None  # it belonged to the run this seek replaces
            self._running = False
            self._cond.notify_all()
            self._job.submit((self._generation, index))

    def take(self, index: int) -> Any | None:
        """The frame for ``index`` if it is decoded, else ``None``; never blocks.

        Queued frames older than ``index`` are late: they are discarded and counted in
        ``frames_dropped``. A stored worker exception is raised here when the queue cannot
        serve ``index``.
        """
        with self._cond:
            self._check_open()
            frame = self._pop(index)
            if frame is None and self._error is not None:
                self._raise_error()
            return frame

    def wait_for(self, index: int, timeout: float | None = None) -> Any:
        """Block until frame ``index`` is decoded and return it (for tests and export).

        Raises the worker's exception if decoding fails, :class:`TimeoutError` after
        ``timeout`` seconds and :class:`LookupError` when the current run will never produce
        ``index`` (it starts after it, or it ended first): seek before waiting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._check_open()
                frame = self._pop(index)
                if frame is not None:
                    return frame
                if self._error is not None:
                    self._raise_error()
                if self._start is None or index < self._queue_head() or not self._run_can_reach(index):
                    raise LookupError(f"frame {index} is not coming: the decoder is at frame "
                                      f"{self._queue_head()}; seek first")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"frame {index} was not decoded within {timeout} s")
                self._cond.wait(remaining)

    def wait_ready(self, index: int, timeout: float | None = None) -> bool:
        """Block until frame ``index`` is queued, without taking it (a watcher thread, e.g. the
        video view's first-frame wait, then asks the consumer to :meth:`take` it).

        True when it is queued; False when the worker failed (the error stays stored for the
        consumer's next :meth:`take`) or after ``timeout`` seconds. Raises :class:`LookupError`
        when the current run will never produce ``index`` and :class:`RuntimeError` once closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._check_open()
                if any(i == index for i, _, _ in self._queue):
                    return True
                if self._error is not None:
                    return False
                if self._start is None or index < self._queue_head() or not self._run_can_reach(index):
                    raise LookupError(f"frame {index} is not coming: the decoder is at frame {self._queue_head()}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def covers(self, index: int, max_gap: int = 30) -> bool:
        """Whether ``index`` will be served without a seek: it lies at or after the next frame
        the queue holds or the decoder will produce, at most ``max_gap`` frames ahead, and the
        current run has not ended before it."""
        with self._cond:
            if self._start is None or self._error is not None:
                return False
            head = self._queue_head()
            return head <= index <= head + max_gap and self._run_can_reach(index)

    @property
    def position(self) -> int | None:
        """Index of the next frame the consumer can get from this run (``None`` before a seek)."""
        with self._cond:
            return None if self._start is None else self._queue_head()

    @property
    def end(self) -> int | None:
        """The number of frames: the media's count, or for a stream the count a run found when
        it reached the end (``None`` until then)."""
        if self.media.frame_count is not None:
            return self.media.frame_count
        with self._cond:
            return self._end

    @property
    def end_at_most(self) -> int | None:
        """An upper bound of the frame count: :attr:`end` when known, else the lowest start of
        a run that found no frame (``None`` when nothing is known)."""
        end = self.end
        if end is not None:
            return end
        with self._cond:
            return self._end_at_most

    def ahead(self, index: int) -> tuple[int, bool]:
        """``(frames, ended)``: how many decoded frames from ``index`` on the queue holds in an
        unbroken run (what the player can show without waiting), and whether nothing more will
        come until the consumer takes a frame (the run reached the end of the medium or failed,
        or the queue is full: the byte budget may hold fewer frames than the player would like
        to wait for). The player's streaming buffer is measured with this."""
        with self._cond:
            count, expected = 0, index
            for i, _, _ in self._queue:
                if i < expected:
                    continue
                if i != expected:
                    break
                count += 1
                expected += 1
            finished = self._run_generation == self._generation and not self._running
            return count, finished or self._blocked == self._generation or self._error is not None

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def decode_ms(self) -> float:
        """Moving average of the decode time per frame, in milliseconds (0 before any frame)."""
        with self._cond:
            return 1000.0 * sum(self._times) / len(self._times) if self._times else 0.0

    @property
    def alive(self) -> bool:
        return self._job.alive and not self._closed

    @property
    def thread(self) -> threading.Thread:
        """The decode worker's thread (the job's)."""
        return self._job.thread

    def stats(self) -> dict[str, Any]:
        """Counters for the info panel."""
        with self._cond:
            avg = 1000.0 * sum(self._times) / len(self._times) if self._times else 0.0
            return {
                "frames_decoded": self.frames_decoded,
                "frames_dropped": self.frames_dropped,
                "frames_flushed": self.frames_flushed,
                "queued": len(self._queue),
                "queued_bytes": self._queued_bytes,
                "peak_queued_bytes": self.peak_queued_bytes,
                "capacity": self.capacity,
                "max_bytes": self.max_bytes,
                "decode_ms": round(avg, 3),
            }

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker and join it (it finishes the frame it is decoding). Idempotent."""
        with self._cond:
            self._closed = True
            self._clear_queue()
            self._cond.notify_all()
        self._job.close(5.0 if timeout is None else timeout)

    def __enter__(self) -> FramePrefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals (call with the condition held) -----------------------------------------------

    def _check_index(self, index: int) -> None:
        count = self.media.frame_count if self.media.frame_count is not None else self._end
        if index < 0:
            raise IndexError(f"frame {index} is before the start")
        if count is not None and index >= count:
            raise IndexError(f"frame {index} out of range 0..{count - 1}")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the frame prefetcher is closed")

    def _pop(self, index: int) -> Any | None:
        queue = self._queue
        while queue and queue[0][0] < index:
            self._popleft()
            self.frames_dropped += 1
            self._cond.notify_all()  # room for the decoder
        if queue and queue[0][0] == index:
            self._cond.notify_all()
            return self._popleft()
        return None

    def _popleft(self) -> Any:
        _, frame, size = self._queue.popleft()
        self._queued_bytes -= size
        return frame

    def _clear_queue(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0

    def _full(self, incoming: int) -> bool:
        if len(self._queue) >= self.capacity:
            return True
        return bool(self.max_bytes is not None and self._queue and self._queued_bytes + incoming > self.max_bytes)

    def _queue_head(self) -> int:
        return self._queue[0][0] if self._queue else self._next_index

    def _run_can_reach(self, index: int) -> bool:
        # A run that has finished (end of media) produces nothing more.
        if self._run_generation == self._generation and not self._running:
            return bool(self._queue) and self._queue[-1][0] >= index
        count = self.media.frame_count if self.media.frame_count is not None else self._end
        return count is None or index < count

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        assert error is not None
        raise error

    # -- worker ----------------------------------------------------------------------------------

    def _run_request(self, request: tuple[int, int], ctx: JobContext) -> None:
        """One decode run, on the job's thread; a newer seek has superseded it if the
        generation moved on (then it stops at its next frame)."""
        generation, start = request
        with self._cond:
            if self._closed or generation != self._generation:
                return
            self._run_generation = generation
            self._running = True
        self._run(generation, start)

    def _run(self, generation: int, start: int) -> None:
        frames: Iterator[Any] | None = None
        expected = start
        try:
            frames = iter(self.media.frames_from(start))
            while True:
                t0 = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    with self._cond:
                        if expected > start or start == 0:  # the end of the media is frame ``expected``
                            if self._end is None or expected > self._end:
                                self._end = expected
                        elif self._end_at_most is None or start < self._end_at_most:
                            self._end_at_most = start  # started past the end: it lies at or before
                    break
                elapsed = time.perf_counter() - t0
                index = getattr(frame, "index", expected)
                size = self._size_of(frame)
                with self._cond:
                    if not self._accept(generation):
                        return
                    while self._full(size):
                        self._blocked = generation
                        self._cond.wait()
                        self._blocked = -1
                        if not self._accept(generation):
                            return
                    self._queue.append((index, frame, size))
                    self._queued_bytes += size
                    self.peak_queued_bytes = max(self.peak_queued_bytes, self._queued_bytes)
                    self._next_index = index + 1
                    self.frames_decoded += 1
                    self._times.append(elapsed)
                    self._cond.notify_all()
                expected = index + 1
        except BaseException as exc:  # stored for the consumer; the thread lives on
            with self._cond:
                if self._accept(generation):
                    self._error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            if frames is not None and hasattr(frames, "close"):
                try:
                    frames.close()  # release the decoder position promptly
                except Exception:
                    pass
            with self._cond:
                if self._generation == generation:
                    self._running = False
                self._cond.notify_all()

    def _accept(self, generation: int) -> bool:
        return not self._closed and generation == self._generation
