"""The command line: thin Typer commands that parse, call one library function and print."""

from segcli.cli.root import app, main

__all__ = ["app", "main"]
