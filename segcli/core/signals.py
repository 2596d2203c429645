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


def terminated() -> bool:
    """Whether a SIGTERM arrived inside the current (or last) :func:`stop_on_sigterm` block."""
    return signal.SIGTERM in _received


def interrupt_exit_code() -> int:
    """143 if the stop came from SIGTERM, else 130."""
    return EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn the first SIGTERM into ``KeyboardInterrupt`` for the block (main thread only)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        first = not _received
        _received.append(signum)
        if first:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
