"""Decoding the video streams of one group side by side.

Each stream's decoder is an iterator of pictures. :class:`Lockstep` advances every one of
them in a thread pool of its own (PyAV decodes without holding the GIL) and hands out the
pictures frame by frame. There is no barrier between frames: as soon as a stream's picture
of frame t is done, its decode of frame t+1 is queued (up to ``ahead`` frames past the one
the caller is waiting for), so a thread that finished a light stream goes on with the next
frame instead of waiting for the heaviest stream. The pool lives as long as the group's
decode: :meth:`Lockstep.close` (when a group ends, fails or is abandoned) waits for decodes
in flight and stops its threads, so no decode thread outlives the medium that started it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

MAX_THREADS = 8


class Lockstep:
    """Pictures of all runs, frame after frame (None for a run that has ended)."""

    def __init__(self, runs: list[Iterator[Any]], name: str = "holoscope-gsvideo", ahead: int = 2) -> None:
        self.runs = runs
        self.ahead = max(1, ahead)
        workers = max(1, min(len(runs), os.cpu_count() or 1, MAX_THREADS))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Condition()
        self._results: dict[int, list[Future | None]] = {}  # frame -> one future per run
        self._submitted = [-1] * len(runs)  # last frame submitted, per run
        self._busy = [False] * len(runs)  # a run has a decode in flight (one at a time)
        self._ended = [False] * len(runs)
        self._wanted = 0  # the frame the caller waits for next
        self._closed = False

    def _fill(self) -> None:
        """Queue each idle run's next frame, within ``ahead`` frames of the one wanted (lock held)."""
        for i in range(len(self.runs)):
            frame = self._submitted[i] + 1
            if self._busy[i] or self._ended[i] or self._closed or frame >= self._wanted + self.ahead:
                continue
            future = self._pool.submit(next, self.runs[i], None)
            self._busy[i], self._submitted[i] = True, frame
            self._results.setdefault(frame, [None] * len(self.runs))[i] = future
            future.add_done_callback(lambda f, i=i: self._done(i, f))

    def _done(self, run: int, future: Future) -> None:
        with self._lock:
            self._busy[run] = False
            if future.cancelled() or future.exception() is not None or future.result() is None:
                self._ended[run] = True  # no more decodes of a run that failed or ended
            self._fill()
            self._lock.notify_all()

    def next(self) -> list[Any]:
        """The next picture of every run; raises the first run's error (in run order)."""
        with self._lock:
            frame = self._wanted
            self._fill()
            # Every run has this frame's decode queued, or has ended before it (a run's next
            # decode is queued by the callback of its previous one, which may not have run yet).
            while not all(self._submitted[i] >= frame or self._ended[i] for i in range(len(self.runs))):
                self._lock.wait()
            futures = self._results.get(frame, [None] * len(self.runs))
        pictures = []
        for i, future in enumerate(futures):
            if future is None:  # a run that ended before this frame
                pictures.append(None)
                continue
            pictures.append(future.result())  # raises that run's error
        with self._lock:
            self._results.pop(frame, None)
            self._wanted = frame + 1
            self._fill()
        return pictures

    def close(self) -> None:
        """Wait for decodes in flight (so the decoders may be closed) and stop the threads."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)  # decodes queued ahead are dropped
        self._results.clear()

    def __enter__(self) -> "Lockstep":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
