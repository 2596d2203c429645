"""The ``segcli`` command line: thin commands over the library.

Nothing here imports torch at module level, so ``segcli --help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape

from segcli import __version__
from segcli.errors import SegcliError, first_line
from segcli.options import DeviceOpt, HelpWithModelDefaults, ModelOptions, model_options
from segcli.settings import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from segcli.batch import BatchEvents
    from segcli.engines import ItemResult, SegmenterLike
    from segcli.predictor import Segmenter

app = typer.Typer(
    name="segcli",
    help="Instance segmentation from the command line (torchvision Mask R-CNN).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@functools.cache
def out_console() -> Console:
    """Rich console on stdout (created on first use: ``--help`` never imports Rich's console)."""
    from rich.console import Console

    return Console()


@functools.cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


_state = {"debug": False}

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130  # Ctrl-C; 143 after SIGTERM (segcli.signals)


def cli_errors(func: F) -> F:
    """Turn ``SegcliError`` (and any surprise) into one line on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from segcli.signals import interrupt_exit_code, stop_on_sigterm, terminated

        try:
            with stop_on_sigterm():
                return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SegcliError as exc:
            if _state["debug"]:
                import traceback

                traceback.print_exc()
            err_console().print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console().print("terminated (SIGTERM)" if terminated() else "interrupted", highlight=False)
            raise typer.Exit(interrupt_exit_code()) from None
        except Exception as exc:
            if _state["debug"]:
                import traceback

                traceback.print_exc()
            name, line = type(exc).__name__, first_line(exc)
            detail = f"{name}: {escape(line)}" if line != name else name
            err_console().print(
                f"[bold red]error:[/] unexpected {detail} (run with --debug for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out_console().print(f"segcli {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


# --------------------------------------------------------------------------- options
# The model options (--model ... --max-size) are declared once, in segcli.options.ModelOptions.
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder.", file_okay=False)]
SaveOpt = Annotated[
    str | None,
    typer.Option("--save", help="Comma-separated outputs: overlay, json, masks, idmap [overlay,json]."),
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass (helps on GPU).")]
MaxPixelsOpt = Annotated[
    int,
    typer.Option("--max-pixels", help="Refuse images declaring more pixels than this (decompression bombs)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-image lines.")]


def load_segmenter(opts: ModelOptions, *, quiet: bool = False) -> Segmenter:
    """Build the segmenter ``opts`` describe; say which model runs where unless ``quiet``."""
    seg = opts.spec().build(progress=not quiet)
    if not quiet:
        _say_loaded("model", seg.model_info(), seg.device)
    return seg


def _say_loaded(what: str, info: Mapping[str, object], device: object) -> None:
    """One line on stderr: which model (name, architecture, weights) runs on which device."""
    err_console().print(
        f"{what} {info['name']} ({info['architecture']}, {info['weights']}) on {device}",
        highlight=False,
        markup=False,
    )


def _check_writable(out_dir: Path) -> None:
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise SegcliError(f"cannot write to output folder {out_dir} ({exc.strerror or exc})") from None


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
    console.print(f"[red]failed:[/] {escape(result.reason)}", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- predict
@app.command(cls=HelpWithModelDefaults)
@cli_errors
@model_options
def predict(
    images: Annotated[
        list[Path], typer.Argument(help="Image files.", exists=True, dir_okay=False, readable=False)
    ],
    model_opts: ModelOptions,
    output: OutputOpt = Path("segcli-out"),
    save: SaveOpt = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", help="'-' writes the JSON to stdout (one line per image) and nothing else there."
        ),
    ] = None,
    batch_size: BatchSizeOpt = 1,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Segment one or more images; write overlays and JSON to the output folder."""
    from segcli.batch import run_plans
    from segcli.engines import Job
    from segcli.engines.local import LocalEngine
    from segcli.writers import DEFAULT_SAVE, dumps, parse_save, plan_outputs

    if json_out not in (None, "-"):
        raise SegcliError(f"--json takes '-' (stdout), got {json_out!r}; use --save json for files")
    to_stdout = json_out == "-"
    kinds = parse_save(save) if save is not None else (() if to_stdout else DEFAULT_SAVE)
    model_opts.settings()  # bad values fail before the output folder is made
    if kinds:
        _check_writable(output)
    seg = load_segmenter(model_opts, quiet=quiet)
    plans = plan_outputs(images, output)
    human = err_console() if to_stdout else out_console()

    def on_result(result: ItemResult) -> None:
        if result.status == "failed":
            _print_failed(err_console(), result)
            return
        if to_stdout and result.record is not None:
            sys.stdout.buffer.write(dumps(result.record))
            sys.stdout.flush()
        if not quiet:
            where = ", ".join(str(p) for p in result.plan.paths(kinds).values())
            human.print(
                f"{result.plan.source}: {result.summary}" + (f" -> {where}" if where else ""),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    job = Job.for_segmenter(seg, kinds, batch_size=batch_size, max_pixels=max_pixels)
    report = run_plans(plans, job, LocalEngine(seg), overwrite=True, on_result=on_result)
    if report.interrupted:
        from segcli.signals import interrupt_exit_code, terminated

        how = "terminated (SIGTERM)" if terminated() else "interrupted"
        err_console().print(f"{how} after {report.count('done')} of {len(plans)} images")
        raise typer.Exit(interrupt_exit_code())
    if report.failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- batch
@app.command(cls=HelpWithModelDefaults)
@cli_errors
@model_options
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of images.", exists=True, file_okay=False)],
    model_opts: ModelOptions,
    output: OutputOpt = Path("segcli-out"),
    save: SaveOpt = None,
    recursive: Annotated[
        bool, typer.Option("--recursive/--no-recursive", help="Descend into subfolders.")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo inputs whose outputs exist.")] = False,
    batch_size: BatchSizeOpt = 1,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Segment every image under FOLDER; outputs mirror its tree. Resumable."""
    from segcli.batch import BatchOptions, run_batch
    from segcli.writers import DEFAULT_SAVE, parse_save

    kinds = parse_save(save) if save is not None else DEFAULT_SAVE
    model_opts.settings()  # bad values fail before the output folder is made
    options = BatchOptions(
        save=kinds, overwrite=overwrite, recursive=recursive, batch_size=batch_size, max_pixels=max_pixels
    )
    _check_writable(output)
    with _progress(quiet) as progress:
        outcome = run_batch(
            folder,
            output,
            lambda: load_segmenter(model_opts, quiet=quiet),
            options=options,
            events=_progress_events(progress, quiet),
        )
    _print_summary(outcome.summary, output, outcome.coco_path)
    if outcome.report.interrupted:
        from segcli.signals import interrupt_exit_code, terminated

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
    from segcli.batch import BatchEvents

    task = progress.add_task("segmenting", total=None, rate="", visible=False)

    class ProgressEvents(BatchEvents):
        done = 0

        def discovered(self, files: int, problems: Sequence[tuple[Path, str]]) -> None:
            for path, why in problems:
                progress.console.print(
                    f"[red]failed:[/] {escape(f'{path}: {why}')}", highlight=False, soft_wrap=True
                )

        def started(self, total: int, stale_removed: int) -> None:
            if stale_removed and not quiet:
                progress.console.print(
                    f"removed {stale_removed} temporary file(s) left by an interrupted run"
                )
            progress.update(task, total=total, visible=True)

        def result(self, result: ItemResult) -> None:
            if result.status == "failed":
                _print_failed(progress.console, result)
            self.done += result.status == "done"
            elapsed = progress.tasks[task].elapsed or 0.0
            rate = f"{self.done / elapsed:.2f} img/s" if elapsed > 0 and self.done else ""
            progress.update(task, advance=1, rate=rate)

    return ProgressEvents()


def _print_summary(summary: dict[str, Any], output: Path, coco_path: Path | None) -> None:
    from rich.table import Table

    from segcli.batch import status_title

    counts = summary["counts"]
    table = Table(title=f"segcli batch: {status_title(summary)}", show_header=True, header_style="bold")
    for col in ("done", "skipped", "failed", "instances", "time", "img/s"):
        table.add_column(col, justify="right")
    rate = summary["images_per_second"]
    table.add_row(
        str(counts["done"]),
        str(counts["skipped"]),
        f"[red]{counts['failed']}[/]" if counts["failed"] else "0",
        str(counts["instances"]),
        f"{summary['seconds']:.1f} s",
        f"{rate:.2f}" if rate else "-",
    )
    out_console().print(table)
    say = functools.partial(out_console().print, highlight=False, markup=False, soft_wrap=True)
    say(f"run report: {output / 'run.json'}")
    if coco_path is not None:
        say(f"COCO file:  {coco_path}")


# --------------------------------------------------------------------------- demo
@app.command()
@cli_errors
def demo(output: OutputOpt = Path("segcli-demo"), device: DeviceOpt = "auto") -> None:
    """Run predict, batch and compare offline on generated block scenes (bundled model)."""
    from segcli.demo import run_demo

    with err_console().status("segmenting the example scenes with the bundled blocks model"):
        result = run_demo(output, device=device, compare=_demo_compare)
    say = functools.partial(out_console().print, highlight=False, markup=False, soft_wrap=True)
    say(f"segcli demo wrote everything under {output}/")
    say(f"  inputs   {result.inputs}/  (generated block scenes)")
    for kind, path in result.predict.items():
        say(f"  predict  {path}  ({kind})")
    counts = result.batch_counts
    say(
        f"  batch    {result.batch_dir}/  ({counts['done']} images, {counts['instances']} instances; "
        f"run.json, coco.json)"
    )
    for kind, path in result.extra.items():
        say(f"  compare  {path}  ({kind})")
    say(
        f"Start with {result.predict['overlay']}: two red cubes, one partly hiding the other, "
        "each with its own mask."
    )


def _demo_compare(seg: SegmenterLike, image: Path, out_dir: Path) -> dict[str, Path]:
    from segcli.compare import run_compare

    return run_compare(seg, image, out_dir).paths()  # type: ignore[arg-type]  # TODO(merge): SegmenterLike


# --------------------------------------------------------------------------- compare
compare_app = typer.Typer(
    help="Figures that show what instance segmentation adds.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(compare_app, name="compare")


@compare_app.command("semantic-vs-instance", cls=HelpWithModelDefaults)
@cli_errors
@model_options
def compare_semantic_vs_instance(
    image: Annotated[Path, typer.Argument(help="Image file.", exists=True, dir_okay=False, readable=False)],
    model_opts: ModelOptions,
    semantic: Annotated[
        str,
        typer.Option(
            "--semantic",
            help="Semantic map: derived (from the instances), or a torchvision model: "
            "deeplabv3, fcn or lraspp (21 VOC classes).",
        ),
    ] = "derived",
    semantic_weights: Annotated[
        Path | None,
        typer.Option("--semantic-weights", help="Local checkpoint for the --semantic model.", dir_okay=False),
    ] = None,
    output: OutputOpt = Path("segcli-out"),
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """One image as classification, detection, semantic and instance segmentation, with counts.

    Writes <image>.compare.png (four panels) and <image>.compare.json.
    """
    from segcli.compare import check_semantic_source, run_compare

    source = check_semantic_source(semantic, semantic_weights)
    model_opts.settings()  # bad values fail before the output folder is made
    _check_writable(output)
    semantic_model = None
    if source != "derived":
        from segcli.weights import load_model

        semantic_model = load_model(
            source, task="semantic", weights=semantic_weights, device=model_opts.device, progress=not quiet
        )
        if not quiet:
            _say_loaded("semantic model", semantic_model.info(), semantic_model.device)
    seg = load_segmenter(model_opts, quiet=quiet)
    result = run_compare(seg, image, output, semantic_model=semantic_model, max_pixels=max_pixels)
    if not quiet:
        _print_compare(result.record)
    say = functools.partial(out_console().print, highlight=False, markup=False, soft_wrap=True)
    say(f"figure: {result.figure_path}")
    say(f"JSON:   {result.json_path}")


def _print_compare(record: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=escape(f"{Path(record['image']['path']).name}: semantic ({record['semantic']}) vs instance"),
        show_header=True,
        header_style="bold",
    )
    table.add_column("label")
    for col in ("instances", "semantic regions", "semantic pixels", "instance pixels"):
        table.add_column(col, justify="right")
    for row in record["classes"]:
        table.add_row(
            escape(row["label"]),
            str(row["instances"]),
            str(row["semantic_regions"]),
            str(row["semantic_pixels"]),
            str(row["instance_pixels"]),
        )
    if not record["classes"]:
        table.add_row("[dim](no objects found)[/]", "0", "0", "0", "0")
    out_console().print(table)


def main() -> None:
    app()
