"""``segcli batch``: a folder tree (or --from-list), resumable, on the local or Ray engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from segcli.cli.common import (
    BatchSizeOpt,
    OutputOpt,
    QuietOpt,
    SaveOpt,
    TiledMaxPixelsOpt,
    _check_model_run,
    _check_writable,
    _max_pixels,
)
from segcli.cli.console import _print_failed, _progress, _state, cli_errors, err_console, examples, fail, say
from segcli.cli.group import app
from segcli.cli.options import (
    PANEL_OUTPUTS,
    PANEL_RUN,
    EngineCliOptions,
    HelpWithModelDefaults,
    ModelOptions,
    TileCliOptions,
    VideoCliOptions,
    engine_options,
    model_options,
    tile_options,
    video_options,
)
from segcli.cli.runtime import runtime
from segcli.cli.tables import _print_summary
from segcli.core.errors import SegcliError, UsageError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from segcli.outputs.plans import OutputPlan
    from segcli.runs.batch import BatchEvents
    from segcli.runs.engines.base import ItemResult


@app.command(
    cls=HelpWithModelDefaults,
    epilog=examples(
        "segcli batch photos/ -o results/",
        "segcli batch photos/ -o results/   # again after Ctrl-C: does only what is missing",
        "segcli batch photos/ -o results/ --save json --no-recursive",
        "segcli batch scans/ --model blocks --batch-size 4",
    ),
)
@cli_errors
@model_options
@video_options
@engine_options
@tile_options
def batch(
    folder: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of images and videos, searched recursively (or use --from-list).",
            metavar="FOLDER",
            exists=True,
            show_default=False,
        ),
    ] = None,
    *,
    model_opts: ModelOptions,
    video_opts: VideoCliOptions,
    engine_opts: EngineCliOptions,
    tile_opts: TileCliOptions,
    output: OutputOpt = Path("segcli-out"),
    save: SaveOpt = None,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive/--no-recursive", help="Descend into subfolders.", rich_help_panel=PANEL_RUN
        ),
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Redo inputs whose outputs exist.", rich_help_panel=PANEL_RUN),
    ] = False,
    coco_ids_from: Annotated[
        Path | None,
        typer.Option(
            "--coco-ids-from",
            help="COCO ground truth whose image and category ids coco-results.json uses (matched by file "
            "name and class name).",
            exists=True,
            dir_okay=False,
            rich_help_panel=PANEL_OUTPUTS,
        ),
    ] = None,
    batch_size: BatchSizeOpt = 1,
    max_pixels: TiledMaxPixelsOpt = None,
    videos: Annotated[
        bool,
        typer.Option("--videos/--no-videos", help="Pick up videos (mp4, mov, m4v, mkv, avi, webm) too."),
    ] = True,
    quiet: QuietOpt = False,
    from_list: Annotated[
        Path | None,
        typer.Option(
            "--from-list",
            help="Text file of image paths, one a line (relative: to its folder), instead of FOLDER.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Segment every image and video under a folder (or in --from-list); resumable.

    Outputs mirror the folder's tree; run.json and coco.json sum up the run. Run the same
    command again after a crash or Ctrl-C and it does only what is missing.
    """
    from segcli.outputs.plans import DEFAULT_SAVE, parse_save
    from segcli.runs.batch import BatchOptions, run_batch
    from segcli.runs.discovery import check_folders, read_list

    if (folder is None) == (from_list is None):
        raise UsageError("give a FOLDER or --from-list FILE (one of them)")
    kinds = parse_save(save) if save is not None else DEFAULT_SAVE
    model_opts = tile_opts.apply(model_opts, batch_size)  # before the engine: Ray actors tile too
    max_pixels = _max_pixels(max_pixels, model_opts)
    _check_model_run(model_opts, batch_size, max_pixels)
    engine = engine_opts.select(model_opts)
    files = None
    if from_list is not None:
        try:
            folder, files = read_list(from_list)
        except SegcliError as exc:
            raise UsageError(str(exc)) from None
    assert folder is not None
    check_folders(folder, output)
    options = BatchOptions(
        save=kinds,
        overwrite=overwrite,
        recursive=recursive,
        batch_size=batch_size,
        max_pixels=max_pixels,
        videos=videos,
        video=video_opts.check(batch_size),
        coco_ids_from=coco_ids_from,
        draw_tiles=bool(_state["debug"]),
    )
    _check_writable(output)
    with _progress(quiet) as progress:
        outcome = run_batch(
            folder,
            output,
            lambda: runtime().load_segmenter(model_opts, quiet=quiet),
            options=options,
            engine=engine,
            events=_progress_events(progress, quiet),
            files=files,
        )
    if not quiet:
        _print_summary(outcome.summary, output, outcome.coco_path)
    if outcome.report.interrupted:
        from segcli.core.signals import interrupt_exit_code, terminated

        if terminated():
            err_console().print(
                "terminated (SIGTERM): finished outputs are kept; run the same command again to resume",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(interrupt_exit_code())
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _progress_events(progress: Progress, quiet: bool) -> BatchEvents:
    """Batch events shown on a Rich progress bar (failures printed above it)."""
    from segcli.runs.batch import BatchEvents

    task = progress.add_task("segmenting", total=None, rate="", visible=False)

    class ProgressEvents(BatchEvents):
        done = 0
        frames_task: TaskID | None = None

        def discovered(self, files: int, problems: Sequence[tuple[Path, str]]) -> None:
            from segcli.cli.failures import current

            for path, why in problems:

                def show(line: str = f"{path}: {why}") -> None:
                    fail(line, console=progress.console, label="failed:")

                current().failure(show)

        def skipped_outputs(self, folders: Sequence[Path]) -> None:
            for folder in folders:
                say(f"skipped {folder}: an earlier segcli output folder", console=progress.console)

        def started(self, total: int, stale_removed: int) -> None:
            if stale_removed and not quiet:
                say(
                    f"removed {stale_removed} temporary file(s) left by an interrupted run",
                    console=progress.console,
                )
            progress.update(task, total=total, visible=True)

        def result(self, result: ItemResult) -> None:
            if result.status == "failed":
                _print_failed(progress.console, result)
            self.done += result.status == "done"
            elapsed = progress.tasks[task].elapsed or 0.0
            rate = f"{self.done / elapsed:.2f} img/s" if elapsed > 0 and self.done else ""
            progress.update(task, advance=1, rate=rate)
            if self.frames_task is not None:
                progress.remove_task(self.frames_task)
                self.frames_task = None

        def video_frame(self, plan: OutputPlan, done: int, total: int | None) -> None:
            if self.frames_task is None:
                self.frames_task = progress.add_task(escape(f"  {plan.key} frames"), total=total, rate="")
            progress.update(self.frames_task, completed=done)

    return ProgressEvents()
