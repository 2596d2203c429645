"""``segcli eval``: box and mask AP on the user's own COCO labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from segcli.cli.batch import _progress_events
from segcli.cli.common import (
    BatchSizeOpt,
    OutputOpt,
    QuietOpt,
    TiledMaxPixelsOpt,
    _check_run_options,
    _check_writable,
    _max_pixels,
)
from segcli.cli.console import _progress, cli_errors, err_console, examples, say
from segcli.cli.group import app
from segcli.cli.options import (
    PANEL_RUN,
    HelpWithModelDefaults,
    ModelOptions,
    TileCliOptions,
    model_options,
    tile_options,
)
from segcli.cli.runtime import runtime
from segcli.cli.tables import _print_eval, _print_eval_warnings
from segcli.core.errors import UsageError

if TYPE_CHECKING:
    pass


PANEL_EVAL = "Evaluation"


EVAL_SCORE_THRESHOLD = 0.05
"""``segcli eval``'s default score threshold when it runs the model (COCO's convention)."""


class _EvalHelp(HelpWithModelDefaults):
    """Model-option help as for the other commands, but eval's own score-threshold default."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if param.name == "score_threshold":  # an option: its help (click.Parameter has none)
                param.help = f"Drop detections below this score [{EVAL_SCORE_THRESHOLD}, COCO's convention]."  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


@app.command(
    "eval",
    cls=_EvalHelp,
    epilog=examples(
        "segcli eval labels.json photos/ -o eval/",
        "segcli eval labels.json --predictions results/coco.json",
        "segcli eval examples/blocks/ground-truth.json --model blocks",
    ),
)
@cli_errors
@model_options
@tile_options
def eval_command(
    ground_truth: Annotated[
        Path, typer.Argument(help="COCO ground-truth JSON.", exists=True, dir_okay=False, readable=False)
    ],
    model_opts: ModelOptions,
    tile_opts: TileCliOptions,
    images: Annotated[
        Path | None,
        typer.Argument(
            help="Folder the ground truth's file_name is relative to [its own folder].", file_okay=False
        ),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Evaluate this coco.json (from a run) or COCO results list instead of running the model.",
            exists=True,
            dir_okay=False,
            rich_help_panel=PANEL_EVAL,
        ),
    ] = None,
    match_by: Annotated[
        str,
        typer.Option(
            "--match-by",
            help="Match categories by 'name' (case-insensitive) or 'id'.",
            rich_help_panel=PANEL_EVAL,
        ),
    ] = "name",
    output: OutputOpt = Path("segcli-out"),
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Redo images whose outputs exist.", rich_help_panel=PANEL_RUN),
    ] = False,
    batch_size: BatchSizeOpt = 1,
    max_pixels: TiledMaxPixelsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate against a COCO ground truth: box and mask AP, per-class AP, eval.json, PR plots.

    Without --predictions, segments the ground truth's images first (resumable, into -o),
    at --score-threshold 0.05 unless told otherwise (COCO's convention).
    """
    import dataclasses

    from segcli.datasets.groundtruth import MATCH_BY
    from segcli.evaluation.evaluate import run_eval
    from segcli.runs.batch import BatchOptions

    if match_by not in MATCH_BY:
        raise UsageError(f"--match-by {match_by!r}: choose from {', '.join(MATCH_BY)}")
    defaults = ModelOptions()
    given = [
        "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(ModelOptions)
        if f.metadata.get("cli", True) and getattr(model_opts, f.name) != getattr(defaults, f.name)
    ]
    if tile_opts.tile is not None:
        given.append("--tile")
    if predictions is not None and (given or images is not None):
        raise UsageError(f"{', '.join(given) or 'IMAGES'}: no model runs with --predictions")
    if model_opts.score_threshold is None:
        model_opts = dataclasses.replace(model_opts, score_threshold=EVAL_SCORE_THRESHOLD)
    model_opts = tile_opts.apply(model_opts, batch_size)
    max_pixels = _max_pixels(max_pixels, model_opts)
    model_opts.check()  # usage errors before the output folder is made or a model loads
    _check_run_options(batch_size, max_pixels)
    if predictions is None:
        model_opts.check_precision()  # an unsupported --precision: exit 2 before any model loads
    _check_writable(output)
    options = BatchOptions(save=("json",), overwrite=overwrite, batch_size=batch_size, max_pixels=max_pixels)
    with _progress(quiet or predictions is not None) as progress:
        outcome = run_eval(
            ground_truth,
            output,
            images=images,
            predictions=predictions,
            load=lambda: runtime().load_segmenter(model_opts, quiet=quiet),
            options=options,
            events=_progress_events(progress, quiet),
            match_by=match_by,
        )
    if outcome.result is None:
        say("interrupted: run the same command again to finish (images done are kept)", console=err_console())
        raise typer.Exit(outcome.exit_code)
    if quiet:
        _print_eval_warnings(outcome.result)
    else:
        _print_eval(outcome.result)
        say(f"evaluation: {outcome.eval_path}")
        if outcome.plots:
            say(f"PR curves:  {outcome.plots[0].parent}/ ({len(outcome.plots)} PNG)")
