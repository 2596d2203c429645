"""``Instances`` from literals, for tests that need no model.

    make_instances(("cube", 0.9, (10, 10, 40, 40)), ("sphere", 0.8, (30, 25, 60, 55)))

Each item is (class name, score, box ``x0, y0, x1, y1`` end-exclusive); its mask fills the
box unless a full-frame mask is given as a fourth element. Class ids are the names' indices
in ``categories`` (the blocks model's by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segcli.core.instances import Instances

BLOCKS = ("__background__", "cube", "sphere", "cylinder")
SIZE = (60, 80)
"""(H, W) of the factories' images unless told otherwise."""

Box = tuple[int, int, int, int]
Item = tuple[str, float, Box] | tuple[str, float, Box, np.ndarray]


def box_mask(x0: int, y0: int, x1: int, y1: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A full-frame (H, W) bool mask that is True on the box ``x0:x1, y0:y1``."""
    m = np.zeros(size, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def make_instances(
    *items: Item, size: tuple[int, int] = SIZE, categories: Sequence[str] = BLOCKS
) -> Instances:
    """Instances of an image of ``size`` = (H, W), one per item, in the items' order.

    The detection box is the item's box; the mask is the filled box, or the item's fourth
    element (a full-frame bool mask), cropped to its extent.
    """
    if not items:
        return Instances.empty(size)
    scores = [item[1] for item in items]
    class_ids = [list(categories).index(item[0]) for item in items]
    names = [item[0] for item in items]
    boxes = [item[2] for item in items]
    h, w = size
    if all(
        len(item) == 3 and 0 <= item[2][0] <= item[2][2] <= w and 0 <= item[2][1] <= item[2][3] <= h
        for item in items
    ):
        # filled boxes inside the image: their crops directly, never N full frames (a 12 MP
        # crowd of 100 would be 1.2 GB); the same Instances as from_full_masks builds
        mask_boxes = [box if box[0] < box[2] and box[1] < box[3] else (0, 0, 0, 0) for box in boxes]
        crops = [np.ones((y1 - y0, x1 - x0), bool) for x0, y0, x1, y1 in mask_boxes]
        return Instances(size, boxes, scores, class_ids, names, crops, mask_boxes)
    masks = [item[3] if len(item) == 4 else box_mask(*item[2], size=size) for item in items]
    return Instances.from_full_masks(
        masks, scores=scores, class_ids=class_ids, class_names=names, boxes=boxes
    )


def from_masks(
    masks: Sequence[np.ndarray],
    scores: Sequence[float],
    class_ids: Sequence[int],
    categories: Sequence[str] = BLOCKS,
) -> Instances:
    """Instances from full-frame masks; boxes are the masks' extents, names from ``categories``."""
    return Instances.from_full_masks(
        masks, scores=scores, class_ids=class_ids, class_names=[categories[i] for i in class_ids]
    )


def class_map(instances: Instances) -> np.ndarray:
    """The semantic map the instances imply: (H, W) int32 class ids, 0 the background."""
    return instances.label_map(instances.class_ids, dtype=np.int32)
