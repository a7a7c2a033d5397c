"""One malloc arena: the entry points' allocator setting takes effect where glibc is present."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from holoscope.core.allocator import use_one_malloc_arena


def test_one_arena_is_accepted_by_glibc():
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc only: other C libraries have no mallopt arenas")
    # In a child, as the CLI does it: before any thread, then threads still allocate and free.
    code = ("from holoscope.core.allocator import use_one_malloc_arena as f; import threading, numpy as np\n"
            "assert f()\n"
            "out = []\n"
            "t = threading.Thread(target=lambda: out.append(np.ones(1 << 22)))\n"
            "t.start(); t.join(); print(out.pop().sum())")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == float(1 << 22)


def test_left_alone_once_threads_run():
    import threading

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert use_one_malloc_arena() is False  # other threads already have their arenas
    finally:
        stop.set()
        worker.join()
