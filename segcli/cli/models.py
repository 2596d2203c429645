"""``segcli models`` and ``segcli classes``: answered from the registry's data (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segcli.cli.console import cli_errors, examples, out_console, plain, say
from segcli.cli.group import app
from segcli.cli.options import HelpWithModelDefaults


@app.command(cls=HelpWithModelDefaults, epilog=examples("segcli models", "segcli classes --model blocks"))
@cli_errors
def models() -> None:
    """List the models: architecture, weights and whether they are cached, input size, classes.

    Reads the model registry and the weights cache; loads no model.
    """
    from rich import box
    from rich.table import Table

    from segcli.models.cache import describe_weights
    from segcli.models.registry import MODELS, SEMANTIC_MODELS

    # no vertical rules and no wrapping: the table fits 80 columns with every name whole; the
    # weights files (up to 41 characters) are listed under it, one a line
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        title="segcli models",
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for col in ("name", "option", "architecture", "cached", "input", "classes"):
        table.add_column(col, no_wrap=True)
    folders: dict[str, Path] = {}
    files: list[tuple[str, str]] = []
    for spec in (*MODELS.values(), *SEMANTIC_MODELS.values()):
        weights = describe_weights(spec)
        if weights.path is not None:
            folders.setdefault("bundled" if spec.bundled_weights else "cache", weights.path.parent)
        files.append((spec.name, weights.path.name if weights.path is not None else weights.source))
        cached = "bundled" if spec.bundled_weights else "yes" if weights.cached else "no"
        sizes = spec.defaults.min_size, spec.defaults.max_size
        table.add_row(
            plain(spec.name),
            spec.model_option,
            plain(spec.architecture),
            plain(cached, "green" if cached != "no" else "yellow"),
            "/".join(str(v) for v in sizes if v is not None),
            str(weights.classes),
        )
    out_console().print(table)
    width = max(len(name) for name, _ in files)
    say("weights files:")
    for name, file in files:
        say(f"  {name:<{width}}  {file}")
    if "cache" in folders:
        say(f"weights cache: {folders['cache']}")
        say("  (TORCH_HOME moves it; a model not cached downloads once)")
    if "bundled" in folders:
        say(f"bundled weights: {folders['bundled']}")
    say("input: the short side / the cap on the long side the model resizes to")


@app.command(
    cls=HelpWithModelDefaults,
    epilog=examples("segcli classes", "segcli classes --model blocks", "segcli classes -m coco-v2"),
)
@cli_errors
def classes(
    model: Annotated[str, typer.Option("--model", "-m", help="The model whose classes to list.")] = "coco",
) -> None:
    """List the class names a model knows (what --classes accepts), with their ids.

    Reads the model registry; loads no model and downloads nothing.
    """
    from segcli.models.cache import class_names
    from segcli.models.registry import get_spec

    spec = get_spec(model)
    for class_id, name in class_names(spec):
        say(f"{class_id:>3}  {name}")
