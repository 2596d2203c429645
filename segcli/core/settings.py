"""Inference settings: the knobs of the two-stage detector, validated in one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from segcli.core.errors import UsageError

PRECISION_CHOICES: tuple[str, ...] = ("fp32", "bf16", "fp16", "auto")
"""Kept here (not imported from segcli.models.precision) so that settings never import torch."""

DEFAULT_MAX_PIXELS = 150_000_000
"""Images declaring more pixels are refused before decoding (``--max-pixels``). A limit on
inputs, not a model setting; it lives here because this module is light enough for the
CLI to import at start-up (``segcli.io.images`` pulls in numpy and Pillow)."""


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

    def __post_init__(self) -> None:
        for name in ("score_threshold", "nms_iou", "mask_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        for name in ("proposals", "max_detections", "min_size", "max_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
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
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes) if self.classes is not None else None
        return out


def parse_classes(text: str | None) -> tuple[str, ...] | None:
    """``"dog, cat"`` -> ``("dog", "cat")``; ``None`` or ``"all"`` -> ``None``."""
    if text is None or text.strip().lower() == "all":
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise UsageError(f"--classes {text!r} names no class")
    return names
