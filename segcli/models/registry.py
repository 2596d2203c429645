"""The model registry: every model segcli knows by name, with its architecture, weights and defaults.

Instance models (``--model``): ``coco``, ``coco-v2`` and ``blocks``. Semantic models
(``compare --semantic``): ``deeplabv3``, ``fcn`` and ``lraspp``. A :class:`ModelSpec` says how
to build the bare network, where its weights come from and which defaults it runs with;
:mod:`segcli.models.weights` turns a spec into a loaded module.

This module imports neither torch nor torchvision: ``segcli --help`` can build its help text
from :attr:`ModelSpec.defaults`. The torchvision parts (builders, weights enums, COCO and VOC
category names) are resolved on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from segcli.core.errors import SegcliError, UsageError
from segcli.core.settings import Settings

if TYPE_CHECKING:
    from torch import nn
    from torchvision.models._api import WeightsEnum

Task = Literal["instance", "semantic"]

BUNDLED_BLOCKS_WEIGHTS = Path(__file__).parent / "blocks" / "blocks.pt"

COCO_DEFAULTS = Settings(
    score_threshold=0.5,
    nms_iou=0.5,
    proposals=300,
    max_detections=100,
    mask_threshold=0.5,
    classes=None,
    min_size=800,
    max_size=1333,
)
BLOCKS_DEFAULTS = dataclasses.replace(COCO_DEFAULTS, min_size=384, max_size=640)
SEMANTIC_INPUT_SIZE = 520
"""Short side of a semantic model's input, as torchvision's ``weights.transforms()`` resize."""


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
    builder: Callable[[int], nn.Module] | None = None
    """``builder(num_classes)``: the bare architecture, for models torchvision does not know."""
    fixed_categories: Callable[[], tuple[str, ...]] | None = None
    """Category names when no torchvision weights name them (loaded on first use)."""
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

    @cached_property
    def categories(self) -> tuple[str, ...]:
        """The category names, index = class id (index 0 the background)."""
        if self.fixed_categories is not None:
            return self.fixed_categories()
        assert self.torchvision_weights is not None, f"{self.name} names no categories"
        return tuple(self.torchvision_weights.meta["categories"])

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
    def weights_option(self) -> str:
        """The command-line option that gives this model a local checkpoint."""
        return "--weights" if self.task == "instance" else "--semantic-weights"


# --------------------------------------------------------------------------- the registry
def _build_blocks(num_classes: int) -> nn.Module:
    from segcli.models.blocks.arch import build_blocks_maskrcnn

    return build_blocks_maskrcnn(num_classes=num_classes)


def _blocks_categories() -> tuple[str, ...]:
    from segcli.models.blocks.arch import CATEGORIES

    return CATEGORIES


def _coco(name: str, architecture: str, weights_enum: str) -> ModelSpec:
    """An instance model of torchvision's with its COCO weights."""
    ref = f"torchvision.models.detection:{weights_enum}.COCO_V1"
    return ModelSpec(name, "instance", architecture, COCO_DEFAULTS, torchvision_weights_ref=ref)


def _voc(name: str, architecture: str, weights_enum: str, *, aux_loss: bool) -> ModelSpec:
    """A semantic model of torchvision's with its 21-class PASCAL VOC weights."""
    ref = f"torchvision.models.segmentation:{weights_enum}.COCO_WITH_VOC_LABELS_V1"
    defaults = Settings(min_size=SEMANTIC_INPUT_SIZE)
    return ModelSpec(name, "semantic", architecture, defaults, torchvision_weights_ref=ref, aux_loss=aux_loss)


BLOCKS = ModelSpec(
    "blocks",
    "instance",
    "segcli_blocks_maskrcnn",
    BLOCKS_DEFAULTS,
    bundled_weights=BUNDLED_BLOCKS_WEIGHTS,
    builder=_build_blocks,
    fixed_categories=_blocks_categories,
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _coco("coco", "maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights"),
        _coco("coco-v2", "maskrcnn_resnet50_fpn_v2", "MaskRCNN_ResNet50_FPN_V2_Weights"),
        BLOCKS,
    )
}
"""Instance segmentation models (``--model``), by name."""

SEMANTIC_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _voc("deeplabv3", "deeplabv3_resnet50", "DeepLabV3_ResNet50_Weights", aux_loss=True),
        _voc("fcn", "fcn_resnet50", "FCN_ResNet50_Weights", aux_loss=True),
        _voc("lraspp", "lraspp_mobilenet_v3_large", "LRASPP_MobileNet_V3_Large_Weights", aux_loss=False),
    )
}
"""Semantic segmentation models (``compare --semantic``), by name."""


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
    from segcli.core.instances import PLACEHOLDER_CLASSES

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
