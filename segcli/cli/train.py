"""``segcli train``: parse, call :func:`segcli.train.run_train`, print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from segcli.cli.console import cli_errors, err_console, examples, fail, say
from segcli.cli.group import app
from segcli.cli.options import PANEL_MODEL, PANEL_RUN, DeviceOpt, HelpWithModelDefaults

if TYPE_CHECKING:
    from rich.progress import Progress

PANEL_DATA = "Data"
PANEL_RECIPE = "Recipe"


def _opt(*names: str, help: str, panel: str = PANEL_RECIPE, **kwargs: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False, **kwargs)


@app.command(
    "train",
    cls=HelpWithModelDefaults,
    epilog=examples(
        "segcli train labels.json photos/ -o runs/parts --model coco --time 30",
        "segcli train out/labelme -o runs/fixed --model blocks --epochs 20",
        "segcli train out/yolo/data.yaml -o runs/yolo --weights runs/parts/best.pt",
        "segcli train labels.json photos/ -o runs/parts --resume   # after Ctrl-C or a kill",
        "segcli train scenes:blocks:4000 -o runs/blocks --model blocks --weights none --optimizer adamw "
        "--lr 1.5e-3 --weight-decay 0.01 --grad-clip 5 --warmup 300 --batch-size 4 --time 50   # blocks.pt",
    ),
)
@cli_errors
def train(
    data: Annotated[
        str,
        typer.Argument(
            help="A COCO instances file, a LabelMe folder or a YOLO-seg data.yaml (what segcli batch "
            "--save polygons / labelme / yolo writes), or scenes:blocks[:N] (generated).",
            metavar="DATA",
            show_default=False,
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Argument(
            help="Folder a COCO file's file_name is relative to [the file's own folder].",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    *,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Run folder (runs/NAME).", file_okay=False, show_default=False),
    ],
    model: Annotated[
        str | None,
        _opt(
            "--model",
            "-m",
            help="coco, coco-v2 or blocks [coco, or what --weights was trained as].",
            panel=PANEL_MODEL,
        ),
    ] = None,
    weights: Annotated[
        str | None,
        _opt(
            "--weights",
            help="Start from this checkpoint (e.g. an earlier run's best.pt), or 'none' for random "
            "weights [the model's own: COCO from torchvision's cache, blocks bundled].",
            panel=PANEL_MODEL,
        ),
    ] = None,
    val: Annotated[
        str | None,
        _opt("--val", help="Validation data, any DATA format [a fixed 10% split of DATA].", panel=PANEL_DATA),
    ] = None,
    val_images: Annotated[
        Path | None,
        _opt("--val-images", help="Folder a COCO --val file's names are relative to.", panel=PANEL_DATA),
    ] = None,
    val_fraction: Annotated[
        float | None,
        _opt("--val-fraction", help="Share of DATA held out without --val [0.1].", panel=PANEL_DATA),
    ] = None,
    epochs: Annotated[
        int | None, _opt("--epochs", help="Passes over the data [10].", panel=PANEL_RUN)
    ] = None,
    time_minutes: Annotated[
        float | None,
        _opt(
            "--time",
            help="Wall-clock budget in minutes instead of --epochs: the schedule fits itself to it.",
            panel=PANEL_RUN,
        ),
    ] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", help="Images per step [2].")] = None,
    lr: Annotated[
        float | None, _opt("--lr", help="Peak learning rate [0.01 for sgd, 1e-4 for adamw].")
    ] = None,
    optimizer: Annotated[str | None, _opt("--optimizer", help="sgd or adamw [sgd].")] = None,
    momentum: Annotated[float | None, _opt("--momentum", help="SGD momentum / AdamW beta1 [0.9].")] = None,
    weight_decay: Annotated[
        float | None, _opt("--weight-decay", help="Not on biases and norms [1e-4 for sgd, 0.01 for adamw].")
    ] = None,
    schedule: Annotated[
        str | None,
        _opt("--schedule", help="cosine, linear, step (x0.1 every 3 epochs) or constant [cosine]."),
    ] = None,
    warmup: Annotated[
        float | None,
        _opt("--warmup", help="Warm-up: a fraction of the run (< 1) or a number of steps [0.05]."),
    ] = None,
    freeze: Annotated[
        str | None,
        _opt(
            "--freeze",
            help="auto (torchvision's fine-tuning default), none, stem, backbone, or parameter-name "
            "prefixes [auto].",
        ),
    ] = None,
    scale_jitter: Annotated[
        float | None, _opt("--scale-jitter", help="Random rescale by 1 +- this (0 = off) [0.25].")
    ] = None,
    flip: Annotated[float | None, _opt("--flip", help="Horizontal flip probability [0.5].")] = None,
    grad_clip: Annotated[
        float | None, _opt("--grad-clip", help="Clip the gradient norm at this (0 = off) [10].")
    ] = None,
    seed: Annotated[int | None, _opt("--seed", help="Data order, augmentation and new layers [0].")] = None,
    min_size: Annotated[
        int | None,
        _opt("--min-size", help="Input short side [the model's: 800 coco, 384 blocks].", panel=PANEL_MODEL),
    ] = None,
    max_size: Annotated[
        int | None, _opt("--max-size", help="Input long side cap [1333 coco, 640 blocks].", panel=PANEL_MODEL)
    ] = None,
    device: DeviceOpt = "auto",
    precision: Annotated[
        str | None,
        _opt(
            "--precision",
            help="auto (bf16 on CPUs with AMX or AVX-512 BF16, fp16 on CUDA, else fp32), fp32, bf16, "
            "fp16 [auto].",
            panel=PANEL_MODEL,
        ),
    ] = None,
    resume: Annotated[
        bool, _opt("--resume", help="Continue the run in -o from its last.pt.", panel=PANEL_RUN)
    ] = False,
    engine: Annotated[
        str, _opt("--engine", help="local, or ray (data-parallel with Ray Train) [local].", panel=PANEL_RUN)
    ] = "local",
    workers: Annotated[int | None, _opt("--workers", help="Ray Train workers [2].", panel=PANEL_RUN)] = None,
    ray_address: Annotated[
        str | None,
        _opt("--ray-address", help="Ray cluster [RAY_ADDRESS, else a local one].", panel=PANEL_RUN),
    ] = None,
    quiet: Annotated[
        bool,
        _opt("--quiet", "-q", help="Errors and warnings only (no progress, no summary).", panel=PANEL_RUN),
    ] = False,
) -> None:
    """Fine-tune (or train) a Mask R-CNN on your own labels: last.pt, best.pt, train.json, curves.png.

    Replaces the class-specific layers when DATA's classes differ from the model's. best.pt
    carries its classes, model and input size: segcli predict --weights runs/NAME/best.pt
    needs no other option.
    """
    from segcli.train import DataError, TrainOptions, run_train

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"unknown --engine {engine!r}; choose local or ray", param_hint="--engine")
    if engine == "local" and (workers is not None or ray_address is not None):
        raise typer.BadParameter("--workers and --ray-address need --engine ray", param_hint="--engine")
    opts = TrainOptions(
        data=data,
        output=output,
        images=images,
        val=val,
        val_images=val_images,
        model=model,
        weights=weights,
        epochs=epochs,
        time_minutes=time_minutes,
        batch_size=batch_size,
        lr=lr,
        optimizer=None if optimizer is None else optimizer.strip().lower(),
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=None if schedule is None else schedule.strip().lower(),
        warmup=warmup,
        min_size=min_size,
        max_size=max_size,
        precision=None if precision is None else precision.strip().lower(),
        freeze=freeze,
        seed=seed,
        scale_jitter=scale_jitter,
        hflip=flip,
        grad_clip=grad_clip,
        val_fraction=val_fraction,
        device=device,
        resume=resume,
        progress=not quiet,
    )
    events = _events(quiet)
    try:
        if engine == "ray":
            from segcli.train.distributed import run_train_ray

            result = run_train_ray(opts, workers=workers or 2, address=ray_address, events=events)
        else:
            result = run_train(opts, events)
    except DataError as exc:
        for problem in exc.problems:
            fail(problem, label="bad data:")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        events.close()
        say(
            f"last.pt saved in {output}: run the same command with --resume to continue",
            console=err_console(),
        )
        raise
    finally:
        events.close()
    if quiet:  # -q: errors and warnings only, as in every command
        return
    rec = result.record
    best = rec.get("best") or {}
    if best:
        say(
            f"best: epoch {best['epoch']}, mask AP {_ap(best.get('mask_AP'))}, "
            f"box AP {_ap(best.get('box_AP'))} "
            f"-> {result.best}"
        )
    say(f"last: {result.last} ({len(rec['epochs'])} epochs, stopped by {rec.get('stop_reason')})")
    say(f"record: {output / 'train.json'}; curves: {output / 'curves.png'}")
    if result.best is not None:
        say(f"next: segcli predict IMAGE --weights {result.best}")
        say(f"      {rec['eval_command']}")


def _ap(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _events(quiet: bool) -> Any:
    """The run's progress on stderr (a :class:`segcli.train.TrainEvents`, defined here on first
    use: the library imports torch, which ``segcli --help`` must not)."""
    from segcli.train import TrainEvents

    class CliEvents(TrainEvents):
        """Progress of a run: a bar per epoch on a terminal, else one line per epoch (stderr)."""

        def __init__(self, quiet: bool) -> None:
            self.quiet = quiet
            self.live = not quiet and err_console().is_terminal
            self.progress: Progress | None = None
            self.task: Any = None
            self.epochs: int | None = None

        def note(self, text: str) -> None:
            if not self.quiet:
                say(text, console=err_console())

        def epoch_started(self, epoch: int, epochs: int | None, steps: int) -> None:
            self.epochs = epochs
            if not self.live:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            if self.progress is None:
                self.progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    console=err_console(),
                    transient=True,
                )
                self.progress.start()
            if self.task is not None:
                self.progress.remove_task(self.task)
            of = f"/{epochs}" if epochs else ""
            self.task = self.progress.add_task(f"epoch {epoch}{of}", total=steps, info="")

        def step(
            self, epoch: int, done: int, steps: int, loss: float, images_per_second: float, eta: float
        ) -> None:
            if self.progress is not None and self.task is not None:
                info = f"loss {loss:.3f}  {images_per_second:.2f} img/s  eta {_duration(eta)}"
                self.progress.update(self.task, completed=done, info=info)

        def validating(self, epoch: int) -> None:
            if self.progress is not None and self.task is not None:
                self.progress.update(self.task, info="validating")

        def epoch_done(self, record: dict[str, Any]) -> None:
            if self.quiet:
                return
            v = record.get("val") or {}
            of = f"/{self.epochs}" if self.epochs else ""
            loss = record.get("loss")
            parts = " ".join(f"{k.removeprefix('loss_')} {x:.3f}" for k, x in record["losses"].items())
            line = (
                f"epoch {record['epoch']}{of}: loss {loss:.3f} ({parts}), "
                f"{record['images_per_second']:.2f} img/s, "
                f"{record['seconds']:.1f} s"
                if loss is not None
                else f"epoch {record['epoch']}{of}: no step"
            )
            if v:
                mask, box = (v.get("segm") or {}).get("AP"), (v.get("bbox") or {}).get("AP")
                line += f"; val mask AP {_ap(mask)}, box AP {_ap(box)}"
            target = self.progress.console if self.progress is not None else err_console()
            say(line, console=target)

        def close(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None
                self.task = None

    return CliEvents(quiet)
