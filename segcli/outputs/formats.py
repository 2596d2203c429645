"""Masks as polygons and the files other tools read: COCO, YOLO-seg, LabelMe.

Pure functions from ``Instances`` (and the image's size or path) to plain Python
objects or text; writing them to disk is the caller's business.

**Polygons.** Each mask is traced with OpenCV (``cv2.findContours``, two-level
hierarchy: outer rings and their holes) on the mask's crop upsampled 2x with
nearest neighbour. Tracing at twice the resolution puts every vertex a quarter of
a pixel inside the true pixel boundary, so a polygon filled by "pixel centre inside"
reproduces the mask exactly, one-pixel specks and one-pixel-wide lines included
(which a trace at 1x turns into zero-area rings). Vertices within a quarter pixel of
a straight line are then dropped (Douglas-Peucker), which keeps that exactness.

**Holes.** COCO, YOLO-seg and LabelMe polygons are simple point lists: none can mark
a ring as a hole, and COCO unions the polygons of one object, so a hole sent as a
second polygon would be filled in. Each hole is therefore cut into its outer ring
with a zero-width bridge: the ring walks to the hole's nearest vertex, around the
hole, and back along the same segment. The bridge's two edges cancel under both
the even-odd and the non-zero fill rules (OpenCV traces holes in the opposite
orientation to outer rings), so the hole stays empty in pycocotools, OpenCV's
``fillPoly`` and Pillow's ``ImageDraw.polygon``. YOLO-seg has one polygon per
object and line, so the separate parts of one object are bridged together the same
way (as Ultralytics' own COCO converter does).

**Coordinates.** COCO: pixel ``i`` spans ``[i, i+1)`` (pycocotools' convention);
vertices keep their quarter pixels and ``frPyObjects`` gives the mask back exactly.
YOLO-seg and LabelMe: pixel ``i`` is the point ``i`` (OpenCV's and Pillow's
convention, which Ultralytics and LabelMe rasterise with), vertices snapped to the
centres of the boundary pixels (see :func:`pixel_points`); YOLO-seg then divides by
the image's width and height, as Ultralytics' own exporter does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from segcli.core.instances import Instances
from segcli.core.masks import rle_encode

LABELME_VERSION = "5.5.0"
"""The LabelMe release whose JSON layout these files follow (``version`` field)."""

SIMPLIFY_TOLERANCE = 0.25
"""Douglas-Peucker tolerance in image pixels: drops the staircase vertices of straight and
diagonal runs (a third of all vertices on the blocks masks) and still gives every mask back."""

_BRIDGE_CHUNK = 1 << 20
"""Point pairs compared at once when looking for a hole's nearest bridge (memory cap)."""


# --------------------------------------------------------------------------- tracing
def _bridge(ring: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``ring`` with ``other`` spliced in by a zero-width bridge between their nearest vertices."""
    best = (np.inf, 0, 0)
    step = max(1, _BRIDGE_CHUNK // max(len(ring), 1))
    for start in range(0, len(other), step):
        chunk = other[start : start + step]
        d = ((chunk[:, None, :] - ring[None, :, :]) ** 2).sum(-1)
        k = int(np.argmin(d))
        j, i = divmod(k, d.shape[1])
        if d[j, i] < best[0]:
            best = (float(d[j, i]), i, start + j)
    _, i, j = best
    # ring[..i], other[j..], other[..j], ring[i..]: in at ring[i] -> other[j], around, back.
    return np.concatenate([ring[: i + 1], other[j:], other[: j + 1], ring[i:]])


def mask_rings(crop: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    """One closed ring per connected part of a mask, its holes bridged in.

    ``crop`` is a bool mask placed at ``offset = (x0, y0)`` in the image. Each ring
    is an (N, 2) float64 array of x, y vertices in pixel-span coordinates (pixel
    ``i`` spans ``[i, i+1)``), N >= 3, in the order OpenCV traces the parts. Runs of
    vertices within ``SIMPLIFY_TOLERANCE`` of a straight line are merged.
    """
    if crop.size == 0 or not crop.any():
        return []
    up = np.ascontiguousarray(np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1), dtype=np.uint8)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    contours = [cv2.approxPolyDP(c, 2 * SIMPLIFY_TOLERANCE, True) for c in contours]
    tree = hierarchy[0]  # [next, previous, first child, parent]
    shift = np.array([offset[0], offset[1]], dtype=np.float64)
    rings = []
    for k, contour in enumerate(contours):
        if tree[k][3] != -1:
            continue  # a hole: spliced into its parent below
        ring = (contour[:, 0, :].astype(np.float64) + 0.5) / 2.0 + shift
        child = int(tree[k][2])
        while child != -1:
            hole = (contours[child][:, 0, :].astype(np.float64) + 0.5) / 2.0 + shift
            ring = _bridge(ring, hole)
            child = int(tree[child][0])
        rings.append(ring)
    return rings


def join_rings(rings: Sequence[np.ndarray]) -> np.ndarray:
    """Several rings as one, each later ring bridged to the nearest vertex of those before it."""
    if not rings:
        return np.zeros((0, 2), dtype=np.float64)
    out = rings[0]
    for ring in rings[1:]:
        out = _bridge(out, ring)
    return out


def _flat(points: np.ndarray, ndigits: int) -> list[float]:
    return [round(float(v), ndigits) for v in points.reshape(-1)]


def pixel_points(ring: np.ndarray) -> np.ndarray:
    """A ring in pixel-index coordinates (pixel ``i`` is the point ``i``), snapped to whole pixels.

    The quarter-pixel vertices round to the centres of the boundary pixels, so
    ``cv2.fillPoly`` and Pillow's ``ImageDraw.polygon(..., outline=1, fill=1)`` give
    the mask back whether they round or truncate. Repeated vertices are merged; a
    one-pixel part keeps three (equal) vertices, the least a polygon needs.
    """
    points = np.round(ring - 0.5)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    points = points[keep]
    if len(points) > 1 and np.array_equal(points[0], points[-1]):
        points = points[:-1]
    if len(points) < 3:
        points = np.concatenate([points, np.repeat(points[-1:], 3 - len(points), axis=0)])
    return points


# --------------------------------------------------------------------------- COCO
def coco_polygons(instances: Instances, i: int, ndigits: int = 2) -> list[list[float]]:
    """Instance ``i`` as a COCO polygon segmentation ``[[x1, y1, x2, y2, ...], ...]``.

    One polygon per connected part (COCO takes their union), holes bridged in;
    pycocotools' ``frPyObjects`` rasterises it back to the mask.
    """
    x0, y0 = int(instances.mask_boxes[i][0]), int(instances.mask_boxes[i][1])
    return [_flat(ring, ndigits) for ring in mask_rings(instances.masks[i], (x0, y0))]


def coco_box(box: Sequence[float] | np.ndarray) -> list[float]:
    """``[x1, y1, x2, y2]`` -> COCO ``[x, y, w, h]`` (rounded to 0.01 px)."""
    x1, y1, x2, y2 = (round(float(v), 2) for v in box)
    return [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)]


def coco_results(
    instances: Instances,
    image_id: int,
    category_ids: Mapping[int, int] | None = None,
    *,
    polygons: bool = False,
) -> list[dict[str, Any]]:
    """The COCO results entries of one image (the list ``COCO.loadRes`` takes).

    ``category_ids`` maps the model's class ids to the target's (e.g. a ground
    truth's); instances of unmapped classes are left out. Without it the model's ids
    are kept. ``segmentation`` is a compressed RLE, or polygons with ``polygons=True``.
    """
    out = []
    for i in range(len(instances)):
        model_id = int(instances.class_ids[i])
        if category_ids is not None and model_id not in category_ids:
            continue
        segmentation: dict[str, Any] | list[list[float]] = (
            coco_polygons(instances, i)
            if polygons
            else rle_encode(instances.masks[i], instances.mask_boxes[i], instances.image_size)
        )
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[model_id]) if category_ids is not None else model_id,
                "bbox": coco_box(instances.boxes[i]),
                "score": round(float(instances.scores[i]), 4),
                "segmentation": segmentation,
            }
        )
    return out


def results_from_record(
    record: Mapping[str, Any], image_id: int, category_ids: Mapping[int, int] | None = None
) -> list[dict[str, Any]]:
    """COCO results entries from a ``segcli.instances/1`` record (as written by ``json``)."""
    out = []
    for inst in record["instances"]:
        model_id = int(inst["category_id"])
        if category_ids is not None and model_id not in category_ids:
            continue
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[model_id]) if category_ids is not None else model_id,
                "bbox": coco_box(inst["box"]),
                "score": inst["score"],
                "segmentation": inst["mask"],
            }
        )
    return out


# --------------------------------------------------------------------------- YOLO-seg
def yolo_lines(instances: Instances, class_index: Mapping[int, int]) -> list[str]:
    """YOLO-seg label lines of one image: ``class x1 y1 x2 y2 ...``, coordinates in [0, 1].

    ``class_index`` maps the model's class ids to YOLO's 0-based indices (the order
    of ``names`` in ``data.yaml``); instances of unmapped classes are left out. All
    parts and holes of an instance are bridged into its one polygon.
    """
    height, width = instances.image_size
    scale = np.array([width, height], dtype=np.float64)
    lines = []
    for i in range(len(instances)):
        model_id = int(instances.class_ids[i])
        if model_id not in class_index:
            continue
        x0, y0 = int(instances.mask_boxes[i][0]), int(instances.mask_boxes[i][1])
        rings = [pixel_points(ring) for ring in mask_rings(instances.masks[i], (x0, y0))]
        if not rings:
            continue
        points = np.clip(join_rings(rings) / scale, 0.0, 1.0)
        lines.append(" ".join([str(class_index[model_id]), *(f"{v:.6f}" for v in points.reshape(-1))]))
    return lines


def yolo_class_index(categories: Sequence[str], skip: frozenset[str] | set[str]) -> dict[int, int]:
    """Model class id -> YOLO index: the model's real classes, numbered 0.. in model order."""
    kept = [i for i, name in enumerate(categories) if name not in skip]
    return {model_id: k for k, model_id in enumerate(kept)}


def yolo_data_yaml(names: Sequence[str], *, path: str = ".", train: str = ".", val: str = ".") -> str:
    """An Ultralytics dataset file: ``path``, ``train``, ``val`` and ``names`` (index: name)."""
    lines = [
        "# YOLO-seg dataset written by segcli: one <image>.txt per image, 'class x1 y1 x2 y2 ...'",
        f"path: {_yaml_str(path)}",
        f"train: {_yaml_str(train)}",
        f"val: {_yaml_str(val)}",
        f"nc: {len(names)}",
        "names:",
        *(f"  {k}: {_yaml_str(name)}" for k, name in enumerate(names)),
    ]
    return "\n".join(lines) + "\n"


def _yaml_str(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    import json

    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------- LabelMe
def labelme_record(instances: Instances, image_path: str) -> dict[str, Any]:
    """A LabelMe annotation file (``version``, ``flags``, ``shapes``, ``imagePath``, ...).

    One ``polygon`` shape per connected part of each instance; the parts of one
    instance share its ``group_id`` (the instance id), which LabelMe's converters
    use to rebuild the object. Holes are bridged into their part's ring.
    ``imagePath`` is relative to the JSON file; ``imageData`` is null (not embedded).
    """
    height, width = instances.image_size
    shapes = []
    for i in range(len(instances)):
        x0, y0 = int(instances.mask_boxes[i][0]), int(instances.mask_boxes[i][1])
        for ring in mask_rings(instances.masks[i], (x0, y0)):
            points = pixel_points(ring)
            shapes.append(
                {
                    "label": instances.class_names[i],
                    "points": [[float(x), float(y)] for x, y in points],
                    "group_id": i,
                    "description": f"score {float(instances.scores[i]):.4f}",
                    "shape_type": "polygon",
                    "flags": {},
                    "mask": None,
                }
            )
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }
