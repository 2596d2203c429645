"""The ``segcli`` Typer app itself: its group class (global options after the command too),
the root callback (``--debug``, ``--version``). Commands register into it from their modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from segcli import __version__
from segcli.cli.console import _state, say
from segcli.cli.options import (
    SuggestingGroup,
)

if TYPE_CHECKING:
    from typer import _click as click  # only for annotations: typer >= 0.25 vendors its own click


GLOBAL_OPTIONS = ("--debug", "--version")
COMMAND_ORDER = ("predict", "batch", "eval", "train", "models", "classes", "demo", "explain", "compare")
"""How ``segcli --help`` lists the commands."""


class RootGroup(SuggestingGroup):
    """The ``segcli`` group: ``--debug`` and ``--version`` work after the command too
    (``segcli predict x.jpg --debug``); they are moved in front of it before parsing. An
    argument after ``--`` is never moved (a file called ``--debug``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        moved = [a for a in args[:end] if a in GLOBAL_OPTIONS]
        if moved:
            args = moved + [a for a in args[:end] if a not in GLOBAL_OPTIONS] + args[end:]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The commands in :data:`COMMAND_ORDER` (their modules register in import order)."""
        names = super().list_commands(ctx)
        return sorted(
            names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER)
        )


app = typer.Typer(
    name="segcli",
    cls=RootGroup,
    help="Instance segmentation from the command line (torchvision Mask R-CNN).",
    epilog="Start with [bold]segcli demo[/] (offline, bundled model), then "
    "[bold]segcli predict --help[/]. [bold]segcli models[/] lists the models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        say(f"segcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _state["debug"] = debug
