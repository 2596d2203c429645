"""The ``segcli`` command line: thin commands over the library.

Nothing here imports torch at module level, so ``segcli --help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from segcli import __version__
from segcli.errors import SegcliError

if TYPE_CHECKING:
    from rich.console import Console

    from segcli.engines import ItemResult
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

EXIT_INTERRUPTED = 130


def cli_errors(func: F) -> F:
    """Turn ``SegcliError`` (and any surprise) into one line on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SegcliError as exc:
            if _state["debug"]:
                import traceback

                traceback.print_exc()
            err_console().print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console().print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if _state["debug"]:
                import traceback

                traceback.print_exc()
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            err_console().print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {line} "
                "(run with --debug for the traceback)",
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
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="coco (maskrcnn_resnet50_fpn), coco-v2 (…_v2) or blocks (bundled, offline)."
    ),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Local checkpoint for the chosen architecture (state dict, or one under 'model'/'state_dict').",
        dir_okay=False,
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
HalfOpt = Annotated[bool, typer.Option("--half", help="fp16 autocast (CUDA only).")]
ScoreOpt = Annotated[
    float | None, typer.Option("--score-threshold", help="Drop detections below this score [0.5].")
]
NmsOpt = Annotated[float | None, typer.Option("--nms-iou", help="Per-class NMS IoU of the box head [0.5].")]
ProposalsOpt = Annotated[
    int | None,
    typer.Option("--proposals", help="RPN proposals kept after NMS per image [300; torchvision uses 1000]."),
]
MaxDetOpt = Annotated[int | None, typer.Option("--max-detections", help="Detections kept per image [100].")]
MaskThrOpt = Annotated[
    float | None, typer.Option("--mask-threshold", help="Mask probability -> binary mask [0.5].")
]
ClassesOpt = Annotated[
    str | None, typer.Option("--classes", help="Comma-separated class names to keep [all].")
]
MinSizeOpt = Annotated[
    int | None, typer.Option("--min-size", help="Model input short side [model's: 800 coco].")
]
MaxSizeOpt = Annotated[
    int | None, typer.Option("--max-size", help="Model input long side cap [model's: 1333 coco].")
]
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


def _settings(
    score_threshold: float | None,
    nms_iou: float | None,
    proposals: int | None,
    max_detections: int | None,
    mask_threshold: float | None,
    classes: str | None,
    min_size: int | None,
    max_size: int | None,
) -> Any:
    from segcli.settings import Settings, parse_classes

    return Settings(
        score_threshold=score_threshold,
        nms_iou=nms_iou,
        proposals=proposals,
        max_detections=max_detections,
        mask_threshold=mask_threshold,
        classes=parse_classes(classes),
        min_size=min_size,
        max_size=max_size,
    )


def _segmenter(
    model: str, weights: Path | None, device: str, half: bool, settings: Any, quiet: bool
) -> Segmenter:
    from segcli.predictor import Segmenter

    seg = Segmenter(model, weights=weights, device=device, settings=settings, half=half, progress=not quiet)
    if not quiet:
        info = seg.model_info()
        err_console().print(
            f"model [bold]{info['name']}[/] ({info['architecture']}, {info['weights']}) on {seg.device}",
            highlight=False,
        )
    return seg


def _check_writable(out_dir: Path) -> None:
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise SegcliError(f"cannot write to output folder {out_dir} ({exc.strerror or exc})") from None


def _progress(total: int, quiet: bool) -> Any:
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


# --------------------------------------------------------------------------- predict
@app.command()
@cli_errors
def predict(
    images: Annotated[
        list[Path], typer.Argument(help="Image files.", exists=True, dir_okay=False, readable=False)
    ],
    output: OutputOpt = Path("segcli-out"),
    save: SaveOpt = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", help="'-' writes the JSON to stdout (one line per image) and nothing else there."
        ),
    ] = None,
    model: ModelOpt = "coco",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    half: HalfOpt = False,
    score_threshold: ScoreOpt = None,
    nms_iou: NmsOpt = None,
    proposals: ProposalsOpt = None,
    max_detections: MaxDetOpt = None,
    mask_threshold: MaskThrOpt = None,
    classes: ClassesOpt = None,
    min_size: MinSizeOpt = None,
    max_size: MaxSizeOpt = None,
    batch_size: BatchSizeOpt = 1,
    max_pixels: MaxPixelsOpt = 150_000_000,
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
    settings = _settings(
        score_threshold, nms_iou, proposals, max_detections, mask_threshold, classes, min_size, max_size
    )
    if kinds:
        _check_writable(output)
    seg = _segmenter(model, weights, device, half, settings, quiet)
    plans = plan_outputs(images, output)
    human = err_console() if to_stdout else out_console()

    def on_result(result: ItemResult) -> None:
        if result.status == "failed":
            err_console().print(f"[red]failed:[/] {result.reason}", highlight=False, soft_wrap=True)
            return
        if to_stdout and result.record is not None:
            sys.stdout.buffer.write(dumps(result.record))
            sys.stdout.flush()
        if not quiet:
            where = ", ".join(str(p) for p in result.plan.paths(kinds).values())
            human.print(
                f"{result.plan.source}: {result.summary}" + (f" -> {where}" if where else ""),
                highlight=False,
                soft_wrap=True,
            )

    job = Job.for_segmenter(seg, kinds, batch_size=batch_size, max_pixels=max_pixels)
    report = run_plans(plans, job, LocalEngine(seg), overwrite=True, on_result=on_result)
    if report.interrupted:
        err_console().print(f"interrupted after {report.count('done')} of {len(plans)} images")
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- batch
@app.command()
@cli_errors
def batch(
    folder: Annotated[
        Path | None, typer.Argument(help="Folder of images.", exists=True, file_okay=False)
    ] = None,
    output: OutputOpt = Path("segcli-out"),
    save: SaveOpt = None,
    recursive: Annotated[
        bool, typer.Option("--recursive/--no-recursive", help="Descend into subfolders.")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo inputs whose outputs exist.")] = False,
    model: ModelOpt = "coco",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    half: HalfOpt = False,
    score_threshold: ScoreOpt = None,
    nms_iou: NmsOpt = None,
    proposals: ProposalsOpt = None,
    max_detections: MaxDetOpt = None,
    mask_threshold: MaskThrOpt = None,
    classes: ClassesOpt = None,
    min_size: MinSizeOpt = None,
    max_size: MaxSizeOpt = None,
    batch_size: BatchSizeOpt = 1,
    max_pixels: MaxPixelsOpt = 150_000_000,
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
    """Segment every image under FOLDER (or in --from-list); outputs mirror its tree. Resumable."""
    from segcli.batch import BatchEvents, BatchOptions, read_list, run_batch
    from segcli.engines import SegmenterSpec
    from segcli.writers import DEFAULT_SAVE, parse_save

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
    settings = _settings(
        score_threshold, nms_iou, proposals, max_detections, mask_threshold, classes, min_size, max_size
    )
    ray_engine = None
    if engine == "ray":
        from segcli.engines.ray import RayEngine, RayMissing, import_ray

        try:
            import_ray()
            ray_engine = RayEngine(
                SegmenterSpec(model, str(weights) if weights else None, device, settings, half),
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

    options = BatchOptions(
        save=kinds, overwrite=overwrite, recursive=recursive, batch_size=batch_size, max_pixels=max_pixels
    )
    _check_writable(output)

    with _progress(0, quiet) as progress:
        task = progress.add_task("segmenting", total=None, rate="", visible=False)
        done = [0]

        class Events(BatchEvents):
            def discovered(self, files: int, problems: Sequence[tuple[Path, str]]) -> None:
                for path, why in problems:
                    progress.console.print(f"[red]failed:[/] {path}: {why}", highlight=False, soft_wrap=True)

            def started(self, total: int, stale_removed: int) -> None:
                if stale_removed and not quiet:
                    progress.console.print(
                        f"removed {stale_removed} temporary file(s) left by an interrupted run"
                    )
                progress.update(task, total=total, visible=True)

            def result(self, result: ItemResult) -> None:
                if result.status == "failed":
                    progress.console.print(
                        f"[red]failed:[/] {result.reason}", highlight=False, soft_wrap=True
                    )
                done[0] += result.status == "done"
                elapsed = progress.tasks[task].elapsed or 0.0
                rate = f"{done[0] / elapsed:.2f} img/s" if elapsed > 0 and done[0] else ""
                progress.update(task, advance=1, rate=rate)

        outcome = run_batch(
            folder,
            output,
            lambda: _segmenter(model, weights, device, half, settings, quiet),
            options=options,
            engine=None if ray_engine is None else lambda _driver_segmenter: ray_engine,
            events=Events(),
            files=files,
        )

    _print_summary(outcome.summary, output, outcome.coco_path)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _usage_error(message: str) -> NoReturn:
    """One line on stderr and exit 2 (a usage error: nothing was loaded or written)."""
    from rich.markup import escape

    err_console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _print_summary(summary: dict[str, Any], output: Path, coco_path: Path | None) -> None:
    from rich.table import Table

    counts = summary["counts"]
    table = Table(title=f"segcli batch: {summary['status']}", show_header=True, header_style="bold")
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
    out_console().print(f"run report: {output / 'run.json'}", highlight=False)
    if coco_path is not None:
        out_console().print(f"COCO file:  {coco_path}", highlight=False)


# --------------------------------------------------------------------------- demo
@app.command()
@cli_errors
def demo(
    output: OutputOpt = Path("segcli-demo"),
    device: DeviceOpt = "auto",
) -> None:
    """Run predict, batch and compare offline on generated block scenes (bundled model)."""
    from segcli.demo import run_demo

    with err_console().status("segmenting the example scenes with the bundled blocks model"):
        result = run_demo(output, device=device, compare=_demo_compare)
    out_console().print(f"[bold]segcli demo[/] wrote everything under {output}/", highlight=False)
    out_console().print(f"  inputs   {result.inputs}/  (generated block scenes)", highlight=False)
    for kind, path in result.predict.items():
        out_console().print(f"  predict  {path}  ({kind})", highlight=False)
    counts = result.batch_counts
    out_console().print(
        f"  batch    {result.batch_dir}/  ({counts['done']} images, {counts['instances']} instances; "
        f"run.json, coco.json)",
        highlight=False,
    )
    for kind, path in result.extra.items():
        out_console().print(f"  compare  {path}  ({kind})", highlight=False)
    out_console().print(
        f"Start with {result.predict['overlay']}: two red cubes, one partly hiding the other, "
        "each with its own mask.",
        highlight=False,
    )


def _demo_compare(seg: Segmenter, image: Path, out_dir: Path) -> dict[str, Path]:
    from segcli.compare import run_compare

    return run_compare(seg, image, out_dir).paths()


# --------------------------------------------------------------------------- compare
compare_app = typer.Typer(
    help="Figures that show what instance segmentation adds.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(compare_app, name="compare")


@compare_app.command("semantic-vs-instance")
@cli_errors
def compare_semantic_vs_instance(
    image: Annotated[Path, typer.Argument(help="Image file.", exists=True, dir_okay=False, readable=False)],
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
    model: ModelOpt = "coco",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    half: HalfOpt = False,
    score_threshold: ScoreOpt = None,
    nms_iou: NmsOpt = None,
    proposals: ProposalsOpt = None,
    max_detections: MaxDetOpt = None,
    mask_threshold: MaskThrOpt = None,
    classes: ClassesOpt = None,
    min_size: MinSizeOpt = None,
    max_size: MaxSizeOpt = None,
    max_pixels: MaxPixelsOpt = 150_000_000,
    quiet: QuietOpt = False,
) -> None:
    """One image as classification, detection, semantic and instance segmentation, with counts.

    Writes <image>.compare.png (four panels) and <image>.compare.json.
    """
    from segcli.compare import check_semantic_source, run_compare

    source = check_semantic_source(semantic, semantic_weights)
    settings = _settings(
        score_threshold, nms_iou, proposals, max_detections, mask_threshold, classes, min_size, max_size
    )
    _check_writable(output)
    semantic_model = None
    if source != "derived":
        from segcli.model import load_semantic_model

        semantic_model = load_semantic_model(
            source, weights=semantic_weights, device=device, progress=not quiet
        )
        if not quiet:
            info = semantic_model.info()
            err_console().print(
                f"semantic model [bold]{info['name']}[/] ({info['architecture']}, {info['weights']}) "
                f"on {semantic_model.device}",
                highlight=False,
            )
    seg = _segmenter(model, weights, device, half, settings, quiet)
    result = run_compare(seg, image, output, semantic_model=semantic_model, max_pixels=max_pixels)
    if not quiet:
        _print_compare(result.record)
    out_console().print(f"figure: {result.figure_path}", highlight=False)
    out_console().print(f"JSON:   {result.json_path}", highlight=False)


def _print_compare(record: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"{Path(record['image']['path']).name}: semantic ({record['semantic']}) vs instance",
        show_header=True,
        header_style="bold",
    )
    table.add_column("label")
    for col in ("instances", "semantic regions", "semantic pixels", "instance pixels"):
        table.add_column(col, justify="right")
    for row in record["classes"]:
        table.add_row(
            row["label"],
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
