"""``segcli compare semantic-vs-instance`` and ``segcli compare proposals``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from segcli.cli.common import ImageArg, MaxPixelsOpt, OutputOpt, QuietOpt, _check_model_run, _check_writable
from segcli.cli.completion import complete_semantic
from segcli.cli.console import _report_figure, _say_loaded, cli_errors, err_console, examples
from segcli.cli.group import app
from segcli.cli.options import (
    PANEL_MODEL,
    HelpWithModelDefaults,
    ModelOptions,
    SuggestingGroup,
    model_options,
)
from segcli.cli.runtime import runtime
from segcli.cli.tables import _print_compare, _print_proposals
from segcli.core.errors import UsageError
from segcli.core.settings import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from segcli.inference.segmenter import Segmenter


compare_app = typer.Typer(
    cls=SuggestingGroup,
    help="Figures that compare: semantic vs instance segmentation, RPN proposal counts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(compare_app, name="compare")


@compare_app.command(
    "semantic-vs-instance",
    cls=HelpWithModelDefaults,
    epilog=examples(
        "segcli compare semantic-vs-instance examples/blocks/two-red-cubes.png --model blocks",
        "segcli compare semantic-vs-instance photo.jpg --semantic deeplabv3",
    ),
)
@cli_errors
@model_options
def compare_semantic_vs_instance(
    image: ImageArg,
    model_opts: ModelOptions,
    semantic: Annotated[
        str,
        typer.Option(
            "--semantic",
            autocompletion=complete_semantic,
            help="Semantic map: derived (from the instances), or a torchvision model: "
            "deeplabv3, fcn or lraspp (21 VOC classes).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "derived",
    semantic_weights: Annotated[
        Path | None,
        typer.Option(
            "--semantic-weights",
            help="Local checkpoint for the --semantic model.",
            dir_okay=False,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    output: OutputOpt = Path("segcli-out"),
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """One image as classification, detection, semantic and instance segmentation.

    Writes <image>.compare.png (four panels, with instances vs semantic regions per class) and
    <image>.compare.json, and prints the counts.
    """
    from segcli.figures.compare import check_semantic_source, run_compare

    source = check_semantic_source(semantic, semantic_weights)
    _check_model_run(model_opts, max_pixels=max_pixels)
    _check_writable(output)
    semantic_model = None
    if source != "derived":
        from segcli.models.weights import load_model

        semantic_model = load_model(
            source,
            task="semantic",
            weights=semantic_weights,
            device=model_opts.device,
            progress=not quiet,
        )
        if not quiet:
            _say_loaded("semantic model", semantic_model.info(), semantic_model.device)
    seg = runtime().load_segmenter(model_opts, quiet=quiet)
    result = run_compare(seg, image, output, semantic_model=semantic_model, max_pixels=max_pixels)
    _report_figure(result, quiet, _print_compare)


class _ProposalsHelp(HelpWithModelDefaults):
    hidden_options = ("proposals",)  # the command sets the proposal count itself (--n)


@compare_app.command(
    "proposals",
    cls=_ProposalsHelp,
    epilog=examples(
        "segcli compare proposals examples/blocks/cluttered.png --model blocks",
        "segcli compare proposals photo.jpg --n 50,300,1000 --repeats 5",
    ),
)
@cli_errors
@model_options
def compare_proposals_cmd(
    image: ImageArg,
    model_opts: ModelOptions,
    n: Annotated[
        str, typer.Option("--n", help="Comma-separated RPN proposal counts to compare [10,100,300,1000].")
    ] = "10,100,300,1000",
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs per N; the median is reported.")] = 3,
    output: OutputOpt = Path("segcli-out"),
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """One image at several RPN proposal counts N: detections, seconds per image, agreement.

    Writes <image>.proposals.png (one panel per N) and <image>.proposals.json.
    """
    from segcli.figures.compare.proposals import parse_ns, run_compare_proposals

    ns = parse_ns(n)
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    if model_opts.proposals is not None:
        raise UsageError("compare proposals sets the proposal count itself: give the counts with --n")
    _check_model_run(model_opts, max_pixels=max_pixels)
    _check_writable(output)
    seg = runtime().load_segmenter(model_opts, quiet=quiet)
    with err_console().status(f"segmenting at N = {', '.join(map(str, ns))} ({repeats} timed runs each)"):
        # the figure hooks the network itself: the runtime loads a Segmenter, not any SegmenterLike
        result = run_compare_proposals(
            cast("Segmenter", seg), image, output, ns, repeats=repeats, max_pixels=max_pixels
        )
    _report_figure(result, quiet, _print_proposals)
