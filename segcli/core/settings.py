"""Inference settings: the knobs of the two-stage detector, validated in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from segcli.core.errors import UsageError

PRECISION_CHOICES: tuple[str, ...] = ("fp32", "bf16", "fp16", "auto")
"""Kept here (not imported from segcli.models.precision) so that settings never import torch."""

DEFAULT_MAX_PIXELS = 150_000_000
"""Images declaring more pixels are refused before decoding (``--max-pixels``). A limit on
inputs, not a model setting; it lives here because this module is light enough for the
CLI to import at start-up (``segcli.io.images`` pulls in numpy and Pillow)."""


TILED_MAX_PIXELS = 1_000_000_000
"""The ``--max-pixels`` default with ``--tile``: tiles are read from a memory map of the
decoded image (see :mod:`segcli.io.large`), so memory no longer grows with the image."""

TILE_SIZE_RANGE = (32, 100_000)
"""``--tile`` in pixels, inclusive (a tile larger than the image is one tile of the image)."""
MAX_TILE_OVERLAP = 0.9
TILE_MERGES: tuple[str, ...] = ("nmm", "nms")
TILE_MATCHES: tuple[str, ...] = ("shared", "iou", "ios")


@dataclass(frozen=True)
class TileSettings:
    """Sliced inference (``--tile``): see :mod:`segcli.inference.tiles`.

    ``size`` ``None`` is ``auto`` (the model's input short side); the ``Segmenter`` records
    the size it resolved to. ``full`` also runs the whole image once (large objects).
    ``merge``/``match``/``match_threshold``/``class_agnostic``: how detections that tiles
    share are merged.
    """

    size: int | None = None
    overlap: float = 0.2
    full: bool = True
    merge: str = "nmm"
    match: str = "shared"
    match_threshold: float = 0.5
    class_agnostic: bool = True

    def __post_init__(self) -> None:
        lo, hi = TILE_SIZE_RANGE
        if self.size is not None and (
            isinstance(self.size, bool) or not isinstance(self.size, int) or not lo <= self.size <= hi
        ):
            raise UsageError(
                f"--tile must be a whole number of pixels in {lo}..{hi} or auto, got {self.size!r}"
            )
        if not _finite(self.overlap) or not 0.0 <= self.overlap <= MAX_TILE_OVERLAP:
            raise UsageError(f"--tile-overlap must be in [0, {MAX_TILE_OVERLAP}], got {self.overlap!r}")
        if self.merge not in TILE_MERGES:
            raise UsageError(f"--tile-merge must be one of {', '.join(TILE_MERGES)}; got {self.merge!r}")
        if self.match not in TILE_MATCHES:
            raise UsageError(f"--tile-match must be one of {', '.join(TILE_MATCHES)}; got {self.match!r}")
        if not _finite(self.match_threshold) or not 0.0 < self.match_threshold <= 1.0:
            raise UsageError(f"--tile-match-threshold must be in (0, 1], got {self.match_threshold!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_tile(text: str) -> int | None:
    """``--tile``: ``"auto"`` -> ``None``, ``"512"`` -> 512; anything else is a usage error."""
    lo, hi = TILE_SIZE_RANGE
    cleaned = text.strip().lower()
    if cleaned == "auto":
        return None
    if not cleaned.isdigit() or not lo <= int(cleaned) <= hi:
        raise UsageError(f"--tile takes a size in pixels ({lo}..{hi}) or auto, got {text!r}")
    return int(cleaned)


MAX_DETECTIONS = 1000
"""Detections kept per image, at most: the mask head holds about 3 MB per detection on the
COCO model (2000 detections of one photo took 6 GB)."""
MAX_PROPOSALS = 5000
"""RPN proposals kept, at most: the RPN keeps 1000 per feature level before its NMS (5 levels)."""
MAX_INPUT_SIDE = 4096
"""The model's input sides (``--min-size``, ``--max-size``), at most: the COCO model's features
alone take about 1.4 GB at 4096 x 4096 (a 100000 px side would ask for hundreds of GB)."""
UPPER_BOUNDS: dict[str, tuple[int, str]] = {
    "proposals": (MAX_PROPOSALS, "the RPN keeps 1000 per level before its NMS"),
    "max_detections": (MAX_DETECTIONS, "about 3 MB each in the mask head"),
    "min_size": (MAX_INPUT_SIDE, "the model's memory grows with its input's area"),
    "max_size": (MAX_INPUT_SIDE, "the model's memory grows with its input's area"),
}


@dataclass(frozen=True)
class Settings:
    """Every knob that changes what the model returns.

    ``None`` means "the model's own default" (see ``registry.ModelSpec.defaults``);
    :meth:`with_defaults` fills them in, so that the recorded settings are complete.
    """

    score_threshold: float | None = None
    nms_iou: float | None = None
    proposals: int | None = None
    max_detections: int | None = None
    mask_threshold: float | None = None
    classes: tuple[str, ...] | None = None
    min_size: int | None = None
    max_size: int | None = None
    precision: str | None = None
    """``fp32``, ``bf16``, ``fp16`` or ``auto`` (see :mod:`segcli.models.precision`); the ``Segmenter``
    records the mode it resolved to, never ``auto``."""
    tile: TileSettings | None = None
    """Sliced inference; ``None``: the whole image at once (and nothing recorded)."""

    def __post_init__(self) -> None:
        for name in ("score_threshold", "nms_iou", "mask_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        for name in ("proposals", "max_detections", "min_size", "max_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
            top, why = UPPER_BOUNDS[name]
            if value is not None and value > top:
                raise UsageError(f"--{name.replace('_', '-')} must be at most {top:,}, got {value:,} ({why})")
        if self.min_size and self.max_size and self.min_size > self.max_size:
            raise UsageError(f"--min-size ({self.min_size}) must not exceed --max-size ({self.max_size})")
        if self.classes is not None and not self.classes:
            raise UsageError("--classes is empty: name at least one class")
        if self.precision is not None and self.precision not in PRECISION_CHOICES:
            raise UsageError(
                f"--precision must be one of {', '.join(PRECISION_CHOICES)}; got {self.precision!r}"
            )

    def with_defaults(self, defaults: Settings) -> Settings:
        """Fill every ``None`` from ``defaults``."""
        filled = {
            f.name: getattr(defaults, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }
        return Settings(**filled)

    def to_dict(self) -> dict[str, Any]:
        """The recorded settings; ``tile`` only when tiling (records of untiled runs are as
        they were before ``--tile`` existed)."""
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes) if self.classes is not None else None
        if self.tile is None:
            del out["tile"]
        return out


def parse_classes(text: str | None) -> tuple[str, ...] | None:
    """``"dog, cat"`` -> ``("dog", "cat")``; ``None`` or ``"all"`` -> ``None``."""
    if text is None or text.strip().lower() == "all":
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise UsageError(f"--classes {text!r} names no class")
    return names
