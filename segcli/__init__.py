"""segcli: instance segmentation from the command line, on torchvision's Mask R-CNN.

The library API is importable without loading torch until it is used::

    from segcli import Segmenter
    seg = Segmenter("blocks")                  # the bundled model; "coco" downloads once
    instances = seg("scene.png")               # a path, an RGB array, or a list of them
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# OpenMP threads that spin while they wait starve every other thread of a busy machine: the
# decode and write threads of a batch, other processes, a container's CPU quota (measured:
# batch 1.28-1.87x the bare network under load, 0.97-1.01x with PASSIVE; idle, no change).
# Set before torch loads (it reads it once, when libgomp starts); a user's own choice wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from segcli.core.errors import SegcliError
    from segcli.core.instances import Instances
    from segcli.core.settings import Settings
    from segcli.inference.segmenter import Segmenter
    from segcli.io.images import read_image

__all__ = ["Instances", "SegcliError", "Segmenter", "Settings", "__version__", "read_image"]

_LAZY = {
    "Instances": "segcli.core.instances",
    "SegcliError": "segcli.core.errors",
    "Segmenter": "segcli.inference.segmenter",
    "Settings": "segcli.core.settings",
    "read_image": "segcli.io.images",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'segcli' has no attribute {name!r}")
