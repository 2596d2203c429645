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


def rle_string_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths a COCO compressed RLE string encodes (pycocotools' ``rleFrString``,
    vectorised), without touching pycocotools: a corrupt string raises ``ValueError`` here
    instead of making pycocotools write past a buffer. Runs are checked to be >= 0."""
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not data:
        return np.zeros(0, np.int64)
    chars = np.frombuffer(data, np.uint8).astype(np.int64) - 48
    if chars.min() < 0 or chars.max() > 63:
        raise ValueError("characters outside the RLE alphabet")
    more = (chars & 0x20) != 0
    if more[-1]:
        raise ValueError("the last run is cut short")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 12:
        raise ValueError("a run length with too many digits")
    position = np.arange(len(chars)) - np.repeat(starts, lengths)
    parts = (chars & 0x1F) << (5 * position)
    values = np.add.reduceat(parts, starts)
    negative = (chars[ends] & 0x10) != 0
    values = values - (negative.astype(np.int64) << (5 * lengths))
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # run m > 2 is stored as a difference to run m - 2
    runs[2::2] = np.cumsum(values[2::2])
    if runs.min() < 0:
        raise ValueError("a negative run length")
    return runs


def rle_problem(rle: Any, height: int, width: int) -> str | None:
    """Why ``rle`` is not a COCO RLE of an ``height`` x ``width`` image (None: it is): its
    ``size`` must be ``[height, width]`` and its runs (a list, or a compressed string) must
    be non-negative integers that add up to ``height * width``."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        return "an RLE needs 'size' and 'counts'"
    size = rle["size"]
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        return f"RLE size {str(size)[:40]} is not [height, width]"
    if size != [height, width]:
        return f"RLE of size {size[0]}x{size[1]} (height x width) in an image of {height}x{width}"
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return "RLE counts must be non-negative integers"
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        try:
            total = int(rle_string_counts(counts).sum())
        except (ValueError, UnicodeEncodeError) as exc:
            return f"corrupt compressed RLE counts ({exc})"
    else:
        return "RLE counts must be a list or a string"
    if total != height * width:
        return f"RLE counts cover {total} pixels, not the image's {height}x{width} = {height * width}"
    return None
