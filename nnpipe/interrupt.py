"""Ctrl-C: stop at once, wherever the run is, with one line and exit status 130.

Python turns Ctrl-C into a KeyboardInterrupt raised wherever the main thread happens to be,
which may be inside a library's callback (Numba compiling through llvmlite), where it is
printed as a traceback and turned into another error. So while the command line runs, Ctrl-C
is handled here instead: the progress bar's line is ended, `nnpipe: interrupted` printed, the
temporaries of writes under way removed, and the process exits at once (files already saved
are whole: writes are atomic, and a step that must not be cut in two finishes first).
"""

import contextlib
import os
import signal
import sys
import threading

from nnpipe import progress
from nnpipe.images import atomic

EXIT_STATUS = 130
_AT_STOP = []  # what must end with the run (child processes)


def at_stop(callback):
    """Have `callback()` called when Ctrl-C stops the run."""
    _AT_STOP.append(callback)


def report():
    """End a progress line left open, say so, remove temporaries of writes under way, end
    what must end with the run."""
    progress.end_open_line()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        sys.stderr.write("nnpipe: interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    atomic.remove_in_progress()
    for callback in _AT_STOP:
        callback()


def _on_signal(signum, frame):
    if atomic.in_critical_step():
        atomic.after_critical_step(_stop_now)
        return
    _stop_now()


def _stop_now():
    report()
    os._exit(EXIT_STATUS)


@contextlib.contextmanager
def handled_for_the_program():
    """The whole program: Ctrl-C handled as above from its first import on; once the command
    line has run, ignored. Python resets a handler written in Python to the default one when
    it shuts down, so a Ctrl-C in those last tenths of a second would kill the process (status
    -2, or a traceback from an exit hook) after its work was done and saved; the exit status
    stays the command line's."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a background job, say
        yield
        return
    signal.signal(signal.SIGINT, _on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def handled():
    """Handle Ctrl-C as above inside the block (in the main thread, unless Ctrl-C is ignored)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):  # a background job, say
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
