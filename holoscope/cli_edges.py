"""The edges of the command-line process: how every ending looks to the user.

- argparse errors come out as one ``holoscope: error:`` line (:class:`OneLineParser`);
- SIGTERM and SIGHUP raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so
  every cleanup (atomic outputs, frame sinks) runs as for Ctrl+C, and the exit code is 128+n;
  after the first signal further ones are ignored through cleanup and shutdown;
- standard output goes through :func:`emit`: a reader that went away ends the command quietly
  with 141 (as ``SIGPIPE`` would), a full or closed stdout is one line and exit 2;
- warnings (numpy's on extreme values) stay off the terminal unless ``--debug``;
- :func:`report` maps whatever reached the top to one line and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any, Iterator

from holoscope.core.errors import HoloscopeError, InvalidArgument, OutputError, display_path

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, what shells report for `cmd | head`


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one ``holoscope: error:`` line (exit 2),
    not a usage block: every error holoscope prints has the same shape."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidArgument(f"{message} (see: {self.prog} --help)")


class OneLineWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say(f"holoscope: {record.levelname.lower()}: {record.getMessage()}")


class StdoutClosed(Exception):
    """Whoever read our standard output has gone (``holoscope info x | head -0``)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM / SIGHUP, raised in the main thread so that cleanup runs exactly as for Ctrl+C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def emit(text: str) -> None:
    """One line to standard output, flushed, so a closed pipe or a full disk is noticed here."""
    if sys.stdout is None:  # started with standard output closed (`holoscope info x >&-`)
        raise OutputError("cannot write to standard output: it is closed")
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise StdoutClosed() from exc
    except OSError as exc:
        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from exc


def say(text: str) -> None:
    """One line to standard error; if even that is gone, there is nobody left to tell."""
    if sys.stderr is None:  # print(file=None) would write to stdout instead
        return
    try:
        print(" ".join(text.split("\n")), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def printable_streams() -> None:
    # Names with non-UTF-8 bytes must never crash a print (UnicodeEncodeError) after the work
    # is done; a stream that cannot show a character shows an escape instead.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def _silence_stdout() -> None:
    # The reader is gone: point fd 1 at /dev/null so the interpreter's final flush is quiet.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def process_edges(debug: bool, *, signals: bool = True) -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl+C (commands only: the GUI's event loop would turn the
    exception into a traceback); warnings stay off the terminal unless ``--debug``.

    After the first of SIGINT/SIGTERM/SIGHUP the others are ignored for good: a second Ctrl+C
    must interrupt neither the cleanup nor the interpreter's shutdown (where it would print
    "Exception ignored in ..." tracebacks from finalisers)."""
    previous: dict[int, Any] = {}
    interrupted = False

    def ignore_all() -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        ignore_all()
        raise Terminated(signum)

    def on_interrupt(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        ignore_all()
        raise KeyboardInterrupt

    if signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, on_signal)
        # Ctrl+C keeps Python's meaning (KeyboardInterrupt) unless the parent ignores it.
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")  # numpy RuntimeWarnings on extreme values
            yield
    finally:
        if not interrupted:  # an interrupted command exits now: stay deaf to more signals
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        from holoscope.core import budget

        budget.set_limit(None)


def report(exc: BaseException, debug: bool) -> int:
    """The exit code for an exception that reached the top, after one line on stderr."""
    if isinstance(exc, StdoutClosed):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(exc, Terminated):
        say(f"holoscope: terminated by {signal.Signals(exc.signum).name}; partial output removed")
        return 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        say("holoscope: interrupted; partial output removed")
        return EXIT_INTERRUPTED
    if debug:
        raise exc
    if isinstance(exc, HoloscopeError):
        say(f"holoscope: error: {exc}")
        return EXIT_BAD_INPUT
    if isinstance(exc, MemoryError):
        # The budget is worked out before a decode; this is the last resort when an estimate
        # fell short. The budget *now* would mislead (memory is nearly exhausted), so none is quoted.
        say("holoscope: error: out of memory while decoding; set a lower --max-memory so that "
             "files too large for this machine are refused up front")  # fmt: skip
        return EXIT_BAD_INPUT
    if isinstance(exc, OSError):  # an I/O failure nobody mapped: still the user's file, one line
        name = f"{display_path(exc.filename)}: " if exc.filename else ""
        say(f"holoscope: error: {name}{exc.strerror or exc}")
        return EXIT_BAD_INPUT
    say(f"holoscope: internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
    return EXIT_INTERNAL
