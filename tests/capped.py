"""Run a command in a child process under an address-space cap (``ulimit -v``), the way the
hostile-input contract is checked: the decode budget then comes from the cap itself.

The cap is set by tests/hostile/launch.py in a fresh interpreter that then execs the command,
never by a ``preexec_fn``: Python code between fork and exec of the multi-threaded test process
can deadlock on a lock another thread held at fork time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

ADDRESS_SPACE = 2 << 30
LAUNCHER = Path(__file__).resolve().parent / "hostile" / "launch.py"


def capped(argv: Sequence[str | os.PathLike], cap: int | None = ADDRESS_SPACE) -> list[str]:
    """``argv`` behind the launcher (no cap when ``cap`` is None)."""
    limit = str(cap) if cap else str(-1 & 0x7FFFFFFFFFFFFFFF)
    return [sys.executable, str(LAUNCHER), limit, "-", "root", "0", "--", *map(os.fspath, argv)]


def run_capped(argv: Sequence[str | os.PathLike], cap: int | None = ADDRESS_SPACE, **kwargs: Any
               ) -> subprocess.CompletedProcess:  # fmt: skip
    """``subprocess.run`` of ``argv`` under ``cap``; output captured as text unless told
    otherwise, and ``HOLOSCOPE_MAX_MEMORY`` removed so the default budget applies."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    env = dict(kwargs.pop("env", None) or os.environ)
    env.pop("HOLOSCOPE_MAX_MEMORY", None)
    return subprocess.run(capped(argv, cap), env=env, **kwargs)


def holoscope(*args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", "holoscope", *map(os.fspath, args)]
