"""Mask encodings computed straight from box crops (no full-frame arrays)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def rle_counts(
    crop: np.ndarray, mask_box: np.ndarray | tuple[int, ...], image_size: tuple[int, int]
) -> np.ndarray:
    """Uncompressed COCO RLE counts (column-major, zeros first) of a crop placed in an image."""
    height, width = image_size
    x0, y0 = int(mask_box[0]), int(mask_box[1])
    h, w = crop.shape
    total = height * width
    if h == 0 or w == 0 or not crop.any():
        return np.array([total], dtype=np.int64)
    padded = np.zeros((w, h + 2), dtype=np.int8)
    padded[:, 1:-1] = crop.T
    cols, rows = np.nonzero(np.diff(padded, axis=1))
    changes = (cols.astype(np.int64) + x0) * height + rows.astype(np.int64) + y0
    # A run ending at the bottom of one column and one starting at the top of the
    # next meet at the same index: drop both so runs stay canonical.
    if len(changes) > 1:
        same = np.flatnonzero(changes[1:] == changes[:-1])
        if len(same):
            changes = np.delete(changes, np.concatenate([same, same + 1]))
    counts = np.diff(np.concatenate([[0], changes, [total]]))
    return counts[:-1] if counts[-1] == 0 else counts


def rle_encode(
    crop: np.ndarray, mask_box: np.ndarray | tuple[int, ...], image_size: tuple[int, int]
) -> dict[str, Any]:
    """COCO compressed RLE ``{"size": [H, W], "counts": str}`` of a crop in an image."""
    height, width = int(image_size[0]), int(image_size[1])
    counts = rle_counts(crop, mask_box, image_size)
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE (compressed string or bytes) as an (H, W) bool array."""
    counts = rle["counts"]
    obj = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(obj).astype(bool)
