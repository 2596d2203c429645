"""The model registry: every model segcli knows by name, with its architecture, weights and defaults.

A leaf: it imports no model. The models register into it (:func:`register`), as torchvision's
and timm's do: :mod:`segcli.models.zoo` registers torchvision's (``coco``, ``coco-v2``;
semantic ``deeplabv3``, ``fcn``, ``lraspp``), :mod:`segcli.models.blocks.spec` the bundled
``blocks``; importing :mod:`segcli.models` registers them all. A :class:`ModelSpec` says how to
build the bare network, where its weights come from, which defaults it runs with and its
category names; :mod:`segcli.models.weights` turns a spec into a loaded module.

Neither this module nor the specs import torch or torchvision: ``segcli --help``, ``segcli
models`` and ``segcli classes`` are answered from this data. Builders and weights enums are
resolved on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError, UsageError
from segcli.core.settings import Settings

if TYPE_CHECKING:
    from torch import nn
    from torchvision.models._api import WeightsEnum

Task = Literal["instance", "semantic"]


@dataclass(frozen=True)
class ModelSpec:
    """One named model: how to build it, where its weights come from, what it runs with.

    The architecture is torchvision's model of that name (``torchvision.models.get_model``)
    unless ``builder`` makes it. Weights come from torchvision's weights API and cache
    (``torchvision_weights_ref``, ``"module:Enum.MEMBER"``) or from a file bundled with
    segcli (``bundled_weights``); a local checkpoint (``--weights``) replaces either.
    ``defaults`` fills every knob the user leaves unset; a semantic model has only
    ``min_size`` (see :attr:`input_size`).
    """

    name: str
    task: Task
    architecture: str
    defaults: Settings
    torchvision_weights_ref: str | None = None
    bundled_weights: Path | None = None
    weights_url: str | None = None
    """Where torchvision's weights API downloads the weights from (data, checked against
    torchvision's own ``weights.url``): names the cached file without importing torch."""
    categories: tuple[str, ...] = ()
    """The category names, index = class id (index 0 the background): data, so that listing
    them imports no torch (a test checks them against torchvision's weights metadata)."""
    builder: Callable[[int], nn.Module] | None = None
    """``builder(num_classes)``: the bare architecture, for models torchvision does not know."""
    aux_loss: bool = False
    """Whether the torchvision checkpoint holds an auxiliary classifier (DeepLabV3, FCN)."""

    def build(self, num_classes: int, aux_loss: bool = False) -> nn.Module:
        """The bare architecture with ``num_classes`` outputs, randomly initialised;
        ``aux_loss`` adds the auxiliary classifier of the models that have one."""
        if aux_loss and not self.aux_loss:
            raise SegcliError(f"{self.architecture} has no auxiliary classifier")
        if self.builder is not None:
            return self.builder(num_classes)
        from torchvision.models import get_model

        extra = {"aux_loss": True} if aux_loss else {}
        module: nn.Module = get_model(
            self.architecture, weights=None, weights_backbone=None, num_classes=num_classes, **extra
        )
        return module

    @cached_property
    def torchvision_weights(self) -> WeightsEnum | None:
        """The torchvision weights enum member, or None for bundled weights."""
        if self.torchvision_weights_ref is None:
            return None
        module, _, path = self.torchvision_weights_ref.partition(":")
        enum_name, _, member = path.partition(".")
        weights: WeightsEnum = getattr(getattr(importlib.import_module(module), enum_name), member)
        return weights

    @property
    def input_size(self) -> int:
        """The short side the model's input is resized to by default."""
        assert self.defaults.min_size is not None
        return self.defaults.min_size

    @property
    def model_option(self) -> str:
        """The command-line option that names this model."""
        return "--model" if self.task == "instance" else "--semantic"

    @property
    def weights_field(self) -> str:
        """The library's name of this model's local checkpoint (``Segmenter(weights=...)``,
        ``run_compare(semantic_weights=...)``); the CLI's option is the same with dashes."""
        return "weights" if self.task == "instance" else "semantic_weights"


# --------------------------------------------------------------------------- the registry
MODELS: dict[str, ModelSpec] = {}
"""Instance segmentation models (``--model``), by name, in the order they registered."""

SEMANTIC_MODELS: dict[str, ModelSpec] = {}
"""Semantic segmentation models (``compare --semantic``), by name."""


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to :data:`MODELS` or :data:`SEMANTIC_MODELS` (by its task); a second spec
    of the same name is a programming error. Returns ``spec``, so a module can write
    ``BLOCKS = register(ModelSpec(...))``."""
    models = MODELS if spec.task == "instance" else SEMANTIC_MODELS
    if spec.name in models:
        raise ValueError(f"a {spec.task} model named {spec.name!r} is registered already")
    models[spec.name] = spec
    return spec


def get_spec(name: str, task: Task = "instance") -> ModelSpec:
    """The spec named ``name`` (any case); unknown names are a :class:`SegcliError` listing the valid ones."""
    models = MODELS if task == "instance" else SEMANTIC_MODELS
    spec = models.get(name.strip().lower())
    if spec is None:
        kind = "model" if task == "instance" else "semantic model"
        from segcli.core.suggest import did_you_mean

        raise UsageError(
            f"unknown {kind} {name!r}{did_you_mean(name, models)}; choose one of: {', '.join(models)}"
        )
    return spec


def check_classes(classes: Sequence[str], categories: Sequence[str], model: str) -> dict[str, int]:
    """``--classes`` names (any case) -> class ids in ``categories``; an unknown name is a
    :class:`UsageError` listing the valid ones. Torch-free: the CLI checks before loading."""
    lookup = {name.lower(): i for i, name in enumerate(categories) if name not in PLACEHOLDER_CLASSES}
    unknown = [c for c in classes if c.lower() not in lookup]
    if unknown:
        from segcli.core.suggest import did_you_mean

        names = [c for c in categories if c not in PLACEHOLDER_CLASSES]
        raise UsageError(
            f"unknown class {unknown[0]!r}{did_you_mean(unknown[0], names)} for --model {model}; "
            f"valid: {', '.join(names)}"
        )
    return {c: lookup[c.lower()] for c in classes}
