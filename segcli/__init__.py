"""segcli: instance segmentation from the command line, on torchvision's Mask R-CNN.

The library API is importable without loading torch until it is used::

    from segcli import Segmenter
    seg = Segmenter("blocks")                  # the bundled model; "coco" downloads once
    instances = seg("scene.png")               # a path, an RGB array, or a list of them
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from segcli.errors import SegcliError
    from segcli.imageio import read_image
    from segcli.instances import Instances
    from segcli.predictor import Segmenter
    from segcli.settings import Settings

__all__ = ["Instances", "SegcliError", "Segmenter", "Settings", "__version__", "read_image"]

_LAZY = {
    "Instances": "segcli.instances",
    "SegcliError": "segcli.errors",
    "Segmenter": "segcli.predictor",
    "Settings": "segcli.settings",
    "read_image": "segcli.imageio",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'segcli' has no attribute {name!r}")
