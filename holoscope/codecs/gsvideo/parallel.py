"""Decoding several video streams of one group side by side.

Each stream's decoder is an iterator of pictures; :func:`advance` moves all of them one picture
on in a shared thread pool (PyAV decodes without holding the GIL), so the streams of a frame
decode in parallel on as many cores as there are. :class:`Lockstep` keeps the next frame's
decodes running while the caller turns the current pictures into splats.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Iterator

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def decode_pool() -> ThreadPoolExecutor:
    """The process's decode threads (created on first use, one per core, at most 8)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)),
                                       thread_name_prefix="holoscope-gsvideo")  # fmt: skip
        return _POOL


def _next_picture(run: Iterator[Any]) -> Any:
    return next(run, None)


def advance(runs: list[Iterator[Any]]) -> list[Any]:
    """The next picture of every run (None where one has ended), decoded side by side. Every
    decode has finished when this returns or raises, so the decoders may then be closed."""
    pool = decode_pool()
    futures = [pool.submit(_next_picture, run) for run in runs]
    wait(futures)
    return [future.result() for future in futures]  # raises the first run's error, in stream order


class Lockstep:
    """Pictures of all runs, frame after frame, with the next frame's decodes already running
    while the caller works on the current one. :meth:`close` waits for decodes in flight."""

    def __init__(self, runs: list[Iterator[Any]]) -> None:
        self.runs = runs
        self._pending: list[Future] | None = None

    def _submit(self) -> None:
        pool = decode_pool()
        self._pending = [pool.submit(_next_picture, run) for run in self.runs]

    def next(self) -> list[Any]:
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
        if self._pending is not None:
            wait(self._pending)
            self._pending = None
