"""What a command prints about its inputs' problems: ``failed:`` lines and segcli's warnings
(one line each, naming the file), bounded under ``-q``.

``-q`` means errors and warnings only, and a bounded number of them: the first
:data:`QUIET_LINES` ``failed:`` lines and the first :data:`QUIET_LINES` ``warning:`` lines,
then one line counting the rest (every failure is in ``run.json``). Without ``-q`` every
failure and warning gets its line, as it happens.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from segcli.core.errors import SegcliWarning

QUIET_LINES = 10
"""``failed:`` lines (and, apart, ``warning:`` lines) ``-q`` prints; the rest are counted."""
QUIET_FAILURE_LINES = QUIET_LINES


class Messages:
    """One command's failure and warning lines."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.shown = {"failure": 0, "warning": 0}
        self.hidden = {"failure": 0, "warning": 0}
        self._lock = threading.Lock()

    def _line(self, kind: str, show: Callable[[], None]) -> None:
        with self._lock:
            if self.quiet and self.shown[kind] >= QUIET_LINES:
                self.hidden[kind] += 1
                return
            self.shown[kind] += 1
        show()

    def failure(self, show: Callable[[], None]) -> None:
        """One failure; ``show`` prints its line unless ``-q`` printed enough already."""
        self._line("failure", show)

    def warning(self, show: Callable[[], None]) -> None:
        """One warning; ``show`` prints its line unless ``-q`` printed enough already."""
        self._line("warning", show)

    def summary(self) -> str | None:
        """The line about what ``-q`` left out, if anything."""
        parts = [f"{n} more {kind}{'s' if n != 1 else ''}" for kind, n in self.hidden.items() if n]
        if not parts:
            return None
        return (
            f"{' and '.join(parts)} not shown (-q prints the first {QUIET_LINES} of each); "
            "every failure is listed in run.json (batch), or run without -q"
        )


_current: list[Messages] = []


def current() -> Messages:
    """The running command's :class:`Messages` (one that prints everything outside a command)."""
    return _current[-1] if _current else Messages(quiet=False)


@contextmanager
def command_messages(quiet: bool, warn: Callable[[str], None]) -> Iterator[Messages]:
    """For one command: failures through :func:`current`, and every :class:`SegcliWarning`
    (e.g. a photo's corrupt EXIF data, from any thread) printed by ``warn`` as one line, each
    time (not once per place in the code, Python's default), bounded under ``-q``."""
    messages = Messages(quiet)

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, SegcliWarning):
            messages.warning(lambda: warn(str(message)))
            return
        previous(message, category, filename, lineno, file, line)  # type: ignore[arg-type]

    with warnings.catch_warnings():
        previous = warnings.showwarning
        warnings.showwarning = show
        warnings.simplefilter("always", SegcliWarning)
        _current.append(messages)
        try:
            yield messages
        finally:
            _current.remove(messages)


__all__ = ["QUIET_FAILURE_LINES", "QUIET_LINES", "Messages", "command_messages", "current"]
