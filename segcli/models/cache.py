"""Where a registered model's weights are, answered from the registry's data: no torch.

``segcli models`` and ``segcli classes`` read this; torchvision's cache folder is computed as
``torch.hub.get_dir()`` computes it (``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``,
else ``~/.cache/torch/hub``; a test checks both agree).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.models.registry import ModelSpec


def torch_hub_dir() -> Path:
    """torch's hub folder, as ``torch.hub.get_dir()`` finds it (without importing torch)."""
    xdg = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(xdg, "torch")))) / "hub"


@dataclass(frozen=True)
class WeightsInfo:
    """Where a registered model's weights come from, without loading them."""

    source: str  # "torchvision:<weights name>" or "bundled:<file name>"
    path: Path | None  # the cached or bundled file (or where the download would go)
    cached: bool  # the file is there: no download needed
    classes: int  # class count, placeholders (background, N/A) left out


def class_names(spec: ModelSpec) -> list[tuple[int, str]]:
    """(class id, name) of every real class of ``spec`` (placeholders left out); loads no model."""
    return [(i, name) for i, name in enumerate(spec.categories) if name not in PLACEHOLDER_CLASSES]


def describe_weights(spec: ModelSpec) -> WeightsInfo:
    """Where ``spec``'s weights come from and whether they are on this machine."""
    classes = len(class_names(spec))
    if spec.torchvision_weights_ref is not None and spec.weights_url is not None:
        path = torch_hub_dir() / "checkpoints" / os.path.basename(spec.weights_url)
        name = spec.torchvision_weights_ref.partition(":")[2]
        return WeightsInfo(f"torchvision:{name}", path, path.is_file(), classes)
    if spec.bundled_weights is not None:
        path = spec.bundled_weights
        return WeightsInfo(f"bundled:{path.name}", path, path.is_file(), classes)
    return WeightsInfo("none (pass a checkpoint)", None, False, classes)
