"""SIGTERM handled like Ctrl-C: what ``kill``, systemd and Kubernetes send to stop a process.

Inside :func:`stop_on_sigterm` the first SIGTERM raises ``KeyboardInterrupt`` in the main
thread, so a run stops the way Ctrl-C stops it (writes already started are finished,
``run.json`` says ``interrupted``); further SIGTERMs are ignored while it finishes. The
command line then exits with :data:`EXIT_TERMINATED` (128 + 15, the shell's convention).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from segcli.core.exits import EXIT_INTERRUPTED, EXIT_TERMINATED

_received: list[int] = []
_active: list[bool] = []
"""Non-empty while a :func:`stop_on_sigterm` block runs (in the main thread)."""


def terminated() -> bool:
    """Whether a SIGTERM arrived inside the current (or last) :func:`stop_on_sigterm` block."""
    return signal.SIGTERM in _received


def stop_requested() -> bool:
    """Whether a SIGTERM or Ctrl-C arrived inside the current :func:`stop_on_sigterm` block.

    Code that turns an error into one input's failure asks this first: C libraries that do
    not retry an interrupted system call (FFmpeg opening a file) report the signal as an
    error of the file (``Interrupted system call``), and may swallow the
    ``KeyboardInterrupt`` meant for the run; such a failure is the stop, not the input's.
    Outside such a block (the library on its own) it is False: an earlier command's signal
    says nothing about this run."""
    return bool(_active) and bool(_received)


def interrupt_exit_code() -> int:
    """143 if the stop came from SIGTERM, else 130."""
    return EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn the first SIGTERM into ``KeyboardInterrupt`` for the block (main thread only), and
    record Ctrl-C (raised as Python's own handler does, where that handler is installed) so
    that :func:`stop_requested` knows of both."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        first = not _received
        _received.append(signum)
        if first:
            raise KeyboardInterrupt

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        _received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:  # not where SIGINT is ignored (a background job)
        signal.signal(signal.SIGINT, on_sigint)
    _active.append(True)
    try:
        yield
    finally:
        _active.pop()
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


def uninterrupted(step: Callable[[], object]) -> bool:
    """Run ``step`` to its end even if Ctrl-C (or SIGTERM, see :func:`stop_on_sigterm`)
    interrupts it: it is started again, so it must be short and idempotent. True if an
    interrupt came meanwhile (the caller reports it once the step is done)."""
    interrupted = False
    while True:
        try:
            step()
        except KeyboardInterrupt:
            interrupted = True
            continue
        return interrupted


def record_signal(signum: int) -> None:
    """Note a signal that a caller handled itself (e.g. a SIGTERM it deferred to the end of a
    training step), so that :func:`terminated` and :func:`interrupt_exit_code` report it."""
    _received.append(signum)
