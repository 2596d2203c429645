"""The numbers of ``segcli compare semantic-vs-instance``: per class, instances against semantic regions.

Pure functions of ``Instances`` and a semantic map (an (H, W) array of class indices, 0 the
background); no drawing, no torch. Classes of the two sides are matched by name, so a VOC
semantic model and a COCO instance model meet on ``airplane``, ``motorcycle``, ``tv`` and the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from segcli.core.instances import Instances

SCHEMA = "segcli.compare/1"

CONNECTIVITY = 8
"""Semantic regions are 8-connected: pixels touching at a corner belong to one region."""

BACKGROUND = 0

VOC_TO_COCO: dict[str, str] = {
    "aeroplane": "airplane",
    "diningtable": "dining table",
    "motorbike": "motorcycle",
    "pottedplant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
}
"""PASCAL VOC class names that COCO spells differently; the other 14 VOC names are COCO's."""


# --------------------------------------------------------------------------- names
def coco_name(voc_name: str) -> str:
    """COCO's spelling of a PASCAL VOC class name (``aeroplane`` -> ``airplane``)."""
    return VOC_TO_COCO.get(voc_name, voc_name)


def voc_names_as_coco(voc_categories: Sequence[str]) -> dict[int, str]:
    """Index -> COCO spelling for a VOC model's categories (index 0 the background)."""
    return {i: coco_name(name) for i, name in enumerate(voc_categories)}


def _key(name: str) -> str:
    return " ".join(name.lower().split())


# --------------------------------------------------------------------------- numbers
@dataclass(frozen=True)
class ClassStats:
    """One class of one image, seen by semantic and by instance segmentation."""

    label: str
    instances: int  # instances of the class
    semantic_regions: int  # connected regions of the class in the semantic map
    semantic_pixels: int  # pixels of the class in the semantic map
    instance_pixels: int  # pixels of the union of the class's instance masks
    score: float | None  # highest instance score of the class (None: no instance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "instances": self.instances,
            "semantic_regions": self.semantic_regions,
            "semantic_pixels": self.semantic_pixels,
            "instance_pixels": self.instance_pixels,
            "score": None if self.score is None else round(self.score, 4),
        }


def count_regions(mask: np.ndarray, connectivity: int = CONNECTIVITY) -> int:
    """Connected regions of a bool mask (``cv2.connectedComponents``, 8- or 4-connected)."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if not mask.any():
        return 0
    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=connectivity)
    return int(n) - 1


def class_stats(
    instances: Instances,
    semantic_map: np.ndarray,
    semantic_names: Mapping[int, str],
    *,
    connectivity: int = CONNECTIVITY,
) -> list[ClassStats]:
    """Per-class numbers, one entry per class found by either side, sorted by label.

    ``semantic_names`` names the indices of ``semantic_map`` (0 is always background);
    classes are matched to the instances' ``class_names`` by name, ignoring case.
    """
    if semantic_map.shape != instances.image_size:
        raise ValueError(
            f"semantic map is {semantic_map.shape}, the instances' image is {instances.image_size}"
        )
    if semantic_map.size and int(semantic_map.min()) < 0:
        raise ValueError("semantic map holds negative class indices")
    labels: dict[str, str] = {}
    members: dict[str, list[int]] = {}
    for i, name in enumerate(instances.class_names):
        labels.setdefault(_key(name), name)
        members.setdefault(_key(name), []).append(i)
    counts = np.bincount(semantic_map.ravel()) if semantic_map.size else np.zeros(1, np.int64)
    ids: dict[str, list[int]] = {}
    for cid in np.flatnonzero(counts):
        if cid == BACKGROUND:
            continue
        name = semantic_names.get(int(cid), f"class {cid}")
        labels.setdefault(_key(name), name)
        ids.setdefault(_key(name), []).append(int(cid))

    stats = []
    for key, label in labels.items():
        class_ids = ids.get(key, [])
        sem_pixels = int(sum(int(counts[c]) for c in class_ids))
        regions = 0
        if class_ids:
            regions = count_regions(np.isin(semantic_map, class_ids), connectivity)
        idx = members.get(key, [])
        stats.append(
            ClassStats(
                label=label,
                instances=len(idx),
                semantic_regions=regions,
                semantic_pixels=sem_pixels,
                instance_pixels=_union_area(instances, idx),
                score=float(instances.scores[idx].max()) if idx else None,
            )
        )
    return sorted(stats, key=lambda s: (_key(s.label), s.label))


def _union_area(instances: Instances, index: Sequence[int]) -> int:
    """Pixels covered by any of the masks ``index`` (computed inside their joint box)."""
    boxes = instances.mask_boxes[list(index)] if len(index) else np.zeros((0, 4), np.int64)
    if not len(boxes):
        return 0
    bx0, by0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    bx1, by1 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    union = np.zeros((by1 - by0, bx1 - bx0), dtype=bool)
    for i in index:
        x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
        union[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] |= instances.masks[i]
    return int(union.sum())


def compare_record(
    stats: Sequence[ClassStats],
    *,
    image_path: str,
    image_size: tuple[int, int],
    semantic: str,
    connectivity: int = CONNECTIVITY,
    **extra: Any,
) -> dict[str, Any]:
    """The ``segcli.compare/1`` JSON object; ``extra`` keys (model, settings, ...) follow."""
    height, width = image_size
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": int(width), "height": int(height)},
        "semantic": semantic,
        "classes": [s.to_dict() for s in stats],
        "connectivity": connectivity,
    }
    record.update({k: v for k, v in extra.items() if v is not None})
    return record
