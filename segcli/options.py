"""The model options of ``predict``, ``batch`` and ``compare``, declared once.

Typer has no option groups, so the group is a dataclass: each field of
:class:`ModelOptions` is one command-line option (its ``typer.Option`` sits in the
field's annotation), and :func:`model_options` adds every field to a command, which
then receives them as one ``model_opts: ModelOptions`` argument::

    @app.command(cls=HelpWithModelDefaults)
    @model_options
    def predict(images: ..., model_opts: ModelOptions) -> None:
        seg = load_segmenter(model_opts)

Help texts name each model's defaults (``{score_threshold}`` below); they are filled
in from the model registry only when help is shown, so ``segcli`` starts without
importing torch. Nothing here imports torch, numpy or OpenCV.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import click
import typer
from typer.core import TyperCommand

from segcli.settings import Settings, parse_classes

if TYPE_CHECKING:
    from segcli.engines import SegmenterSpec
    from segcli.registry import ModelSpec


def model_registry() -> Mapping[str, ModelSpec]:
    """The known models by name: the one place the CLI reads the registry (torch-free)."""
    from segcli.registry import MODELS

    return MODELS


DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]


@dataclass(frozen=True)
class ModelOptions:
    """Which model runs, where, and with which settings (the ``Settings`` fields)."""

    model: Annotated[str, typer.Option("--model", "-m", help="{models}.")] = "coco"
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="Local checkpoint for the chosen architecture (state dict, or one under "
            "'model'/'state_dict').",
            dir_okay=False,
        ),
    ] = None
    device: DeviceOpt = "auto"
    half: Annotated[bool, typer.Option("--half", help="fp16 autocast (CUDA only).")] = False
    score_threshold: Annotated[
        float | None,
        typer.Option("--score-threshold", help="Drop detections below this score [{score_threshold}]."),
    ] = None
    nms_iou: Annotated[
        float | None, typer.Option("--nms-iou", help="Per-class NMS IoU of the box head [{nms_iou}].")
    ] = None
    proposals: Annotated[
        int | None,
        typer.Option(
            "--proposals",
            help="RPN proposals kept after NMS per image [{proposals}; torchvision uses 1000].",
        ),
    ] = None
    max_detections: Annotated[
        int | None, typer.Option("--max-detections", help="Detections kept per image [{max_detections}].")
    ] = None
    mask_threshold: Annotated[
        float | None,
        typer.Option("--mask-threshold", help="Mask probability -> binary mask [{mask_threshold}]."),
    ] = None
    classes: Annotated[
        str | None, typer.Option("--classes", help="Comma-separated class names to keep [{classes}].")
    ] = None
    min_size: Annotated[
        int | None, typer.Option("--min-size", help="Model input short side [{min_size}].")
    ] = None
    max_size: Annotated[
        int | None, typer.Option("--max-size", help="Model input long side cap [{max_size}].")
    ] = None

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
        )

    def check(self) -> Settings:
        """Every check that needs no model, for usage errors before anything loads: the
        settings' values, the model's name, and ``--classes`` against the model's categories
        (with ``--weights`` the checkpoint may name its own: then the check runs once it is read).
        Raises :class:`~segcli.errors.UsageError`; returns the settings asked for."""
        from segcli.registry import check_classes, get_spec

        settings = self.settings()
        spec = get_spec(self.model)
        if settings.classes is not None and self.weights is None:
            check_classes(settings.classes, spec.categories, spec.name)
        return settings

    def spec(self) -> SegmenterSpec:
        """How to build the segmenter (picklable: what a worker process needs)."""
        from segcli.engines import SegmenterSpec

        return SegmenterSpec(
            model=self.model,
            weights=None if self.weights is None else str(self.weights),
            device=self.device,
            settings=self.settings(),
            half=self.half,
        )


R = TypeVar("R")


def model_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add every :class:`ModelOptions` field to ``command`` as an option (after its own
    parameters); ``command`` receives them as one ``model_opts: ModelOptions``."""
    hints = get_type_hints(ModelOptions, include_extras=True)
    names = [f.name for f in dataclasses.fields(ModelOptions)]
    own = inspect.signature(command, eval_str=True).parameters.values()
    params = [p for p in own if p.name != "model_opts"] + [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=getattr(ModelOptions, name), annotation=hints[name]
        )
        for name in names
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        opts = ModelOptions(**{name: kwargs.pop(name) for name in names})
        return command(*args, model_opts=opts, **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


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
    }
    out["models"] = ", ".join(
        f"{name} ({spec.architecture}{', bundled, offline' if spec.bundled_weights else ''})"
        for name, spec in models.items()
    )
    return out


class HelpWithModelDefaults(TyperCommand):
    """A command whose option help names the model defaults (filled in when help is shown)."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        values = help_defaults()
        for param in self.params:
            text = getattr(param, "help", None)
            if text and "{" in text:
                param.help = text.format_map(values)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)
