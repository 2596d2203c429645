"""The ``segcli`` command line: thin commands over the library, one module per command family.

:mod:`.group` holds the Typer app; each command module registers into it on import, and this
module imports them all, in the order ``--help`` lists them. Nothing here imports torch at
module level, so ``segcli --help`` stays fast.
"""

from __future__ import annotations

import os

from segcli.cli import batch, compare, demo, eval, explain, models, predict, train  # noqa: F401  (registration)
from segcli.cli.group import app
from segcli.cli.runtime import Runtime

__all__ = ["app", "main"]


def main(runtime: Runtime | None = None) -> None:
    """The ``segcli`` entry point (``runtime``: the seam, see :mod:`segcli.cli.runtime`). A
    standard stream closed at start (``>&-``) is pointed at
    /dev/null first, so that no file segcli opens takes its number."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
    # one name however it starts (the script or python -m segcli): usage lines and the
    # shell completion (--install-completion, _SEGCLI_COMPLETE) say "segcli"
    app(prog_name="segcli", obj=runtime)
