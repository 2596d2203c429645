"""``segcli models`` and ``segcli classes``: answered from the registry's data (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from segcli.cli.console import cli_errors, examples, out_console, plain, say
from segcli.cli.group import app
from segcli.cli.options import HelpWithModelDefaults

WeightsInfoOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Also describe this checkpoint (a segcli train best.pt names its model, classes, input size).",
        exists=True,
        dir_okay=False,
    ),
]


def _checkpoint_info(path: Path, model: str | None = None) -> tuple[Any, tuple[str, ...], Any]:
    """(spec, categories, meta) of a local checkpoint, read without building a model (torch
    is imported for this only)."""
    from segcli.models.weights import checkpoint_spec, load_checkpoint

    ckpt = load_checkpoint(path, mmap=True)
    spec = checkpoint_spec(ckpt.meta, model, path)
    return spec, ckpt.categories or spec.categories, ckpt.meta


@app.command(
    cls=HelpWithModelDefaults,
    epilog=examples(
        "segcli models", "segcli models --weights runs/parts/best.pt", "segcli classes --model blocks"
    ),
)
@cli_errors
def models(checkpoint: WeightsInfoOpt = None) -> None:
    """List the models: architecture, weights and whether they are cached, input size, classes.

    Reads the model registry and the weights cache (and a --weights checkpoint); loads no model.
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
    trained = None
    if checkpoint is not None:
        from segcli.core.categories import PLACEHOLDER_CLASSES

        spec, categories, meta = _checkpoint_info(checkpoint)
        min_size = (meta.min_size if meta else None) or spec.defaults.min_size
        max_size = (meta.max_size if meta else None) or spec.defaults.max_size
        table.add_row(
            plain(checkpoint.name),
            "--weights",
            plain(spec.architecture),
            plain("local", "green"),
            "/".join(str(v) for v in (min_size, max_size) if v is not None),
            str(sum(1 for c in categories if c not in PLACEHOLDER_CLASSES)),
        )
        files.append((checkpoint.name, str(checkpoint)))
        if meta is not None and meta.train:
            trained = (
                f"{checkpoint}: --model {spec.name}, trained by segcli train on {meta.train.get('data')}"
            )
    out_console().print(table)
    if trained:
        say(trained)
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
    epilog=examples(
        "segcli classes", "segcli classes --model blocks", "segcli classes --weights runs/parts/best.pt"
    ),
)
@cli_errors
def classes(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="The model whose classes to list [coco].", show_default=False),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights", help="List the classes of this checkpoint instead.", exists=True, dir_okay=False
        ),
    ] = None,
) -> None:
    """List the class names a model knows (what --classes accepts), with their ids.

    Reads the model registry (or the --weights checkpoint); loads no model and downloads nothing.
    """
    from segcli.core.categories import PLACEHOLDER_CLASSES
    from segcli.models.cache import class_names
    from segcli.models.registry import get_spec

    if weights is not None:
        _, categories, _ = _checkpoint_info(weights, model)
        listed = [(i, c) for i, c in enumerate(categories) if c not in PLACEHOLDER_CLASSES]
    else:
        listed = class_names(get_spec(model or "coco"))
    for class_id, name in listed:
        say(f"{class_id:>3}  {name}")
