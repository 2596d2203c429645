"""``Instances``: the one data type that flows from the model to every writer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import DTypeLike

Index = int | np.integer | slice | Sequence[int] | Sequence[bool] | np.ndarray
"""What ``Instances[...]`` takes: an int, a slice, a boolean mask or an array of indices."""

_REPR_ITEMS = 4
_REPR_NAME = 24


def nearest_indices(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each of ``n_out`` target pixels (pixel centres, nearest neighbour)."""
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64)
    return np.minimum(idx, n_in - 1)


@dataclass(frozen=True, eq=False, repr=False)
class Instances:
    """The detected instances of one image, in the image's own pixel coordinates.

    Masks are kept as boolean crops: ``masks[i]`` covers the pixels
    ``mask_boxes[i] = (x0, y0, x1, y1)`` (end-exclusive) of an image of
    ``image_size = (H, W)``. A 12 MP photo with 100 instances therefore holds the
    pixels of 100 boxes, never 100 full frames.

    ``inst[i]``, ``inst[a:b]``, ``inst[inst.scores > 0.8]`` and ``inst[[2, 0]]`` select
    instances (always a new ``Instances``); :meth:`label_map` paints them into one
    (H, W) array; :meth:`resized` carries them to another image size.
    """

    image_size: tuple[int, int]
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64, the model's category ids
    class_names: tuple[str, ...]
    masks: tuple[np.ndarray, ...]  # N bool arrays, crops
    mask_boxes: np.ndarray  # (N, 4) int64, x0 y0 x1 y1, end-exclusive
    _areas: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 1 or w < 1:
            raise ValueError(f"image_size must be positive (H, W), got {self.image_size}")
        n = len(self.scores)
        object.__setattr__(self, "boxes", np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "mask_boxes", np.asarray(self.mask_boxes, dtype=np.int64).reshape(-1, 4))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "masks", tuple(self.masks))
        lengths = {
            "boxes": len(self.boxes),
            "class_ids": len(self.class_ids),
            "class_names": len(self.class_names),
            "masks": len(self.masks),
            "mask_boxes": len(self.mask_boxes),
        }
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"Instances has {n} scores but {bad}")
        for i, (mask, (x0, y0, x1, y1)) in enumerate(zip(self.masks, self.mask_boxes)):
            if mask.dtype != np.bool_:
                raise ValueError(f"mask {i} must be bool, got {mask.dtype}")
            if not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
                raise ValueError(f"mask box {i} {(x0, y0, x1, y1)} lies outside the image {w}x{h}")
            if mask.shape != (y1 - y0, x1 - x0):
                raise ValueError(
                    f"mask {i} has shape {mask.shape}, its box {(x0, y0, x1, y1)} needs {(y1 - y0, x1 - x0)}"
                )

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        h, w = self.image_size
        shown = [
            f"{_shorten(self.class_names[i])} {self.scores[i]:.2f}"
            for i in range(min(len(self), _REPR_ITEMS))
        ]
        if len(self) > len(shown):
            shown.append(f"… {len(self) - len(shown)} more")
        return f"Instances({len(self)} of {w}x{h}" + (f": {', '.join(shown)})" if shown else ")")

    def __getitem__(self, index: Index) -> Instances:
        """The instances at ``index``: an int (one instance), a slice, a boolean mask of
        ``len(self)`` or a sequence/array of int indices (in that order, negatives count
        from the end). Out-of-range indices raise ``IndexError``."""
        n = len(self)
        if isinstance(index, (bool, np.bool_)):
            raise TypeError("Instances cannot be indexed by a single bool; use a boolean array")
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise IndexError(f"instance {index} out of range for {n} instances")
            return self.select([int(index) % n])
        if isinstance(index, slice):
            return self.select(np.arange(n)[index])
        arr = np.asarray(index)
        if arr.dtype == np.bool_:
            if arr.shape != (n,):
                raise IndexError(f"boolean index of shape {arr.shape} for {n} instances")
            return self.select(np.flatnonzero(arr))
        if arr.size == 0:
            return self.select(np.zeros(0, np.int64))
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise IndexError(
                f"Instances take int, slice, bool or int-array indices, got {arr.dtype} {arr.shape}"
            )
        bad = arr[(arr < -n) | (arr >= n)]
        if bad.size:
            raise IndexError(f"instance {int(bad[0])} out of range for {n} instances")
        return self.select(arr % n)

    @property
    def areas(self) -> np.ndarray:
        """Pixel count of each mask (int64)."""
        if self._areas is None:
            areas = np.array([int(m.sum()) for m in self.masks], dtype=np.int64)
            object.__setattr__(self, "_areas", areas)
        assert self._areas is not None
        return self._areas

    def paint_order(self) -> np.ndarray:
        """Indices from the weakest claim to the strongest: paint in this order so that
        where masks overlap, the higher score wins and, on equal scores, the lower index.
        """
        index = np.arange(len(self))
        return np.lexsort((-index, self.scores))

    def full_mask(self, i: int) -> np.ndarray:
        """Instance ``i``'s mask as an (H, W) bool array."""
        out = np.zeros(self.image_size, dtype=bool)
        x0, y0, x1, y1 = (int(v) for v in self.mask_boxes[i])
        out[y0:y1, x0:x1] = self.masks[i]
        return out

    def select(self, index: Sequence[int] | np.ndarray) -> Instances:
        """A new ``Instances`` with the instances at ``index`` (non-negative ints), in that order."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        return Instances(
            image_size=self.image_size,
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            class_ids=self.class_ids[idx],
            class_names=tuple(self.class_names[i] for i in idx),
            masks=tuple(self.masks[i] for i in idx),
            mask_boxes=self.mask_boxes[idx],
            _areas=None if self._areas is None else self._areas[idx],
        )

    def label_map(
        self, values: Sequence[int] | np.ndarray, *, background: int = 0, dtype: DTypeLike | None = None
    ) -> np.ndarray:
        """An (H, W) array holding, at each pixel, the value of the instance that owns it.

        ``values[i]`` is instance ``i``'s value (its id + 1 for an id map, its class id
        for a semantic map); pixels no mask covers hold ``background``. Where masks
        overlap, the higher score wins and, on equal scores, the lower index (painted in
        :meth:`paint_order`). The array has ``dtype``, by default that of ``values``.
        """
        vals = np.asarray(values, dtype=dtype)
        if vals.shape != (len(self),):
            raise ValueError(f"label_map needs one value per instance ({len(self)}), got shape {vals.shape}")
        out = np.full(self.image_size, background, dtype=vals.dtype)
        for i in self.paint_order():  # the winner of each pixel is painted last
            x0, y0, x1, y1 = (int(v) for v in self.mask_boxes[i])
            out[y0:y1, x0:x1][self.masks[i]] = vals[i]
        return out

    def resized(self, size: tuple[int, int]) -> Instances:
        """These instances on the image resized to ``size`` = (H', W').

        Boxes are scaled; masks are sampled by nearest neighbour at pixel centres
        (:func:`nearest_indices`), so they line up with a label map resized the same way.
        """
        h, w = self.image_size
        nh, nw = size
        if (nh, nw) == (h, w):
            return self
        sy, sx = nh / h, nw / w
        ys_all, xs_all = nearest_indices(nh, h), nearest_indices(nw, w)
        crops, boxes = [], np.zeros((len(self), 4), dtype=np.int64)
        for i in range(len(self)):
            x0, y0, x1, y1 = (int(v) for v in self.mask_boxes[i])
            crop = self.masks[i]
            # target pixels whose source pixel lies inside the crop
            tx = np.flatnonzero((xs_all >= x0) & (xs_all < x1))
            ty = np.flatnonzero((ys_all >= y0) & (ys_all < y1))
            if crop.size == 0 or not len(tx) or not len(ty):
                crops.append(np.zeros((0, 0), dtype=bool))
                continue
            crops.append(crop[np.ix_(ys_all[ty] - y0, xs_all[tx] - x0)])
            boxes[i] = (tx[0], ty[0], tx[-1] + 1, ty[-1] + 1)
        return Instances(
            image_size=(nh, nw),
            boxes=self.boxes * np.array([sx, sy, sx, sy], dtype=np.float32),
            scores=self.scores,
            class_ids=self.class_ids,
            class_names=self.class_names,
            masks=tuple(crops),
            mask_boxes=boxes,
        )

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> Instances:
        return cls(
            image_size=image_size,
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int64),
            class_names=(),
            masks=(),
            mask_boxes=np.zeros((0, 4), np.int64),
        )

    @classmethod
    def from_full_masks(
        cls,
        masks: Sequence[np.ndarray] | np.ndarray,
        *,
        scores: Sequence[float],
        class_ids: Sequence[int],
        class_names: Sequence[str],
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> Instances:
        """Build from full-frame masks (tests, other tools); boxes default to mask extents."""
        masks = [np.asarray(m, dtype=bool) for m in masks]
        if not masks:
            raise ValueError("from_full_masks needs at least one mask (use Instances.empty)")
        size = masks[0].shape
        crops, mask_boxes, tight = [], [], []
        for m in masks:
            if m.shape != size:
                raise ValueError(f"all masks must have one shape, got {m.shape} and {size}")
            ys, xs = np.nonzero(m)
            if len(xs):
                x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            else:
                x0 = y0 = x1 = y1 = 0
            crops.append(m[y0:y1, x0:x1].copy())
            mask_boxes.append((x0, y0, x1, y1))
            tight.append((x0, y0, x1, y1))
        return cls(
            image_size=(int(size[0]), int(size[1])),
            boxes=np.asarray(tight if boxes is None else boxes, dtype=np.float32),
            scores=np.asarray(scores, dtype=np.float32),
            class_ids=np.asarray(class_ids, dtype=np.int64),
            class_names=tuple(class_names),
            masks=tuple(crops),
            mask_boxes=np.asarray(mask_boxes, dtype=np.int64),
        )


def _shorten(name: str) -> str:
    return name if len(name) <= _REPR_NAME else name[: _REPR_NAME - 1] + "…"
