"""Sliced inference: the tile grid, each tile's detections placed in the full image, and the
merge of the detections that tiles share across their borders.

Everything here works on :class:`~segcli.core.instances.Instances` and never builds a
full-frame array: a mask stays a crop of its box, a merged mask is the union of its parts'
crops inside the union of their boxes.

**Grid.** Square tiles of ``size`` pixels step by ``size - round(size * overlap)``; the last
tile of a row or column is moved back to end at the image's edge, so that every tile has
the same size (one forward pass per batch) and none hangs over the image. A side shorter
than ``size`` is one tile of that side.

**Merge.** Every detection is placed in the image by its tile's offset. Then, from the
highest score down, each detection not yet taken starts a group and takes every detection
of *another* source (a tile, or the full-image pass) that matches it or a member already
taken, transitively: the four parts of an object at the corner of four tiles come together
through their neighbours. Only detections of different sources are ever compared (the
model's own NMS already ran inside each tile), so a 1-tile image gives exactly the untiled
result. ``nms`` keeps the group's best detection alone. ``nmm`` makes one object with one
mask: the best detection's own when its source saw the object whole (its mask touches no
tile edge inside the image, or it comes from the full-image pass), else the union of every
part, each pixel taken from the part whose tile saw it farthest from a tile edge
(:func:`stitch_crops`: where a tile cuts an object off, its mask is poorest).

Match metrics, all computed on the masks:

- ``shared`` (default): the IoU of the two masks inside the pixels *both* sources saw (the
  intersection of their windows). There both tiles saw the same pixels, so two parts of
  one object agree there however much of it each tile cut off. A detection its tile cut
  off (its mask touches the tile's inner edge) also matches when most of its pixels there
  lie on the other mask: the sliver one tile saw of an object is poorly segmented. Windows
  that only touch (overlap 0) compare the masks' pixel columns (rows) on either side of
  the shared edge.
- ``iou``, ``ios``: SAHI's metrics (intersection over union or over the smaller mask), but
  on the whole masks rather than on boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segcli.core.errors import SegcliError
from segcli.core.instances import Instances

Window = tuple[int, int, int, int]
"""A rectangle of the image, ``(x0, y0, x1, y1)``, end-exclusive."""

MERGE_CHOICES: tuple[str, ...] = ("nmm", "nms")
MATCH_CHOICES: tuple[str, ...] = ("shared", "iou", "ios")

MAX_TILES = 200_000
"""More tiles than this for one image is refused (a tiny --tile on a huge image)."""


# --------------------------------------------------------------------------- grid
def axis_starts(length: int, size: int, overlap: float) -> tuple[int, ...]:
    """Start offsets of the tiles along one side of ``length`` pixels."""
    if length < 1 or size < 1:
        raise ValueError(f"length and tile size must be positive, got {length} and {size}")
    if length <= size:
        return (0,)
    step = max(1, size - round(size * overlap))
    starts = list(range(0, length - size, step))
    starts.append(length - size)
    return tuple(sorted(set(starts)))


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one image: every combination of a column start and a row start."""

    image_size: tuple[int, int]  # (H, W)
    tile_size: tuple[int, int]  # (h, w) of every tile
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)

    @property
    def windows(self) -> list[Window]:
        """Every tile's window, row by row."""
        th, tw = self.tile_size
        return [(x, y, x + tw, y + th) for y in self.ys for x in self.xs]

    @property
    def covers_image(self) -> bool:
        """One tile that is the whole image (tiling changes nothing)."""
        return len(self) == 1 and self.tile_size == self.image_size

    def to_dict(self) -> dict[str, Any]:
        return {"tile": list(self.tile_size), "columns": list(self.xs), "rows": list(self.ys)}


def tile_grid(image_size: tuple[int, int], size: int, overlap: float) -> TileGrid:
    """The grid of ``size``-pixel tiles overlapping by ``overlap`` (a fraction of ``size``)."""
    h, w = int(image_size[0]), int(image_size[1])
    if not math.isfinite(overlap) or not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    xs, ys = axis_starts(w, size, overlap), axis_starts(h, size, overlap)
    if len(xs) * len(ys) > MAX_TILES:
        raise SegcliError(
            f"{w}x{h} in tiles of {size} px (overlap {overlap}) makes {len(xs) * len(ys):,} tiles, "
            f"over the {MAX_TILES:,} limit: use a larger --tile or less --tile-overlap"
        )
    return TileGrid(image_size=(h, w), tile_size=(min(size, h), min(size, w)), xs=xs, ys=ys)


def tile_pixels(image: np.ndarray, window: Window) -> np.ndarray:
    """The pixels of ``window`` as a contiguous (h, w, 3) uint8 copy: only the tile is read,
    so an image held in a memory map costs one tile of memory here."""
    x0, y0, x1, y1 = window
    return np.ascontiguousarray(image[y0:y1, x0:x1])


# --------------------------------------------------------------------------- placing
def place(instances: Instances, window: Window, image_size: tuple[int, int]) -> Instances:
    """``instances`` of the tile at ``window`` in the coordinates of the whole image
    (``image_size`` = (H, W)): boxes and mask boxes shifted, crops unchanged."""
    x0, y0 = int(window[0]), int(window[1])
    shift = np.array([x0, y0, x0, y0])
    return Instances(
        image_size=(int(image_size[0]), int(image_size[1])),
        boxes=instances.boxes + shift.astype(np.float32),
        scores=instances.scores,
        class_ids=instances.class_ids,
        class_names=instances.class_names,
        masks=instances.masks,
        mask_boxes=instances.mask_boxes + shift,
    )


@dataclass(frozen=True)
class Part:
    """The detections of one source (a tile, or the whole-image pass), placed in the image."""

    window: Window
    instances: Instances


# --------------------------------------------------------------------------- matching
def _intersect(a: Window, b: Window) -> Window:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _area(w: Window) -> int:
    return max(w[2] - w[0], 0) * max(w[3] - w[1], 0)


def _count(mask: np.ndarray, box: Window, region: Window) -> int:
    """Pixels of the crop ``mask`` (at ``box``) inside ``region``."""
    r = _intersect(box, region)
    if _area(r) == 0:
        return 0
    return int(mask[r[1] - box[1] : r[3] - box[1], r[0] - box[0] : r[2] - box[0]].sum())


def _overlap_count(ma: np.ndarray, ba: Window, mb: np.ndarray, bb: Window, region: Window) -> int:
    """Pixels that both crops hold inside ``region``."""
    r = _intersect(_intersect(ba, bb), region)
    if _area(r) == 0:
        return 0
    sa = ma[r[1] - ba[1] : r[3] - ba[1], r[0] - ba[0] : r[2] - ba[0]]
    sb = mb[r[1] - bb[1] : r[3] - bb[1], r[0] - bb[0] : r[2] - bb[0]]
    return int(np.count_nonzero(sa & sb))


def _edge_iou(ma: np.ndarray, ba: Window, wa: Window, mb: np.ndarray, bb: Window, wb: Window) -> float:
    """Windows ``wa`` and ``wb`` touch along an edge (no pixel in common): the IoU of the two
    masks' pixel lines on either side of that edge (one object cut by the edge continues
    across it). 0 when the windows do not share an edge."""
    if wa[2] == wb[0] or wb[2] == wa[0]:  # a vertical edge
        if wa[2] != wb[0]:
            ma, ba, wa, mb, bb, wb = mb, bb, wb, ma, ba, wa
        lo, hi = max(wa[1], wb[1]), min(wa[3], wb[3])
        x = wa[2]
        line_a = _line(ma, ba, x - 1, lo, hi, vertical=True)
        line_b = _line(mb, bb, x, lo, hi, vertical=True)
    elif wa[3] == wb[1] or wb[3] == wa[1]:  # a horizontal edge
        if wa[3] != wb[1]:
            ma, ba, wa, mb, bb, wb = mb, bb, wb, ma, ba, wa
        lo, hi = max(wa[0], wb[0]), min(wa[2], wb[2])
        y = wa[3]
        line_a = _line(ma, ba, y - 1, lo, hi, vertical=False)
        line_b = _line(mb, bb, y, lo, hi, vertical=False)
    else:
        return 0.0
    union = int(np.count_nonzero(line_a | line_b))
    return int(np.count_nonzero(line_a & line_b)) / union if union else 0.0


def _line(mask: np.ndarray, box: Window, at: int, lo: int, hi: int, *, vertical: bool) -> np.ndarray:
    """The mask's pixels on column (``vertical``) or row ``at``, from ``lo`` to ``hi``."""
    out = np.zeros(max(hi - lo, 0), dtype=bool)
    x0, y0, x1, y1 = box
    if vertical:
        if not x0 <= at < x1:
            return out
        a, b = max(lo, y0), min(hi, y1)
        if a < b:
            out[a - lo : b - lo] = mask[a - y0 : b - y0, at - x0]
    else:
        if not y0 <= at < y1:
            return out
        a, b = max(lo, x0), min(hi, x1)
        if a < b:
            out[a - lo : b - lo] = mask[at - y0, a - x0 : b - x0]
    return out


def match_score(
    ma: np.ndarray,
    ba: Window,
    wa: Window,
    mb: np.ndarray,
    bb: Window,
    wb: Window,
    metric: str,
    *,
    cut_a: bool = False,
    cut_b: bool = False,
) -> float:
    """How well mask ``ma`` (crop at ``ba``, seen by a source of window ``wa``) matches ``mb``.

    ``cut_a``/``cut_b``: the detection touches an edge of its window inside the image (its
    tile cut it off). For ``shared``, a cut detection also matches when most of its pixels in
    the shared window lie on the other mask (the sliver a tile saw of an object the other
    tile saw whole: its mask is poor, so IoU alone would call it another object).
    """
    if metric == "shared":
        shared = _intersect(wa, wb)
        if _area(shared) == 0:
            return _edge_iou(ma, ba, wa, mb, bb, wb)
        inter = _overlap_count(ma, ba, mb, bb, shared)
        if inter == 0:
            return 0.0
        in_a, in_b = _count(ma, ba, shared), _count(mb, bb, shared)
        score = inter / (in_a + in_b - inter)
        if cut_a:
            score = max(score, inter / in_a)
        if cut_b:
            score = max(score, inter / in_b)
        return score
    everywhere = (min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3]))
    inter = _overlap_count(ma, ba, mb, bb, everywhere)
    if inter == 0:
        return 0.0
    area_a, area_b = int(np.count_nonzero(ma)), int(np.count_nonzero(mb))
    if metric == "iou":
        return inter / (area_a + area_b - inter)
    if metric == "ios":
        return inter / min(area_a, area_b)
    raise ValueError(f"unknown match metric {metric!r}; choose from {', '.join(MATCH_CHOICES)}")


def is_cut(box: Window, window: Window, image_size: tuple[int, int]) -> bool:
    """Whether a mask box touches an edge of its source's window that lies inside the image."""
    h, w = image_size
    return (
        (box[0] == window[0] and window[0] > 0)
        or (box[1] == window[1] and window[1] > 0)
        or (box[2] == window[2] and window[2] < w)
        or (box[3] == window[3] and window[3] < h)
    )


def _touching(a: Window, b: Window) -> bool:
    """Rectangles that share a pixel or an edge segment (not a corner point only)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    return ix >= 0 and iy >= 0 and (ix > 0 or iy > 0)


# --------------------------------------------------------------------------- merging
@dataclass
class MergeStats:
    """What a merge did: detections in, instances out, groups of more than one part."""

    detections: int = 0
    instances: int = 0
    merged_groups: int = 0
    candidate_pairs: int = 0


@dataclass(frozen=True, eq=False, repr=False)
class TiledInstances(Instances):
    """``Instances`` of a tiled image, with what the tiling did (``tiling``: the JSON's
    ``tiling`` object: tile count, grid, per-stage seconds). Selecting returns plain
    ``Instances``."""

    tiling: dict[str, Any] = field(default_factory=dict)


def merge_parts(
    parts: Sequence[Part],
    image_size: tuple[int, int],
    *,
    merge: str = "nmm",
    match: str = "shared",
    threshold: float = 0.5,
    class_agnostic: bool = True,
    stats: MergeStats | None = None,
) -> Instances:
    """One ``Instances`` for the whole image from the placed detections of every source.

    See the module docstring for the algorithm. Results are sorted by score (highest first;
    ties keep source order), the score and class of a group are those of its best detection.
    """
    if merge not in MERGE_CHOICES:
        raise ValueError(f"unknown merge {merge!r}; choose from {', '.join(MERGE_CHOICES)}")
    if match not in MATCH_CHOICES:
        raise ValueError(f"unknown match metric {match!r}; choose from {', '.join(MATCH_CHOICES)}")
    h, w = int(image_size[0]), int(image_size[1])
    for part in parts:
        if part.instances.image_size != (h, w):
            raise ValueError(f"a part holds instances of {part.instances.image_size}, not {(h, w)}")
    sizes = [len(p.instances) for p in parts]
    n = sum(sizes)
    stats = stats if stats is not None else MergeStats()
    stats.detections = n
    if n == 0:
        stats.instances = 0
        return Instances.empty((h, w))
    source = np.repeat(np.arange(len(parts)), sizes)
    scores = np.concatenate([p.instances.scores for p in parts])
    class_ids = np.concatenate([p.instances.class_ids for p in parts])
    boxes = np.concatenate([p.instances.boxes for p in parts])
    mask_boxes = np.concatenate([p.instances.mask_boxes for p in parts])
    masks = [m for p in parts for m in p.instances.masks]
    names = [c for p in parts for c in p.instances.class_names]
    nonempty = np.array([m.size > 0 and bool(m.any()) for m in masks])

    # (whole, j): j matches as the same object (whole) or as a piece its tile cut off
    neighbours: list[list[tuple[bool, int]]] = [[] for _ in range(n)]
    windows = [p.window for p in parts]
    for i, j in _candidate_pairs(mask_boxes, source, nonempty):
        si, sj = int(source[i]), int(source[j])
        if not class_agnostic and class_ids[i] != class_ids[j]:
            continue
        if not _touching(windows[si], windows[sj]):
            continue
        bi, bj = _window(mask_boxes[i]), _window(mask_boxes[j])
        if min(bi[2], bj[2]) < max(bi[0], bj[0]) or min(bi[3], bj[3]) < max(bi[1], bj[1]):
            continue  # mask boxes neither overlap nor touch
        stats.candidate_pairs += 1
        args = (masks[i], bi, windows[si], masks[j], bj, windows[sj], match)
        if match_score(*args) >= threshold:
            neighbours[i].append((True, j))
            neighbours[j].append((True, i))
        elif match == "shared":
            cut_i, cut_j = is_cut(bi, windows[si], (h, w)), is_cut(bj, windows[sj], (h, w))
            if (cut_i or cut_j) and match_score(*args, cut_a=cut_i, cut_b=cut_j) >= threshold:
                neighbours[i].append((False, j))
                neighbours[j].append((False, i))

    order = np.lexsort((np.arange(n), -scores))
    taken = np.zeros(n, dtype=bool)
    groups: list[list[int]] = []
    for k in order:
        k = int(k)
        if taken[k]:
            continue
        taken[k] = True
        group, frontier = [k], [k]
        while frontier:
            m = frontier.pop(0)
            for whole, j in neighbours[m]:
                if taken[j]:
                    continue
                taken[j] = True
                group.append(j)
                if whole:  # a cut-off piece joins the group but brings in nothing more
                    frontier.append(j)
        groups.append(group)

    out_masks: list[np.ndarray] = []
    out_mask_boxes = np.zeros((len(groups), 4), dtype=np.int64)
    out_boxes = np.zeros((len(groups), 4), dtype=np.float32)
    for g, group in enumerate(groups):
        best = group[0]
        if merge == "nms" or len(group) == 1:
            out_masks.append(masks[best])
            out_mask_boxes[g] = mask_boxes[best]
            out_boxes[g] = boxes[best]
            continue
        stats.merged_groups += 1
        keeper_window = windows[int(source[best])]
        if keeper_window == (0, 0, w, h) or not is_cut(_window(mask_boxes[best]), keeper_window, (h, w)):
            # the best detection saw the object whole: its mask is the object's
            out_masks.append(masks[best])
            out_mask_boxes[g] = mask_boxes[best]
            out_boxes[g] = boxes[best]
            continue
        mask, mbox = stitch_crops(
            [masks[i] for i in group],
            [mask_boxes[i] for i in group],
            [windows[int(source[i])] for i in group],
            (h, w),
        )
        out_masks.append(mask)
        out_mask_boxes[g] = mbox
        gb = boxes[group]
        out_boxes[g] = (gb[:, 0].min(), gb[:, 1].min(), gb[:, 2].max(), gb[:, 3].max())
    keep = [g[0] for g in groups]
    stats.instances = len(groups)
    return Instances(
        image_size=(h, w),
        boxes=out_boxes,
        scores=scores[keep],
        class_ids=class_ids[keep],
        class_names=tuple(names[i] for i in keep),
        masks=tuple(out_masks),
        mask_boxes=out_mask_boxes,
    )


CELL = 256
"""Side of the cells detections are hashed into to find the pairs that may match."""


def _candidate_pairs(
    mask_boxes: np.ndarray, source: np.ndarray, nonempty: np.ndarray
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of non-empty detections of different sources whose mask
    boxes fall in a common cell of a :data:`CELL`-pixel grid (overlapping or touching boxes
    always do): near-linear in the detections, whatever the number of tiles."""
    buckets: dict[tuple[int, int], list[int]] = {}
    for k in np.flatnonzero(nonempty).tolist():
        x0, y0, x1, y1 = (int(v) for v in mask_boxes[k])
        for gy in range(y0 // CELL, y1 // CELL + 1):  # y1 // CELL: a box ending at a cell's
            for gx in range(x0 // CELL, x1 // CELL + 1):  # first pixel still touches it
                buckets.setdefault((gx, gy), []).append(k)
    pairs: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) < 2:
            continue
        for a in range(len(members)):
            i = members[a]
            for b in range(a + 1, len(members)):
                j = members[b]
                if source[i] != source[j]:
                    pairs.add((i, j) if i < j else (j, i))
    return sorted(pairs)


def _window(box: np.ndarray) -> Window:
    return (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


def union_crops(masks: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> tuple[np.ndarray, Window]:
    """The union of crops (each at its box) as one crop inside the union of their boxes;
    empty crops take no part. All empty: an empty crop at (0, 0, 0, 0)."""
    used = [(m, _window(b)) for m, b in zip(masks, boxes) if m.size and m.any()]
    if not used:
        return np.zeros((0, 0), dtype=bool), (0, 0, 0, 0)
    x0 = min(b[0] for _, b in used)
    y0 = min(b[1] for _, b in used)
    x1 = max(b[2] for _, b in used)
    y1 = max(b[3] for _, b in used)
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for m, b in used:
        out[b[1] - y0 : b[3] - y0, b[0] - x0 : b[2] - x0] |= m
    return out, (x0, y0, x1, y1)


def stitch_crops(
    masks: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    windows: Sequence[Window],
    image_size: tuple[int, int],
) -> tuple[np.ndarray, Window]:
    """The parts of one object united into one crop, each pixel decided by the part whose
    tile saw it farthest from the tile's inner edges (where a tile cuts an object off, its
    mask is poorest); a window that is the whole image (the full-image pass) decides only
    pixels no tile part covers. Pixels no part's window covers stay off. The first part wins
    ties. Parts: crops at their boxes, seen by sources of ``windows``."""
    used = [(m, _window(b), win) for m, b, win in zip(masks, boxes, windows) if m.size and m.any()]
    if not used:
        return np.zeros((0, 0), dtype=bool), (0, 0, 0, 0)
    h, w = image_size
    x0 = min(b[0] for _, b, _ in used)
    y0 = min(b[1] for _, b, _ in used)
    x1 = max(b[2] for _, b, _ in used)
    y1 = max(b[3] for _, b, _ in used)
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    best = np.full(out.shape, -np.inf)
    for m, b, win in used:
        r = _intersect((x0, y0, x1, y1), win)
        if _area(r) == 0:
            continue
        if win == (0, 0, w, h):
            depth = np.full((r[3] - r[1], r[2] - r[0]), -1.0)
        else:
            xs, ys = np.arange(r[0], r[2], dtype=float), np.arange(r[1], r[3], dtype=float)
            dx, dy = np.full(xs.shape, np.inf), np.full(ys.shape, np.inf)
            if win[0] > 0:
                dx = np.minimum(dx, xs - win[0])
            if win[2] < w:
                dx = np.minimum(dx, win[2] - 1 - xs)
            if win[1] > 0:
                dy = np.minimum(dy, ys - win[1])
            if win[3] < h:
                dy = np.minimum(dy, win[3] - 1 - ys)
            depth = np.minimum(dy[:, None], dx[None, :])
        values = np.zeros(depth.shape, dtype=bool)
        c = _intersect(r, b)  # the part's crop inside the region
        if _area(c):
            values[c[1] - r[1] : c[3] - r[1], c[0] - r[0] : c[2] - r[0]] = m[
                c[1] - b[1] : c[3] - b[1], c[0] - b[0] : c[2] - b[0]
            ]
        region = (slice(r[1] - y0, r[3] - y0), slice(r[0] - x0, r[2] - x0))
        wins = depth > best[region]
        best[region][wins] = depth[wins]
        out[region][wins] = values[wins]
    ys, xs = np.nonzero(out)
    if not len(xs):
        return np.zeros((0, 0), dtype=bool), (0, 0, 0, 0)
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return out[by0:by1, bx0:bx1].copy(), (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1)


def top_detections(instances: Instances, limit: int | None) -> Instances:
    """The ``limit`` best-scoring instances, best first (ties in order); all if fewer."""
    if limit is None or len(instances) <= limit:
        return instances
    return instances.select(np.lexsort((np.arange(len(instances)), -instances.scores))[:limit])
