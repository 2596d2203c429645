"""The exception types the CLI turns into a one-line error: exit code 1, or 2 for usage errors."""

from __future__ import annotations


class SegcliError(Exception):
    """A problem the user can fix: bad input, missing weights, bad option values.

    Its message is shown as one line, without a traceback.
    """


class UsageError(SegcliError):
    """A bad command line: an option value out of range, an unknown name, the wrong kind of
    path. The CLI exits 2, and checks all of these before any model loads."""


class SegcliWarning(UserWarning):
    """Something the user should know about one input that does not stop it (a photo's
    corrupt EXIF data): the CLI prints it as one line naming the file."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
