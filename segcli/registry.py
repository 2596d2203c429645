"""The model registry: every model segcli knows by name, with its architecture, weights and defaults.

Instance models (``--model``): ``coco``, ``coco-v2`` and ``blocks``. Semantic models
(``compare --semantic``): ``deeplabv3``, ``fcn`` and ``lraspp``. A :class:`ModelSpec` says how
to build the bare network, where its weights come from and which defaults it runs with;
:mod:`segcli.weights` turns a spec into a loaded module.

This module imports neither torch nor torchvision: ``segcli --help`` can build its help text
from :attr:`ModelSpec.defaults`. The torchvision parts (builders, weights enums, COCO and VOC
category names) are resolved on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from segcli.errors import SegcliError
from segcli.settings import Settings

if TYPE_CHECKING:
    from torch import nn
    from torchvision.models._api import WeightsEnum

Task = Literal["instance", "semantic"]

BUNDLED_BLOCKS_WEIGHTS = Path(__file__).parent / "weights" / "blocks.pt"

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
BLOCKS_DEFAULTS = Settings(
    score_threshold=0.5,
    nms_iou=0.5,
    proposals=300,
    max_detections=100,
    mask_threshold=0.5,
    classes=None,
    min_size=384,
    max_size=640,
)
SEMANTIC_INPUT_SIZE = 520
"""Short side of a semantic model's input, as torchvision's ``weights.transforms()`` resize."""
_SEMANTIC_DEFAULTS = Settings(min_size=SEMANTIC_INPUT_SIZE)

Builder = Callable[[int, bool], "nn.Module"]
"""``build(num_classes, aux_loss)``: the bare architecture, randomly initialised."""


@dataclass(frozen=True)
class ModelSpec:
    """One named model: how to build it, where its weights come from, what it runs with.

    Weights come from torchvision's weights API and cache (``torchvision_weights_ref``,
    ``"module:Enum.MEMBER"``) or from a file bundled with segcli (``bundled_weights``); a
    local checkpoint (``--weights``) replaces either. ``defaults`` fills every knob the
    user leaves unset; a semantic model has only ``min_size`` (see :attr:`input_size`).
    """

    name: str
    task: Task
    architecture: str
    build: Builder
    defaults: Settings
    description: str
    torchvision_weights_ref: str | None = None
    bundled_weights: Path | None = None
    fixed_categories: Callable[[], tuple[str, ...]] | None = None
    aux_loss: bool = False
    """Whether the torchvision checkpoint holds an auxiliary classifier (DeepLabV3, FCN)."""

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


# --------------------------------------------------------------------------- builders
def _no_aux(architecture: str, aux_loss: bool) -> None:
    if aux_loss:
        raise SegcliError(f"{architecture} has no auxiliary classifier")


def _build_coco(num_classes: int, aux_loss: bool = False) -> nn.Module:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    _no_aux("maskrcnn_resnet50_fpn", aux_loss)
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes)


def _build_coco_v2(num_classes: int, aux_loss: bool = False) -> nn.Module:
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    _no_aux("maskrcnn_resnet50_fpn_v2", aux_loss)
    return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes)


def _build_blocks(num_classes: int, aux_loss: bool = False) -> nn.Module:
    from segcli.blocks.arch import build_blocks_maskrcnn

    _no_aux("segcli_blocks_maskrcnn", aux_loss)
    return build_blocks_maskrcnn(num_classes=num_classes)


def _blocks_categories() -> tuple[str, ...]:
    from segcli.blocks.arch import CATEGORIES

    return CATEGORIES


def _build_deeplabv3(num_classes: int, aux_loss: bool = False) -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_resnet50

    return deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)


def _build_fcn(num_classes: int, aux_loss: bool = False) -> nn.Module:
    from torchvision.models.segmentation import fcn_resnet50

    return fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)


def _build_lraspp(num_classes: int, aux_loss: bool = False) -> nn.Module:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    _no_aux("lraspp_mobilenet_v3_large", aux_loss)
    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)


# --------------------------------------------------------------------------- the registry
_DETECTION = "torchvision.models.detection"
_SEGMENTATION = "torchvision.models.segmentation"

_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="coco",
        task="instance",
        architecture="maskrcnn_resnet50_fpn",
        build=_build_coco,
        defaults=COCO_DEFAULTS,
        description="torchvision's Mask R-CNN, COCO weights",
        torchvision_weights_ref=f"{_DETECTION}:MaskRCNN_ResNet50_FPN_Weights.COCO_V1",
    ),
    ModelSpec(
        name="coco-v2",
        task="instance",
        architecture="maskrcnn_resnet50_fpn_v2",
        build=_build_coco_v2,
        defaults=COCO_DEFAULTS,
        description="torchvision's improved Mask R-CNN, COCO weights",
        torchvision_weights_ref=f"{_DETECTION}:MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1",
    ),
    ModelSpec(
        name="blocks",
        task="instance",
        architecture="segcli_blocks_maskrcnn",
        build=_build_blocks,
        defaults=BLOCKS_DEFAULTS,
        description="bundled toy-blocks model, offline",
        bundled_weights=BUNDLED_BLOCKS_WEIGHTS,
        fixed_categories=_blocks_categories,
    ),
    ModelSpec(
        name="deeplabv3",
        task="semantic",
        architecture="deeplabv3_resnet50",
        build=_build_deeplabv3,
        defaults=_SEMANTIC_DEFAULTS,
        description="DeepLabV3, 21 VOC classes",
        torchvision_weights_ref=f"{_SEGMENTATION}:DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1",
        aux_loss=True,
    ),
    ModelSpec(
        name="fcn",
        task="semantic",
        architecture="fcn_resnet50",
        build=_build_fcn,
        defaults=_SEMANTIC_DEFAULTS,
        description="FCN, 21 VOC classes",
        torchvision_weights_ref=f"{_SEGMENTATION}:FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1",
        aux_loss=True,
    ),
    ModelSpec(
        name="lraspp",
        task="semantic",
        architecture="lraspp_mobilenet_v3_large",
        build=_build_lraspp,
        defaults=_SEMANTIC_DEFAULTS,
        description="LR-ASPP MobileNetV3, 21 VOC classes",
        torchvision_weights_ref=f"{_SEGMENTATION}:LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
    ),
)

MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS if s.task == "instance"}
"""Instance segmentation models (``--model``), by name."""
SEMANTIC_MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS if s.task == "semantic"}
"""Semantic segmentation models (``compare --semantic``), by name."""


def get_spec(name: str, task: Task = "instance") -> ModelSpec:
    """The spec named ``name`` (any case); unknown names are a :class:`SegcliError` listing the valid ones."""
    models = MODELS if task == "instance" else SEMANTIC_MODELS
    spec = models.get(name.strip().lower())
    if spec is None:
        kind = "model" if task == "instance" else "semantic model"
        raise SegcliError(f"unknown {kind} {name!r}; choose one of: {', '.join(models)}")
    return spec
