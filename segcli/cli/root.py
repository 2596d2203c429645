"""The ``segcli`` command line: thin commands over the library.

Nothing here imports torch at module level, so ``segcli --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.markup import escape

from segcli import __version__
from segcli.cli.options import (
    PANEL_MODEL,
    PANEL_OUTPUTS,
    PANEL_RUN,
    DeviceOpt,
    HelpWithModelDefaults,
    ModelOptions,
    PrecisionOpt,
    SuggestingGroup,
    VideoCliOptions,
    model_options,
    video_options,
)
from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.core.settings import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    import click  # only for annotations: typer 0.29 vendors its own click, no "click" installed
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.text import Text

    from segcli.evaluation.evaluate import EvalResult
    from segcli.figures.compare.run import FigureResult
    from segcli.inference.segmenter import Segmenter
    from segcli.outputs.plans import OutputPlan
    from segcli.runs.batch import BatchEvents
    from segcli.runs.engines import ItemResult, SegmenterLike

GLOBAL_OPTIONS = ("--debug", "--version")


class RootGroup(SuggestingGroup):
    """The ``segcli`` group: ``--debug`` and ``--version`` work after the command too
    (``segcli predict x.jpg --debug``); they are moved in front of it before parsing. An
    argument after ``--`` is never moved (a file called ``--debug``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        moved = [a for a in args[:end] if a in GLOBAL_OPTIONS]
        if moved:
            args = moved + [a for a in args[:end] if a not in GLOBAL_OPTIONS] + args[end:]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="segcli",
    cls=RootGroup,
    help="Instance segmentation from the command line (torchvision Mask R-CNN).",
    epilog="Start with [bold]segcli demo[/] (offline, bundled model), then "
    "[bold]segcli predict --help[/]. [bold]segcli models[/] lists the models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


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


# --------------------------------------------------------------------------- printing
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


def fail(text: object, *, console: Console | None = None, label: str = "error:") -> None:
    """``say`` a problem on stderr (or ``console``), after a red label."""
    say(text, console=console or err_console(), label=label, style="bold red")


EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a Unix tool whose reader went away."""


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


F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130  # Ctrl-C; 143 after SIGTERM (segcli.core.signals)


def cli_errors(func: F) -> F:
    """Turn ``SegcliError`` (and any surprise) into one line on stderr and exit 1 (2 for a
    ``UsageError``); a reader that went away (``| head``) ends the command quietly, 141."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from segcli.core.signals import interrupt_exit_code, stop_on_sigterm, terminated

        try:
            try:
                with stop_on_sigterm():
                    return func(*args, **kwargs)
            except (typer.Exit, typer.BadParameter):  # usage errors keep their exit code 2
                raise
            except SegcliError as exc:
                if _state["debug"]:
                    import traceback

                    traceback.print_exc()
                fail(exc, label="usage error:" if isinstance(exc, UsageError) else "error:")
                raise typer.Exit(2 if isinstance(exc, UsageError) else 1) from None
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
                raise typer.Exit(1) from None
        except BrokenPipeError:
            _silence_stdio()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        say(f"segcli {__version__}")
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
# The model options (--model ... --max-size) are declared once, in segcli.cli.options.ModelOptions.
OutputOpt = Annotated[
    Path,
    typer.Option("--output", "-o", help="Output folder.", file_okay=False, rich_help_panel=PANEL_OUTPUTS),
]
SaveOpt = Annotated[
    str | None,
    typer.Option(
        "--save",
        help="Comma-separated outputs: overlay, json, masks (one PNG per instance, named 000-label.png), "
        "idmap (16-bit id map plus a colour preview), polygons, yolo, labelme. Default: overlay,json.",
        rich_help_panel=PANEL_OUTPUTS,
    ),
]
BatchSizeOpt = Annotated[
    int,
    typer.Option("--batch-size", help="Images per forward pass (helps on GPU).", rich_help_panel=PANEL_RUN),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        help="Refuse images declaring more pixels than this (decompression bombs).",
        rich_help_panel=PANEL_RUN,
    ),
]
ImageArg = Annotated[
    Path,
    typer.Argument(
        help="Image file.", metavar="IMAGE", exists=True, dir_okay=False, readable=False, show_default=False
    ),
]
"""The one image of compare, compare proposals and explain (opened later, with a clear error)."""
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar or per-image lines.", rich_help_panel=PANEL_RUN)
]


def load_segmenter(opts: ModelOptions, *, quiet: bool = False) -> Segmenter:
    """Build the segmenter ``opts`` describe; say which model runs where unless ``quiet``."""
    seg = opts.spec().build(progress=not quiet)
    if not quiet:
        _say_loaded("model", seg.model_info(), seg.device)
    return seg


def _say_loaded(what: str, info: Mapping[str, object], device: object) -> None:
    """One line on stderr: which model (name, architecture, weights) runs on which device."""
    say(
        f"{what} {info['name']} ({info['architecture']}, {info['weights']}) on {device}",
        console=err_console(),
    )


def _check_writable(out_dir: Path) -> None:
    """Make ``out_dir`` and write its output marker (which proves it writable), or fail in one line."""
    from segcli.outputs.plans import mark_output

    try:
        mark_output(out_dir)
    except OSError as exc:
        raise SegcliError(f"cannot write to output folder {out_dir} ({exc.strerror or exc})") from None


def _check_run_options(batch_size: int = 1, max_pixels: int | None = None) -> None:
    """Usage errors of the options outside ``ModelOptions`` (before any model loads)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if max_pixels is not None and max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {max_pixels}")


def _check_model_run(model_opts: ModelOptions, batch_size: int = 1, max_pixels: int | None = None) -> str:
    """Every usage error of the model and run options (exit 2), before the output folder is
    made or any model loads: settings, model name, --classes, batch size, pixel limit, and a
    --precision the device cannot run. Returns the precision that will run."""
    model_opts.check()
    _check_run_options(batch_size, max_pixels)
    return model_opts.check_precision()


def _report_figure(result: FigureResult, quiet: bool, show: Callable[[dict[str, Any]], None]) -> None:
    """After a one-image figure command: its numbers (``show``, unless --quiet), then its files."""
    if not quiet:
        show(result.record)
    say(f"figure: {result.figure_path}")
    say(f"JSON:   {result.json_path}")


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


def unique_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` in order, each file once: a file named twice (also as ``./a.png`` or through
    another relative path) is processed once."""
    seen: set[Path] = set()
    out = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def _print_failed(console: Console, result: ItemResult) -> None:
    fail(result.reason, console=console, label="failed:")


# --------------------------------------------------------------------------- predict
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
    batch_size: BatchSizeOpt = 1,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Segment images and videos into overlays and JSON.

    Writes <name>.overlay.jpg|png and <name>.json per image into the output folder (see
    --save); a video gets <name>.overlay.mp4, <name>.jsonl and <name>.json.
    """
    from segcli.outputs.plans import DEFAULT_SAVE, parse_save, plan_outputs
    from segcli.outputs.records import dumps
    from segcli.runs.batch import run_plans
    from segcli.runs.engines import Job
    from segcli.runs.engines.local import LocalEngine

    if json_out not in (None, "-"):
        raise UsageError(f"--json takes '-' (stdout), got {json_out!r}; use --save json for files")
    to_stdout = json_out == "-"
    kinds = parse_save(save) if save is not None else (() if to_stdout else DEFAULT_SAVE)
    _check_model_run(model_opts, batch_size, max_pixels)
    video = video_opts.check(batch_size)
    for image in images:
        if image.is_dir():
            raise UsageError(f"{image} is a folder: use segcli batch {image} for folders")
    if kinds:
        _check_writable(output)
    seg = load_segmenter(model_opts, quiet=quiet)
    plans = plan_outputs(unique_paths(images), output)
    human = err_console() if to_stdout else out_console()

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

    job = Job.for_segmenter(seg, kinds, batch_size=batch_size, max_pixels=max_pixels)
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
        raise typer.Exit(1)


# --------------------------------------------------------------------------- batch
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
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
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
    engine: Annotated[str, typer.Option("--engine", help="local (this process) or ray (a Ray cluster).")] = (
        "local"
    ),
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster [RAY_ADDRESS, else start a local one].")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Ray workers [all GPUs or CPUs].")] = None,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", help="GPUs per Ray worker.")] = 0.0,
    cpus_per_worker: Annotated[
        float | None, typer.Option("--cpus-per-worker", help="CPUs (torch threads) per Ray worker [1].")
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
        _usage_error("give a FOLDER or --from-list FILE (one of them)")
    ray_options = {
        "--ray-address": ray_address,
        "--workers": workers,
        "--gpus-per-worker": gpus_per_worker or None,
        "--cpus-per-worker": cpus_per_worker,
    }
    if engine not in ("local", "ray"):
        _usage_error(f"unknown --engine {engine!r}; choose from local, ray")
    if engine == "local" and any(v is not None for v in ray_options.values()):
        used = next(k for k, v in ray_options.items() if v is not None)
        _usage_error(f"{used} needs --engine ray")
    kinds = parse_save(save) if save is not None else DEFAULT_SAVE
    _check_model_run(model_opts, batch_size, max_pixels)
    ray_engine = None
    if engine == "ray":
        from segcli.runs.engines.ray import RayEngine, RayMissing, import_ray

        try:
            import_ray()
            ray_engine = RayEngine(
                model_opts.spec(),
                address=ray_address,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
            )
        except (RayMissing, SegcliError) as exc:
            _usage_error(str(exc))
    files = None
    if from_list is not None:
        try:
            folder, files = read_list(from_list)
        except SegcliError as exc:
            _usage_error(str(exc))
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
    )
    _check_writable(output)
    with _progress(quiet) as progress:
        outcome = run_batch(
            folder,
            output,
            lambda: load_segmenter(model_opts, quiet=quiet),
            options=options,
            engine=None if ray_engine is None else lambda _driver_segmenter: ray_engine,
            events=_progress_events(progress, quiet),
            files=files,
        )
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
            for path, why in problems:
                fail(f"{path}: {why}", console=progress.console, label="failed:")

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


def _print_summary(summary: dict[str, Any], output: Path, coco_path: Path | None) -> None:
    from rich.table import Table

    from segcli.runs.runfiles import status_title

    counts = summary["counts"]
    table = Table(title=f"segcli batch: {status_title(summary)}", show_header=True, header_style="bold")
    for col in ("done", "skipped", "failed", "instances", "time", "img/s"):
        table.add_column(col, justify="right")
    rate = summary["images_per_second"]
    table.add_row(
        str(counts["done"]),
        str(counts["skipped"]),
        plain(counts["failed"], "red") if counts["failed"] else "0",
        str(counts["instances"]),
        f"{summary['seconds']:.1f} s",
        f"{rate:.2f}" if rate else "-",
    )
    out_console().print(table)
    say(f"run report: {output / 'run.json'}")
    if coco_path is not None:
        say(f"COCO file:  {coco_path}")
        results = coco_path.with_name("coco-results.json")
        if results.is_file():
            say(f"COCO results (for COCO.loadRes): {results}")
    yolo = output / "yolo" / "data.yaml"
    if "yolo" in summary.get("save", ()) and yolo.is_file():
        say(f"YOLO-seg dataset: {yolo}")


# --------------------------------------------------------------------------- eval
PANEL_EVAL = "Evaluation"
EVAL_SCORE_THRESHOLD = 0.05
"""``segcli eval``'s default score threshold when it runs the model (COCO's convention)."""


class _EvalHelp(HelpWithModelDefaults):
    """Model-option help as for the other commands, but eval's own score-threshold default."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if param.name == "score_threshold":
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
def eval_command(
    ground_truth: Annotated[
        Path, typer.Argument(help="COCO ground-truth JSON.", exists=True, dir_okay=False, readable=False)
    ],
    model_opts: ModelOptions,
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
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
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
        _usage_error(f"--match-by {match_by!r}: choose from {', '.join(MATCH_BY)}")
    defaults = ModelOptions()
    given = [
        "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(ModelOptions)
        if getattr(model_opts, f.name) != getattr(defaults, f.name)
    ]
    if predictions is not None and (given or images is not None):
        _usage_error(f"{', '.join(given) or 'IMAGES'}: no model runs with --predictions")
    if model_opts.score_threshold is None:
        model_opts = dataclasses.replace(model_opts, score_threshold=EVAL_SCORE_THRESHOLD)
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
            load=lambda: load_segmenter(model_opts, quiet=quiet),
            options=options,
            events=_progress_events(progress, quiet),
            match_by=match_by,
        )
    if outcome.result is None:
        say("interrupted: run the same command again to finish (images done are kept)", console=err_console())
        raise typer.Exit(outcome.exit_code)
    _print_eval(outcome.result)
    say(f"evaluation: {outcome.eval_path}")
    if outcome.plots:
        say(f"PR curves:  {outcome.plots[0].parent}/ ({len(outcome.plots)} PNG)")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_eval(result: EvalResult) -> None:
    from rich.table import Table

    from segcli.evaluation.evaluate import TABLE_STATS

    title = plain(f"{Path(result.ground_truth).name}: {result.images} images, {result.detections} detections")
    table = Table(title=title, header_style="bold")
    table.add_column("")
    for name in TABLE_STATS:
        table.add_column("AR@100" if name == "AR100" else name, justify="right")
    for iou_type, label in (("bbox", "box"), ("segm", "mask")):
        if iou_type in result.stats:
            table.add_row(label, *(_fmt(result.stats[iou_type][name]) for name in TABLE_STATS))
    out_console().print(table)
    per_class = Table(title="per class: ground-truth instances, detections, AP", header_style="bold")
    per_class.add_column("class", no_wrap=True)
    per_class.add_column("GT", justify="right")
    per_class.add_column("det", justify="right")
    types = [t for t in ("bbox", "segm") if t in result.stats]
    for iou_type in types:
        prefix = "box " if iou_type == "bbox" else "mask "
        for name in ("AP", "AP50", "AP75"):
            per_class.add_column(f"{prefix if name == 'AP' else ''}{name}", justify="right")
    for cls in result.classes:
        per_class.add_row(
            plain(cls.name),
            str(cls.instances),
            str(cls.detections),
            *(_fmt(cls.ap[t][name]) for t in types for name in ("AP", "AP50", "AP75")),
        )
    out_console().print(per_class)
    for warning in result.warnings:
        say(warning, console=err_console(), label="warning:", style="yellow")
    for note in result.notes:
        say(f"note: {note}", console=err_console())


# --------------------------------------------------------------------------- discovery
@app.command(epilog=examples("segcli models", "segcli classes --model blocks"))
@cli_errors
def models() -> None:
    """List the models: architecture, weights and whether they are cached, input size, classes.

    Reads the model registry and the weights cache; loads no model.
    """
    from rich.table import Table

    from segcli.models.registry import MODELS, SEMANTIC_MODELS
    from segcli.models.weights import describe_weights

    table = Table(show_header=True, header_style="bold", title="segcli models")
    for col in ("name", "option", "architecture", "weights", "cached", "input size", "classes"):
        table.add_column(col, overflow="fold")
    folders: dict[str, Path] = {}
    for spec in (*MODELS.values(), *SEMANTIC_MODELS.values()):
        weights = describe_weights(spec)
        if weights.path is not None:
            folders.setdefault("bundled" if spec.bundled_weights else "cache", weights.path.parent)
        cached = "bundled" if spec.bundled_weights else "yes" if weights.cached else "no"
        sizes = spec.defaults.min_size, spec.defaults.max_size
        table.add_row(
            plain(spec.name),
            spec.model_option,
            plain(spec.architecture),
            plain(weights.path.name if weights.path is not None else weights.source),
            plain(cached, "green" if cached != "no" else "yellow"),
            "/".join(str(v) for v in sizes if v is not None),
            str(weights.classes),
        )
    out_console().print(table)
    if "cache" in folders:
        say(f"weights cache: {folders['cache']} (TORCH_HOME moves it; a model not cached downloads once)")
    if "bundled" in folders:
        say(f"bundled weights: {folders['bundled']}")
    say("input size: the short side / the cap on the long side the model resizes to")


@app.command(epilog=examples("segcli classes", "segcli classes --model blocks", "segcli classes -m coco-v2"))
@cli_errors
def classes(
    model: Annotated[str, typer.Option("--model", "-m", help="The model whose classes to list.")] = "coco",
) -> None:
    """List the class names a model knows (what --classes accepts), with their ids.

    Reads the model registry; loads no model and downloads nothing.
    """
    from segcli.models.registry import get_spec
    from segcli.models.weights import class_names

    spec = get_spec(model)
    for class_id, name in class_names(spec):
        say(f"{class_id:>3}  {name}")


# --------------------------------------------------------------------------- demo
@app.command(epilog=examples("segcli demo", "segcli demo -o /tmp/segcli-demo"))
@cli_errors
def demo(
    output: OutputOpt = Path("segcli-demo"), device: DeviceOpt = "auto", precision: PrecisionOpt = None
) -> None:
    """Run predict, batch and compare offline on generated block scenes.

    Uses the bundled blocks model: no network, no download.
    """
    from segcli.demo import run_demo

    opts = ModelOptions(model="blocks", device=device, precision=precision)
    resolved = opts.check_precision()  # an unsupported --precision: exit 2 before the model loads
    with err_console().status("segmenting the example scenes with the bundled blocks model"):
        result = run_demo(output, device=device, precision=resolved, compare=_demo_compare)
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
    from segcli.figures.compare import run_compare

    return run_compare(seg, image, out_dir).paths()


# --------------------------------------------------------------------------- compare
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
            cli=True,
        )
        if not quiet:
            _say_loaded("semantic model", semantic_model.info(), semantic_model.device)
    seg = load_segmenter(model_opts, quiet=quiet)
    result = run_compare(seg, image, output, semantic_model=semantic_model, max_pixels=max_pixels)
    _report_figure(result, quiet, _print_compare)


def _print_compare(record: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=plain(f"{Path(record['image']['path']).name}: semantic ({record['semantic']}) vs instance"),
        show_header=True,
        header_style="bold",
    )
    table.add_column("label")
    for col in ("instances", "semantic regions", "semantic pixels", "instance pixels"):
        table.add_column(col, justify="right")
    for row in record["classes"]:
        table.add_row(
            plain(row["label"]),
            str(row["instances"]),
            str(row["semantic_regions"]),
            str(row["semantic_pixels"]),
            str(row["instance_pixels"]),
        )
    if not record["classes"]:
        table.add_row("[dim](no objects found)[/]", "0", "0", "0", "0")
    out_console().print(table)


# --------------------------------------------------------------------------- explain, compare proposals
def _usage_error(message: str) -> NoReturn:
    """One line on stderr and exit 2: a usage error, found before any model loads."""
    fail(message, label="usage error:")
    raise typer.Exit(2)


@compare_app.command(
    "proposals",
    cls=HelpWithModelDefaults,
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
        _usage_error(f"--repeats must be at least 1, got {repeats}")
    if model_opts.proposals is not None:
        _usage_error("compare proposals sets the proposal count itself: give the counts with --n")
    _check_model_run(model_opts, max_pixels=max_pixels)
    _check_writable(output)
    seg = load_segmenter(model_opts, quiet=quiet)
    with err_console().status(f"segmenting at N = {', '.join(map(str, ns))} ({repeats} timed runs each)"):
        result = run_compare_proposals(seg, image, output, ns, repeats=repeats, max_pixels=max_pixels)
    _report_figure(result, quiet, _print_proposals)


def _print_proposals(record: dict[str, Any]) -> None:
    from rich.table import Table

    ref = record["reference_n"]
    table = Table(
        title=plain(f"{Path(record['image']['path']).name}: RPN proposals N (agreement with N = {ref})"),
        show_header=True,
        header_style="bold",
    )
    for col in ("N", "s/image", "detections", "matched", "agreement", "mean mask IoU"):
        table.add_column(col, justify="right")
    for run in record["runs"]:
        share, iou = run["agreement"], run["mean_iou"]
        table.add_row(
            str(run["n"]),
            f"{run['seconds_per_image']:.3f}",
            str(run["detections"]),
            f"{run['matched']}/{len(record['runs'][-1]['instances'])}",
            "-" if share is None else f"{share:.2f}",
            "-" if iou is None else f"{iou:.3f}",
        )
    out_console().print(table)
    say("matched: greedy by score within class at mask IoU >= 0.5, against the largest N")


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
        _usage_error(f"--instance must be 0 or more, got {instance}")
    _check_model_run(model_opts, max_pixels=max_pixels)
    _check_writable(output)
    seg = load_segmenter(model_opts, quiet=quiet)
    from segcli.figures.explain import run_explain

    result = run_explain(seg, image, output, instance=instance, max_pixels=max_pixels)
    _report_figure(result, quiet, _print_explain)


def _print_explain(record: dict[str, Any]) -> None:
    p, b, inst = record["proposals"], record["box_branch"], record["instance"]
    lines = [
        f"RPN: {p['count']} proposals kept (top N = {p['top_n']}), the first {p['drawn']} drawn",
        f"box branch: {b['proposals']} proposals scored, {b['before_nms']} boxes above "
        f"{b['score_threshold']:g} before NMS, {b['after_nms']} after",
    ]
    if inst is None:
        lines.append("no detection: no mask to follow")
    else:
        size, resized = inst["mask_head"]["size"], inst["resized"]
        lines.append(
            f"mask of detection {inst['id']} ({inst['label']} {inst['score']:.2f}): "
            f"{size[0]}x{size[1]} -> {resized['width']}x{resized['height']} box, "
            f"p > {resized['threshold']:g}: {resized['area']} pixels"
            + ("" if resized["matches_output"] else " (DIFFERS from the segmenter's mask)")
        )
    for line in lines:
        say(line)


def main() -> None:
    """The ``segcli`` entry point. A standard stream closed at start (``>&-``) is pointed at
    /dev/null first, so that no file segcli opens takes its number."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
    # one name however it starts (the script or python -m segcli): usage lines and the
    # shell completion (--install-completion, _SEGCLI_COMPLETE) say "segcli"
    app(prog_name="segcli")
