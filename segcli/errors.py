"""The one exception type the CLI turns into a one-line error and exit code 1."""

from __future__ import annotations


class SegcliError(Exception):
    """A problem the user can fix: bad input, missing weights, bad option values.

    Its message is shown as one line, without a traceback.
    """
