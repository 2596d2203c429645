"""The command line: thin Typer commands that parse, call one library function and print."""

from segcli.cli.fasthelp import defer_unused_rich_modules

defer_unused_rich_modules()  # before typer's help renderer is imported: see segcli.cli.fasthelp

from segcli.cli.root import app, main  # noqa: E402

__all__ = ["app", "main"]
