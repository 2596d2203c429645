"""The model options of ``predict``, ``batch`` and ``compare``, declared once.

Typer has no option groups, so the group is a dataclass: each field of
:class:`ModelOptions` is one command-line option (its ``typer.Option`` sits in the
field's annotation), and :func:`model_options` adds every field to a command, which
then receives them as one ``model_opts: ModelOptions`` argument::

    @app.command(cls=HelpWithModelDefaults)
    @model_options
    def predict(images: ..., model_opts: ModelOptions) -> None:
        seg = runtime().load_segmenter(model_opts)

Help texts name each model's defaults (``{score_threshold}`` below); they are filled
in from the model registry only when help is shown, so ``segcli`` starts without
importing torch. Nothing here imports torch, numpy or OpenCV.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer
from typer.core import TyperCommand, TyperGroup

from segcli.cli import completion
from segcli.core.errors import UsageError
from segcli.core.settings import (
    PRECISION_CHOICES,
    TILE_MATCHES,
    TILE_MERGES,
    Settings,
    TileSettings,
    parse_classes,
    parse_tile,
)

if TYPE_CHECKING:
    # only for annotations: typer >= 0.25 vendors its own click (typer._click), whose classes its
    # TyperCommand and TyperGroup take; a "click" installed beside it is another package
    from typer import _click as click

    from segcli.models.registry import ModelSpec
    from segcli.runs.engines.base import Engine, SegmenterLike, SegmenterSpec
    from segcli.runs.video import VideoOptions


def model_registry() -> Mapping[str, ModelSpec]:
    """The known models by name: the one place the CLI reads the registry (torch-free)."""
    from segcli.models.registry import MODELS

    return MODELS


PANEL_MODEL = "Model"
PANEL_THRESHOLDS = "Thresholds"
PANEL_OUTPUTS = "Outputs"
PANEL_RUN = "Run control"
PANEL_VIDEO = "Video"
PANEL_TILES = "Large images"
"""The help panels options are grouped in (``rich_help_panel``), in the order shown."""

DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
        autocompletion=completion.complete_device,
        rich_help_panel=PANEL_MODEL,
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        autocompletion=completion.complete_precision,
        help="Number format of the network: fp32 (torchvision's exact results), bf16 (CPUs with "
        "AVX-512 BF16 or AMX, CUDA), fp16 (CUDA), auto (fastest native) [fp32].",
        show_default=False,
        rich_help_panel=PANEL_MODEL,
    ),
]


@dataclass(frozen=True)
class ModelOptions:
    """Which model runs, where, and with which settings (the ``Settings`` fields)."""

    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="{models} [coco; with --weights, the model the checkpoint was trained as].",
            autocompletion=completion.complete_model,
            show_default=False,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="Local checkpoint for the chosen architecture (state dict, or one under "
            "'model'/'state_dict'); a segcli train checkpoint names its model, classes and input size.",
            dir_okay=False,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None
    device: DeviceOpt = "auto"
    precision: PrecisionOpt = None
    half: Annotated[
        bool, typer.Option("--half", hidden=True, help="Alias of --precision fp16 (older name).")
    ] = False
    score_threshold: Annotated[
        float | None,
        typer.Option(
            "--score-threshold",
            "--conf",
            "-c",
            help="Drop detections below this score [{score_threshold}].",
            rich_help_panel=PANEL_THRESHOLDS,
        ),
    ] = None
    nms_iou: Annotated[
        float | None,
        typer.Option(
            "--nms-iou",
            help="Per-class NMS IoU of the box head [{nms_iou}].",
            rich_help_panel=PANEL_THRESHOLDS,
        ),
    ] = None
    proposals: Annotated[
        int | None,
        typer.Option(
            "--proposals",
            help="RPN proposals kept after NMS per image [{proposals}; torchvision uses 1000].",
            rich_help_panel=PANEL_THRESHOLDS,
        ),
    ] = None
    max_detections: Annotated[
        int | None,
        typer.Option(
            "--max-detections",
            help="Detections kept per image [{max_detections}].",
            rich_help_panel=PANEL_THRESHOLDS,
        ),
    ] = None
    mask_threshold: Annotated[
        float | None,
        typer.Option(
            "--mask-threshold",
            help="Mask probability -> binary mask [{mask_threshold}].",
            rich_help_panel=PANEL_THRESHOLDS,
        ),
    ] = None
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            help="Comma-separated class names to keep [{classes}].",
            autocompletion=completion.complete_classes,
            rich_help_panel=PANEL_THRESHOLDS,
        ),
    ] = None
    min_size: Annotated[
        int | None,
        typer.Option("--min-size", help="Model input short side [{min_size}].", rich_help_panel=PANEL_MODEL),
    ] = None
    max_size: Annotated[
        int | None,
        typer.Option(
            "--max-size", help="Model input long side cap [{max_size}].", rich_help_panel=PANEL_MODEL
        ),
    ] = None
    tiling: TileSettings | None = dataclasses.field(default=None, metadata={"cli": False})
    """Sliced inference (``--tile``, :class:`TileCliOptions`); not an option of its own."""
    tile_batch_size: int = dataclasses.field(default=1, metadata={"cli": False})
    """Tiles per forward pass (``--batch-size`` with ``--tile``)."""

    def settings(self) -> Settings:
        """The settings asked for (``None``: the model's default); raises SegcliError if invalid."""
        return Settings(
            score_threshold=self.score_threshold,
            nms_iou=self.nms_iou,
            proposals=self.proposals,
            max_detections=self.max_detections,
            mask_threshold=self.mask_threshold,
            classes=parse_classes(self.classes),
            min_size=self.min_size,
            max_size=self.max_size,
            precision=self.requested_precision(),
            tile=self.tiling,
        )

    def requested_precision(self) -> str:
        """``--precision`` as given (``--half`` is ``fp16``); ``fp32`` when neither is given."""
        precision = self.precision.strip().lower() if self.precision is not None else None
        if precision is not None and precision not in PRECISION_CHOICES:
            raise UsageError(
                f"--precision must be one of {', '.join(PRECISION_CHOICES)}; got {self.precision!r}"
            )
        if self.half:
            if precision not in (None, "fp16"):
                raise UsageError(
                    f"--half is --precision fp16; it cannot be combined with --precision {precision}"
                )
            return "fp16"
        return precision or "fp32"

    def check_precision(self) -> str:
        """The precision that will run on ``--device``; a mode the device cannot run natively
        is a ``UsageError`` (exit 2), raised without loading any model."""
        from segcli.core.errors import SegcliError
        from segcli.models.precision import resolve_precision
        from segcli.models.weights import resolve_device

        device = resolve_device(self.device)
        try:
            return resolve_precision(self.requested_precision(), device)
        except UsageError:
            raise
        except SegcliError as exc:
            raise UsageError(str(exc)) from None

    def check(self) -> Settings:
        """Every check that needs no model, for usage errors before anything loads: the
        settings' values, the model's name, and ``--classes`` against the model's categories
        (with ``--weights`` the checkpoint may name its own: then the check runs once it is read).
        Raises :class:`~segcli.core.errors.UsageError`; returns the settings asked for."""
        from segcli.models.registry import check_classes, get_spec

        settings = self.settings()
        spec = get_spec(self.model or "coco")
        settings.with_defaults(spec.defaults)  # e.g. --min-size above the model's own --max-size
        if settings.classes is not None and self.weights is None:
            check_classes(settings.classes, spec.categories, spec.name)
        return settings

    def spec(self) -> SegmenterSpec:
        """How to build the segmenter (picklable: what a worker process needs)."""
        from segcli.runs.engines.base import SegmenterSpec

        return SegmenterSpec(
            model=self.model,
            weights=None if self.weights is None else str(self.weights),
            device=self.device,
            settings=self.settings(),
            tile_batch_size=self.tile_batch_size,
        )


R = TypeVar("R")


def _options_object(cls: type, param: str, first: bool) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """A decorator adding every field of the dataclass ``cls`` (each annotated with its Typer
    option) to a command as an option; the command receives them as one ``param: cls``. The
    options go after the command's arguments (``first``) or after all its own parameters."""
    hints = get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != param]
        arguments = [p for p in own if p.default is inspect.Parameter.empty]
        rest = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in own
            if p.default is not inspect.Parameter.empty
        ]
        added = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=getattr(cls, n), annotation=hints[n])
            for n in names
        ]
        params = [*arguments, *added, *rest] if first else [*arguments, *rest, *added]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            return command(*args, **{param: cls(**{n: kwargs.pop(n) for n in names})}, **kwargs)

        # what inspect.signature (and so Typer) reads; the type checker knows no __signature__
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


def model_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add every :class:`ModelOptions` field to ``command`` as an option (after its arguments,
    before its other options: help panels appear in this order, Model and Thresholds first);
    ``command`` receives them as one ``model_opts: ModelOptions``."""
    return _options_object(ModelOptions, "model_opts", first=True)(command)


@dataclass(frozen=True)
class VideoCliOptions:
    """The video options of ``predict`` and ``batch``, declared once (``@video_options``)."""

    stride: Annotated[
        int,
        typer.Option("--stride", min=1, help="Videos: segment every Nth frame.", rich_help_panel=PANEL_VIDEO),
    ] = 1
    start: Annotated[
        float | None,
        typer.Option(
            "--start", min=0.0, help="Videos: first time to segment, in seconds.", rich_help_panel=PANEL_VIDEO
        ),
    ] = None
    end: Annotated[
        float | None,
        typer.Option(
            "--end", min=0.0, help="Videos: stop before this time, in seconds.", rich_help_panel=PANEL_VIDEO
        ),
    ] = None
    max_frames: Annotated[
        int | None,
        typer.Option(
            "--max-frames",
            min=1,
            help="Videos: segment at most this many frames.",
            rich_help_panel=PANEL_VIDEO,
        ),
    ] = None
    track: Annotated[
        bool,
        typer.Option(
            "--track/--no-track",
            help="Videos: keep instance ids and colours across frames.",
            rich_help_panel=PANEL_VIDEO,
        ),
    ] = True

    def check(self, batch_size: int) -> VideoOptions:
        """The library's options; a bad range is a usage error (exit 2, before any model loads)."""
        from segcli.io.video import FrameSelection
        from segcli.runs.video import VideoOptions

        if self.end is not None and self.end <= (self.start or 0.0):
            raise typer.BadParameter(
                f"--end ({self.end}) must be after --start ({self.start or 0})", param_hint="--end"
            )
        selection = FrameSelection(
            stride=self.stride, start=self.start, end=self.end, max_frames=self.max_frames
        )
        return VideoOptions(selection=selection, track=self.track, batch_size=batch_size)


def video_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add every :class:`VideoCliOptions` field to ``command`` as an option (after its own);
    ``command`` receives them as one ``video_opts: VideoCliOptions``."""
    return _options_object(VideoCliOptions, "video_opts", first=False)(command)


@dataclass(frozen=True)
class EngineCliOptions:
    """Where ``batch`` runs: ``--engine`` and the Ray options, declared once (``@engine_options``)."""

    engine: Annotated[str, typer.Option("--engine", help="local (this process) or ray (a Ray cluster).")] = (
        "local"
    )
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster [RAY_ADDRESS, else start a local one].")
    ] = None
    workers: Annotated[int | None, typer.Option("--workers", help="Ray workers [all GPUs or CPUs].")] = None
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", help="GPUs per Ray worker.")] = 0.0
    cpus_per_worker: Annotated[
        float | None, typer.Option("--cpus-per-worker", help="CPUs (torch threads) per Ray worker [1].")
    ] = None

    def select(self, model_opts: ModelOptions) -> Callable[[SegmenterLike], Engine]:
        """The engine, chosen and checked by :func:`segcli.runs.engines.select_engine` (Ray is
        imported and its options checked here, before any model loads)."""
        from segcli.runs.engines import RayOptions, select_engine

        ray = RayOptions(
            address=self.ray_address,
            workers=self.workers,
            cpus_per_worker=self.cpus_per_worker,
            gpus_per_worker=self.gpus_per_worker or None,
        )
        source = model_opts.spec() if self.engine == "ray" else None
        return select_engine(self.engine, source=source, ray=ray)


def engine_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add every :class:`EngineCliOptions` field to ``command`` (after its own options);
    ``command`` receives them as one ``engine_opts: EngineCliOptions``."""
    return _options_object(EngineCliOptions, "engine_opts", first=False)(command)


TILE_HELP_DEFAULTS = TileSettings()


@dataclass(frozen=True)
class TileCliOptions:
    """The sliced-inference options of ``predict``, ``batch`` and ``eval`` (``@tile_options``)."""

    tile: Annotated[
        str | None,
        typer.Option(
            "--tile",
            help="Segment in tiles of SIZE pixels of the image (auto: the model's input size) and merge "
            "them: small objects in large images. Lifts the --max-pixels default.",
            metavar="SIZE|auto",
            show_default=False,
            rich_help_panel=PANEL_TILES,
        ),
    ] = None
    tile_overlap: Annotated[
        float,
        typer.Option(
            "--tile-overlap",
            help="Overlap of neighbouring tiles, a fraction of the tile.",
            rich_help_panel=PANEL_TILES,
        ),
    ] = TILE_HELP_DEFAULTS.overlap
    tile_full: Annotated[
        bool,
        typer.Option(
            "--tile-full/--no-tile-full",
            help="Also segment the whole image once (large objects).",
            rich_help_panel=PANEL_TILES,
        ),
    ] = TILE_HELP_DEFAULTS.full
    tile_merge: Annotated[
        str,
        typer.Option(
            "--tile-merge",
            help="Detections shared by tiles: nmm unites their masks, nms keeps the best.",
            rich_help_panel=PANEL_TILES,
        ),
    ] = TILE_HELP_DEFAULTS.merge
    tile_match: Annotated[
        str,
        typer.Option(
            "--tile-match",
            help="When two tiles' detections are one object: shared (mask IoU where both tiles saw), "
            "iou or ios (of the whole masks).",
            rich_help_panel=PANEL_TILES,
        ),
    ] = TILE_HELP_DEFAULTS.match
    tile_match_threshold: Annotated[
        float,
        typer.Option(
            "--tile-match-threshold", help="Match at this value or more.", rich_help_panel=PANEL_TILES
        ),
    ] = TILE_HELP_DEFAULTS.match_threshold
    tile_class_agnostic: Annotated[
        bool,
        typer.Option(
            "--tile-class-agnostic/--tile-class-aware",
            help="Merge detections of different classes too (a tile that sees a sliver of an object often "
            "names it another class).",
            rich_help_panel=PANEL_TILES,
        ),
    ] = TILE_HELP_DEFAULTS.class_agnostic

    def check(self) -> TileSettings | None:
        """The tile settings (None without ``--tile``); a usage error (exit 2, before any model
        loads) for a bad value or a merge option without ``--tile``."""
        if self.tile is None:
            defaults = TileCliOptions()
            given = [
                "--" + f.name.replace("_", "-")
                for f in dataclasses.fields(self)
                if f.name != "tile" and getattr(self, f.name) != getattr(defaults, f.name)
            ]
            if given:
                raise UsageError(f"{given[0]} needs --tile")
            return None
        merge, match = self.tile_merge.strip().lower(), self.tile_match.strip().lower()
        if merge not in TILE_MERGES:
            raise UsageError(f"--tile-merge must be one of {', '.join(TILE_MERGES)}; got {self.tile_merge!r}")
        if match not in TILE_MATCHES:
            raise UsageError(
                f"--tile-match must be one of {', '.join(TILE_MATCHES)}; got {self.tile_match!r}"
            )
        return TileSettings(
            size=parse_tile(self.tile),
            overlap=self.tile_overlap,
            full=self.tile_full,
            merge=merge,
            match=match,
            match_threshold=self.tile_match_threshold,
            class_agnostic=self.tile_class_agnostic,
        )

    def apply(self, model_opts: ModelOptions, batch_size: int = 1) -> ModelOptions:
        """``model_opts`` with these tile settings (checked) and ``batch_size`` tiles a pass."""
        return dataclasses.replace(model_opts, tiling=self.check(), tile_batch_size=max(batch_size, 1))


def tile_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add every :class:`TileCliOptions` field to ``command`` as an option (after its own);
    ``command`` receives them as one ``tile_opts: TileCliOptions``."""
    return _options_object(TileCliOptions, "tile_opts", first=False)(command)


# --------------------------------------------------------------------------- help text
def _values_by_model(values: Mapping[str, object]) -> str:
    """``0.5`` when every model agrees, else ``800 for coco, coco-v2; 384 for blocks``."""
    groups: dict[str, list[str]] = {}
    for name, value in values.items():
        groups.setdefault("all" if value is None else str(value), []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{value} for {', '.join(names)}" for value, names in groups.items())


def help_defaults() -> dict[str, str]:
    """What the ``{placeholders}`` of the option help texts stand for, from the registry."""
    models = model_registry()
    out = {
        field.name: _values_by_model(
            {name: getattr(spec.defaults, field.name) for name, spec in models.items()}
        )
        for field in dataclasses.fields(Settings)
        if field.name != "tile"
    }
    out["models"] = ", ".join(
        f"{name} ({spec.architecture}{', bundled, offline' if spec.bundled_weights else ''})"
        for name, spec in models.items()
    )
    return out


def _option_names(command: click.Command) -> list[str]:
    return [name for param in command.params for name in (*param.opts, *param.secondary_opts)]


def tidy_help(params: list[click.Parameter]) -> None:
    """Help that reads like a CLI's, not Python's: arguments show as ``IMAGE...`` (no
    ``{images}...`` or ``<list[Path]>``), and flags show no ``<bool>``."""
    for param in params:
        if param.param_type_name == "argument":
            shown = (param.metavar or param.name or "ARG").upper()
            shown = shown if shown.endswith("...") or param.nargs == 1 else shown + "..."
            usage = shown if param.required else f"[{shown}]"
            param.metavar = shown
            # Typer's display hooks (TyperArgument's methods, not click.Parameter's), replaced
            # on this one parameter:
            param._usage_display_name = lambda usage=usage: usage  # type: ignore[attr-defined]
            param._rich_display_name = lambda shown=shown: shown  # type: ignore[attr-defined]
            param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]
        elif getattr(param, "is_flag", False):
            param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]  # TyperOption's


def reflow(text: str | None) -> str | None:
    """A docstring's paragraphs as one line each, so the terminal wraps them at its own width
    (not at the source's line breaks); paragraphs stay apart, and a paragraph with indented or
    bulleted lines is kept as it is."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        if any(line.startswith((" ", "- ", "* ", "\b")) for line in lines):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


if TYPE_CHECKING:
    _MixedIntoCommand = click.Command  # what the mixin's super() is, for the type checker
else:
    _MixedIntoCommand = object


class SuggestsOptions(_MixedIntoCommand):
    """Mixed into a Click command or group: a mistyped option suggests the closest ones."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            _suggest_option(exc, self)
            raise


class HelpWithModelDefaults(SuggestsOptions, TyperCommand):
    """A segcli command: option help names the model defaults (filled in when help is shown),
    and a mistyped option suggests the closest ones (``--scor`` -> ``--score-threshold``)."""

    hidden_options: tuple[str, ...] = ()
    """Model options a command takes but refuses (hidden from its help)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)
        tidy_help(self.params)  # the usage line of an error shows IMAGE... too
        for param in self.params:
            if param.name in self.hidden_options:  # an option: its hidden flag (click.Parameter has none)
                param.hidden = True  # type: ignore[attr-defined]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from rich.markup import escape

        values = help_defaults()
        for param in self.params:
            text = getattr(param, "help", None)
            if text and getattr(param, "_segcli_help", None) != text:  # once per text set
                # option help is plain text: "[all]" or "[its own folder]" must not read as Rich markup
                done = escape(text.format_map(values) if "{" in text else text)
                # an option's help (click.Parameter has none), and segcli's own marker on it
                param.help = param._segcli_help = done  # type: ignore[attr-defined]
        tidy_help(self.get_params(ctx))
        super().format_help(ctx, formatter)


class SuggestingGroup(SuggestsOptions, TyperGroup):
    """A command group whose unknown-command error suggests the closest commands by similarity
    (``compare semantic`` -> ``semantic-vs-instance``), and whose options do too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        tidy_help(self.get_params(ctx))
        super().format_help(ctx, formatter)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:
            # a usage error (Click's own class, which Typer may vendor): replace its suggestion;
            # caught as Exception, so its message is unknown to the type checker
            if args and "No such command" in str(getattr(exc, "message", "")):
                from segcli.core.suggest import suggest

                found = suggest(args[0], self.list_commands(ctx))
                exc.message = f"No such command {args[0]!r}." + (  # type: ignore[attr-defined]
                    " Did you mean " + " or ".join(map(repr, found)) + "?" if found else ""
                )
            raise


def _suggest_option(exc: Exception, command: click.Command) -> None:
    """Give a no-such-option error (Click's, which Typer may vendor) our suggestions, in place."""
    name = getattr(exc, "option_name", None)
    if name is None or not hasattr(exc, "possibilities"):
        return
    from segcli.core.suggest import foreign_option, suggest

    exc.possibilities = None
    names = _option_names(command)
    hint = foreign_option(name) if name not in names else None
    # exc is either click's NoSuchOption, caught as Exception: its message is unknown to the type checker
    if hint is not None:
        exc.message = f"No such option: {name}; {hint}."  # type: ignore[attr-defined]
        return
    found = suggest(name, names)
    exc.message = f"No such option: {name}." + (  # type: ignore[attr-defined]
        " Did you mean " + " or ".join(found) + "?" if found else ""
    )
