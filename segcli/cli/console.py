"""Printing for the CLI: every line goes through :func:`say` (plain text, one printable line),
errors through :func:`fail`; :func:`cli_errors` turns exceptions into one line and an exit code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.markup import escape

from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.core.exits import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_USAGE

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.text import Text

    from segcli.figures.compare.run import FigureResult
    from segcli.runs.engines.base import ItemResult


def _console(stderr: bool) -> Console:
    from rich.console import Console

    class CliConsole(Console):
        def on_broken_pipe(self) -> None:
            """Rich would exit 1 here; let :func:`cli_errors` end quietly with 141 instead."""
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    return CliConsole(stderr=stderr)


def examples(*lines: str) -> str:
    """A command's epilog: its example command lines under a heading (Rich markup escaped)."""
    return "\n".join(["[bold]Examples[/]", *(f"  [cyan]{escape(line)}[/]" for line in lines)])


@functools.cache
def out_console() -> Console:
    """Rich console on stdout (created on first use: ``--help`` never imports Rich's console)."""
    return _console(stderr=False)


@functools.cache
def err_console() -> Console:
    return _console(stderr=True)


_state = {"debug": False}


# Every line the CLI prints goes through say(): the text is plain (never Rich markup, so a
# path like "[red]x[/].jpg" or "x\\" prints as it is) and shown() makes it one printable line.
def shown(text: object) -> str:
    """``text`` as one printable line: bytes that are not UTF-8 (POSIX names may hold any) as
    ``\\xff``, and newlines, tabs, terminal escapes and other control characters as escapes
    (``\\n``, ``\\x1b``); everything else as it is."""
    raw = str(text)
    if raw.isprintable():
        return raw
    raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in raw)


def plain(text: object, style: str = "") -> Text:
    """A Rich ``Text`` of :func:`shown` ``text``: never parsed as markup (table cells, titles)."""
    from rich.text import Text

    return Text(shown(text), style=style)


def say(text: object, *, console: Console | None = None, label: str = "", style: str = "") -> None:
    """Print ``text`` as one plain line (stdout unless ``console``), after ``label`` in ``style``."""
    from rich.text import Text

    line = Text.assemble((label, style), " ") if label else Text()
    line.append(shown(text))
    (console or out_console()).print(line, highlight=False, soft_wrap=True)


FIELD_OPTIONS = {"weights": "--weights", "semantic_weights": "--semantic-weights", "half": "--half"}
"""The library's field names that its messages use (``pass weights=PATH``) and the options
that set them: the one place the CLI maps fields to option names."""
_FIELD_HINT = re.compile(r"\b(" + "|".join(FIELD_OPTIONS) + r")=(PATH|True)\b")


def cli_message(text: object) -> str:
    """A library message as the CLI says it: ``weights=PATH`` becomes ``--weights PATH``,
    ``half=True`` becomes ``--half``."""

    def option(m: re.Match[str]) -> str:
        flag = FIELD_OPTIONS[m.group(1)]
        return f"{flag} PATH" if m.group(2) == "PATH" else flag

    return _FIELD_HINT.sub(option, str(text))


def fail(text: object, *, console: Console | None = None, label: str = "error:") -> None:
    """``say`` a problem on stderr (or ``console``), after a red label, in the CLI's words."""
    say(cli_message(text), console=console or err_console(), label=label, style="bold red")


def _silence_stdio() -> None:
    """Point stdout and stderr at /dev/null, so that nothing (the final flush included)
    complains about a reader that has gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def write_stdout(data: bytes) -> None:
    """Write ``data`` to stdout now; a closed stdout (``>&-``) is a broken pipe."""
    if sys.stdout is None:
        raise BrokenPipeError(errno.EPIPE, "stdout is closed")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn ``SegcliError`` (and any surprise) into one line on stderr and exit 1 (2 for a
    ``UsageError``); a reader that went away (``| head``) ends the command quietly, 141."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from segcli.cli.failures import command_messages
        from segcli.core.signals import interrupt_exit_code, stop_on_sigterm, terminated

        try:
            try:
                with stop_on_sigterm(), command_messages(bool(kwargs.get("quiet")), _warning) as messages:
                    try:
                        return func(*args, **kwargs)
                    finally:  # -q's bounded failure lines: how many it left out
                        if messages.summary() is not None:
                            say(messages.summary(), console=err_console())
            except (typer.Exit, typer.BadParameter):  # usage errors keep their exit code 2
                raise
            except SegcliError as exc:
                if _state["debug"]:
                    import traceback

                    traceback.print_exc()
                fail(exc, label="usage error:" if isinstance(exc, UsageError) else "error:")
                raise typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED) from None
            except KeyboardInterrupt:
                say("terminated (SIGTERM)" if terminated() else "interrupted", console=err_console())
                raise typer.Exit(interrupt_exit_code()) from None
            except BrokenPipeError:
                raise
            except Exception as exc:
                if _state["debug"]:
                    import traceback

                    traceback.print_exc()
                name, line = type(exc).__name__, first_line(exc)
                detail = f"{name}: {line}" if line != name else name
                fail(f"unexpected {detail} (run with --debug for the traceback)")
                raise typer.Exit(EXIT_FAILED) from None
        except BrokenPipeError:
            _silence_stdio()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None

    return wrapper


def _progress(quiet: bool) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console(),
        disable=quiet or not err_console().is_terminal,
        transient=False,
    )


def _print_failed(console: Console, result: ItemResult) -> None:
    from segcli.cli.failures import current

    current().failure(lambda: fail(result.reason, console=console, label="failed:"))


def _warning(text: str) -> None:
    say(text, console=err_console(), label="warning:", style="yellow")


def _say_loaded(what: str, info: Mapping[str, object], device: object) -> None:
    """One line on stderr: which model (name, architecture, weights) runs on which device."""
    say(
        f"{what} {info['name']} ({info['architecture']}, {info['weights']}) on {device}",
        console=err_console(),
    )


def _report_figure(result: FigureResult, quiet: bool, show: Callable[[dict[str, Any]], None]) -> None:
    """After a one-image figure command: its numbers (``show``), then its files; nothing with
    --quiet (errors only)."""
    if quiet:
        return
    show(result.record)
    say(f"figure: {result.figure_path}")
    say(f"JSON:   {result.json_path}")
