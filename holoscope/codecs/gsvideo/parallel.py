"""Decoding the video streams of one group side by side.

Each stream's decoder is an iterator of pictures. :class:`Lockstep` moves all of them one
picture on at a time in a thread pool of its own (PyAV decodes without holding the GIL), and
keeps the next frame's decodes running while the caller turns the current pictures into
splats. The pool lives as long as the group's decode: :meth:`Lockstep.close` (called when a
group ends, fails or is abandoned) waits for decodes in flight and stops its threads, so no
decode thread outlives the medium that started it.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Iterator

MAX_THREADS = 8


def _next_picture(run: Iterator[Any]) -> Any:
    return next(run, None)


class Lockstep:
    """Pictures of all runs, frame after frame (None for a run that has ended)."""

    def __init__(self, runs: list[Iterator[Any]], name: str = "holoscope-gsvideo") -> None:
        self.runs = runs
        workers = max(1, min(len(runs), os.cpu_count() or 1, MAX_THREADS))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending: list[Future] | None = None

    def _submit(self) -> None:
        self._pending = [self._pool.submit(_next_picture, run) for run in self.runs]

    def next(self) -> list[Any]:
        """The next picture of every run; raises the first run's error (in run order)."""
        if self._pending is None:
            self._submit()
        pending = self._pending
        assert pending is not None
        wait(pending)
        self._pending = None
        pictures = [f.result() for f in pending]
        if all(p is not None for p in pictures):
            self._submit()  # decode frame t+1 while the caller dequantises frame t
        return pictures

    def close(self) -> None:
        """Wait for decodes in flight (so the decoders may be closed) and stop the threads."""
        if self._pending is not None:
            wait(self._pending)
            self._pending = None
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Lockstep":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
