"""One malloc arena for the whole process (glibc), set by the program's entry points.

glibc gives each thread that allocates its own arena. A decode-ahead thread that reads frames
which the GUI or the exporter then frees leaves the memory in its own arena, and glibc trims
those heaps back to the system, so the next frame faults every page in again. Measured on a
sequence of 150k-splat PLY frames (tests/bench/bench_sequence.py): read-ahead delivered 0.89-0.94x
of a bare loop with the default arenas and 1.02x with one arena. Large numpy buffers are few,
and Python's own small objects do not use malloc's arenas, so sharing one arena costs nothing
measurable here. Elsewhere (no glibc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

M_ARENA_MAX = -8  # glibc's mallopt parameter


def use_one_malloc_arena() -> bool:
    """Ask glibc for a single malloc arena; True when it took effect.

    Only a process that has not started threads yet changes it (the command line at its very
    start): in a process that already runs threads (a test runner calling ``main()``, an
    embedding application) their arenas exist and the setting would only add contention."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt arenas)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1))
