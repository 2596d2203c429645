"""``segcli explain``: the network's stages on one image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from segcli.cli.common import ImageArg, MaxPixelsOpt, OutputOpt, QuietOpt, _check_model_run, _check_writable
from segcli.cli.console import _report_figure, cli_errors, examples
from segcli.cli.group import app
from segcli.cli.options import (
    HelpWithModelDefaults,
    ModelOptions,
    model_options,
)
from segcli.cli.runtime import runtime
from segcli.cli.tables import _print_explain
from segcli.core.errors import UsageError
from segcli.core.settings import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from segcli.inference.segmenter import Segmenter


@app.command(
    "explain",
    cls=HelpWithModelDefaults,
    epilog=examples(
        "segcli explain examples/blocks/two-red-cubes.png --model blocks",
        "segcli explain photo.jpg --instance 2",
    ),
)
@cli_errors
@model_options
def explain_cmd(
    image: ImageArg,
    model_opts: ModelOptions,
    instance: Annotated[
        int | None,
        typer.Option("--instance", help="Which detection's mask to follow (0 = the top score) [top score]."),
    ] = None,
    output: OutputOpt = Path("segcli-out"),
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """The network's stages on one image: proposals, box branch and NMS, one raw mask, overlay.

    Writes <image>.explain.png (six panels) and <image>.explain.json.
    """
    if instance is not None and instance < 0:
        raise UsageError(f"--instance must be 0 or more, got {instance}")
    _check_model_run(model_opts, max_pixels=max_pixels)
    _check_writable(output)
    seg = runtime().load_segmenter(model_opts, quiet=quiet)
    from segcli.figures.explain import run_explain

    # the figure hooks the network itself: the runtime loads a Segmenter, not any SegmenterLike
    result = run_explain(cast("Segmenter", seg), image, output, instance=instance, max_pixels=max_pixels)
    _report_figure(result, quiet, _print_explain)
