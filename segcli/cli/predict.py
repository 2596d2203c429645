"""``segcli predict``: images and videos into overlays and JSON."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from segcli.cli.common import (
    BatchSizeOpt,
    OutputOpt,
    QuietOpt,
    SaveOpt,
    TiledMaxPixelsOpt,
    _check_model_run,
    _check_writable,
    _max_pixels,
    unique_paths,
)
from segcli.cli.console import (
    _print_failed,
    _state,
    cli_errors,
    err_console,
    examples,
    out_console,
    say,
    write_stdout,
)
from segcli.cli.group import app
from segcli.cli.options import (
    PANEL_OUTPUTS,
    HelpWithModelDefaults,
    ModelOptions,
    TileCliOptions,
    VideoCliOptions,
    model_options,
    tile_options,
    video_options,
)
from segcli.cli.runtime import runtime
from segcli.core.errors import UsageError
from segcli.core.exits import EXIT_FAILED

if TYPE_CHECKING:
    from segcli.runs.engines.base import ItemResult


@app.command(
    cls=HelpWithModelDefaults,
    epilog=examples(
        "segcli predict photo.jpg",
        "segcli predict a.jpg b.png -o out --save overlay,json,masks",
        "segcli predict photo.jpg --classes person,dog -c 0.7",
        "segcli predict *.jpg --json - > results.jsonl",
        "segcli predict examples/blocks/cluttered.png --model blocks",
    ),
)
@cli_errors
@model_options
@video_options
@tile_options
def predict(
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image and video files (images: any format Pillow reads; a file named twice is done once).",
            metavar="IMAGES...",
            exists=True,
            readable=False,
            show_default=False,
        ),
    ],
    model_opts: ModelOptions,
    video_opts: VideoCliOptions,
    tile_opts: TileCliOptions,
    output: OutputOpt = Path("segcli-out"),
    save: SaveOpt = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="'-' prints the JSON on stdout as JSON Lines (one record per image or video, one line each) "
            "and nothing else there; no files unless --save asks.",
            metavar="-",
            rich_help_panel=PANEL_OUTPUTS,
        ),
    ] = None,
    numbered: Annotated[
        bool,
        typer.Option(
            "--numbered",
            help="Keep every run: write into OUTPUT, or OUTPUT-2, OUTPUT-3, ... (the first that does not "
            "exist yet) instead of replacing earlier results in OUTPUT.",
            rich_help_panel=PANEL_OUTPUTS,
        ),
    ] = False,
    batch_size: BatchSizeOpt = 1,
    max_pixels: TiledMaxPixelsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Segment images and videos into overlays and JSON.

    Writes <name>.overlay.jpg|png and <name>.json per image into the output folder (see
    --save); a video gets <name>.overlay.mp4, <name>.jsonl and <name>.json.
    """
    from segcli.outputs.plans import DEFAULT_SAVE, numbered_folder, outputs_present, parse_save, plan_outputs
    from segcli.outputs.records import dumps
    from segcli.runs.batch import run_plans
    from segcli.runs.engines.base import Job
    from segcli.runs.engines.local import LocalEngine

    if json_out not in (None, "-"):
        raise UsageError(f"--json takes '-' (stdout), got {json_out!r}; use --save json for files")
    to_stdout = json_out == "-"
    defaults = () if to_stdout else DEFAULT_SAVE
    kinds = parse_save(save, defaults) if save is not None else defaults
    model_opts = tile_opts.apply(model_opts, batch_size)
    max_pixels = _max_pixels(max_pixels, model_opts)
    _check_model_run(model_opts, batch_size, max_pixels)
    video = video_opts.check(batch_size)
    for image in images:
        if image.is_dir():
            raise UsageError(f"{image} is a folder: use segcli batch {image} for folders")
    if numbered and not kinds:
        raise UsageError("--numbered needs files to write: add --save (with --json -)")
    if numbered:
        output = numbered_folder(output)
    if kinds:
        _check_writable(output)
    seg = runtime().load_segmenter(model_opts, quiet=quiet)
    plans = plan_outputs(unique_paths(images), output)
    human = err_console() if to_stdout else out_console()
    replacing = sum(outputs_present(plan, kinds) for plan in plans) if kinds else 0
    if not quiet and numbered:
        say(f"writing into {output}", console=err_console())
    elif not quiet and replacing:
        say(
            f"replacing the earlier results of {replacing} input(s) in {output} (--numbered keeps each run)",
            console=err_console(),
        )

    def on_result(result: ItemResult) -> None:
        if result.status == "failed":
            _print_failed(err_console(), result)
            if result.record is None:  # a damaged video still has its summary (for --json -)
                return
        if to_stdout and result.record is not None:
            write_stdout(dumps(result.record))
        if not quiet and result.status != "failed":
            paths = result.plan.paths(kinds) if kinds else {}
            where = ", ".join(str(p) for p in dict.fromkeys(paths.values()))
            say(f"{result.plan.source}: {result.summary}" + (f" -> {where}" if where else ""), console=human)

    job = Job.for_segmenter(
        seg, kinds, batch_size=batch_size, max_pixels=max_pixels, draw_tiles=bool(_state["debug"])
    )
    from segcli.io.locks import output_lock  # shared: predicts coexist; a batch there refuses or is refused

    with output_lock(output, shared=True) if kinds else contextlib.nullcontext():
        report = run_plans(
            plans, job, LocalEngine(seg), overwrite=True, on_result=on_result, segmenter=seg, video=video
        )
        if "yolo" in kinds:
            from segcli.runs.runfiles import write_yolo_dataset

            write_yolo_dataset(output, seg.categories, None)
    if report.interrupted:
        from segcli.core.signals import interrupt_exit_code, terminated

        how = "terminated (SIGTERM)" if terminated() else "interrupted"
        noun = "inputs" if any(plan.is_video for plan in plans) else "images"
        say(f"{how} after {report.count('done')} of {len(plans)} {noun}", console=err_console())
        raise typer.Exit(interrupt_exit_code())
    if report.failed:
        raise typer.Exit(EXIT_FAILED)
