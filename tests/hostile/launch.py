"""Start one hostile-input command in the conditions a case asks for, then exec it.

Run as ``python launch.py AS_LIMIT UMASK USER CLOSE_STDOUT -- command ...``. Doing this set-up
in a fresh interpreter instead of a ``preexec_fn`` keeps Python code out of the window between
fork and exec of the (multi-threaded) test process, where a lock held by another thread at fork
time can deadlock the child.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

NOBODY = 65534


def _drop_dac_capabilities() -> None:
    """Root keeps its uid but loses CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH across the exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def main(argv: list[str]) -> None:
    limit, umask, user, close_stdout, sep, *command = argv
    assert sep == "--" and command
    # A shell that started the tests in the background ignores SIGINT, and children inherit
    # that: give the command the dispositions a user's terminal would.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    if umask != "-":
        os.umask(int(umask, 8))
    if user == "nobody":
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    elif user == "nocaps":
        _drop_dac_capabilities()
    # Below the test runner's priority: several renders at once must not starve the loop that
    # times them out and sends their signals (seen here as a 10 ms sleep taking seconds).
    os.nice(10)
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    if close_stdout == "1":
        os.close(1)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
