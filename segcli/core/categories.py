"""Category lists: what is a class and what only holds a slot. Torch- and numpy-free."""

from __future__ import annotations

PLACEHOLDER_CLASSES = frozenset({"__background__", "N/A"})
"""Entries of a model's category list that are not classes (torchvision's COCO has both)."""
