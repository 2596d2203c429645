"""The bundled ``blocks`` model as data: its classes, input size and weights file, registered.

Torch-free (the network itself is :mod:`segcli.models.blocks.arch`, imported on first build).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from segcli.models.registry import ModelSpec, register
from segcli.models.zoo import COCO_DEFAULTS

if TYPE_CHECKING:
    from torch import nn

CLASS_NAMES: tuple[str, ...] = ("cube", "sphere", "cylinder")
"""The blocks classes; the category id of ``CLASS_NAMES[i]`` is ``i + 1``."""
CATEGORIES: tuple[str, ...] = ("__background__", *CLASS_NAMES)
"""The model's category list: index 0 the background, then :data:`CLASS_NAMES`."""

BLOCKS_DEFAULTS = dataclasses.replace(COCO_DEFAULTS, min_size=384, max_size=640)
BUNDLED_BLOCKS_WEIGHTS = Path(__file__).parent / "blocks.pt"


def _build(num_classes: int) -> nn.Module:
    from segcli.models.blocks.arch import build_blocks_maskrcnn  # torch: only when a model is built

    return build_blocks_maskrcnn(num_classes=num_classes)


BLOCKS = register(
    ModelSpec(
        "blocks",
        "instance",
        "segcli_blocks_maskrcnn",
        BLOCKS_DEFAULTS,
        bundled_weights=BUNDLED_BLOCKS_WEIGHTS,
        categories=CATEGORIES,
        builder=_build,
    )
)
