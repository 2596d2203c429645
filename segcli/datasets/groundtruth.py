"""COCO ground truth: loading an instances file and matching its images and categories.

``segcli eval``, the batch's COCO results export and ``segcli train`` all read labels
through here, so one file is read, checked and matched the same way everywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pycocotools.coco import COCO

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError
from segcli.core.masks import rle_problem

MATCH_BY = ("name", "id")
"""How predicted categories are matched to the ground truth's: by name or by id."""


# --------------------------------------------------------------------------- files
def read_json(path: Path, what: str) -> Any:
    """A JSON file, or one clear error naming ``what`` it should have been."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SegcliError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise SegcliError(f"{what} {path} is a folder, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SegcliError(f"cannot read {what} {path} ({reason})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SegcliError(f"{what} {path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise SegcliError(f"{what} {path} is nested too deeply to be a COCO file") from None


def quiet_coco(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_ground_truth(path: Path) -> COCO:
    """A COCO ground-truth file as a pycocotools ``COCO`` object (checked, silent).

    Every entry is checked before pycocotools sees it (:func:`check_ground_truth`): a
    malformed or absurd one is one :class:`SegcliError` naming the file and the entry.
    """
    data = read_json(path, "ground truth")
    check_ground_truth(data, path)
    return quiet_coco(data)


# --------------------------------------------------------------------------- checking numbers
MAX_IMAGE_PIXELS = 2**31 - 1
"""The largest ``width * height`` accepted (pycocotools counts pixels in 32-bit integers)."""
MAX_PERIMETER = 2_000_000
"""The longest outline, in pixels, of one annotation's polygons: pycocotools rasterises a
polygon through a buffer of about 40 bytes per pixel of outline (80 MB here)."""


class BadEntry(ValueError):
    """What is wrong with one entry (the caller names the file and the entry)."""


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(entry: Mapping[str, Any], key: str) -> int:
    if key not in entry:
        raise BadEntry(f"it has no {key!r}")
    value = entry[key]
    if not is_int(value):
        raise BadEntry(f"{key} {_short(value)} is not an integer")
    return int(value)


def check_number(entry: Mapping[str, Any], key: str, *, low: float | None = None) -> float:
    if key not in entry:
        raise BadEntry(f"it has no {key!r}")
    value = entry[key]
    if not is_number(value):
        raise BadEntry(f"{key} {_short(value)} is not a finite number")
    if low is not None and value < low:
        raise BadEntry(f"{key} {value:g} is below {low:g}")
    return float(value)


def _short(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_size(image: Mapping[str, Any]) -> tuple[int, int]:
    """An image entry's ``(height, width)``: integers >= 1, at most :data:`MAX_IMAGE_PIXELS`."""
    height, width = check_int(image, "height"), check_int(image, "width")
    if height < 1 or width < 1:
        raise BadEntry(f"width x height {width}x{height} has no pixels")
    if height * width > MAX_IMAGE_PIXELS:
        raise BadEntry(f"width x height {width}x{height} is over {MAX_IMAGE_PIXELS:,} pixels")
    return height, width


def check_bbox(value: object, height: int, width: int) -> list[float]:
    """A COCO ``[x, y, w, h]``: four finite numbers, w and h >= 0, at most one image size
    outside the image (real labels stray a little; 1e12 is no box)."""
    if not isinstance(value, list) or len(value) != 4 or not all(is_number(v) for v in value):
        raise BadEntry(f"bbox {_short(value)} is not four finite numbers [x, y, w, h]")
    x, y, w, h = (float(v) for v in value)
    if w < 0 or h < 0:
        raise BadEntry(f"bbox {_short(value)} has a negative width or height")
    if not (-width <= x and x + w <= 2 * width and -height <= y and y + h <= 2 * height):
        raise BadEntry(f"bbox {_short(value)} lies far outside the {width}x{height} image")
    return [x, y, w, h]


def check_segmentation(value: object, height: int, width: int, *, empty_ok: bool) -> None:
    """A COCO segmentation of an ``height`` x ``width`` image: polygons (lists of at least 3
    finite ``x, y`` pairs, near the image, of bounded outline) or an RLE of exactly the
    image's size. ``empty_ok``: an empty polygon list (an empty mask) is accepted."""
    if isinstance(value, dict):
        problem = rle_problem(value, height, width)
        if problem is not None:
            raise BadEntry(problem)
        return
    if not isinstance(value, list):
        raise BadEntry(f"segmentation {_short(value)} is neither polygons nor an RLE")
    if not value and not empty_ok:
        raise BadEntry("segmentation is empty (no polygon)")
    perimeter = 0.0
    for k, poly in enumerate(value):
        if not isinstance(poly, list) or not all(is_number(v) for v in poly):
            raise BadEntry(f"polygon {k} is not a flat list of finite numbers")
        if len(poly) % 2 or len(poly) < 6:
            raise BadEntry(
                f"polygon {k} has {len(poly)} numbers: a polygon needs x, y pairs of at least 3 points"
            )
        xs, ys = poly[0::2], poly[1::2]
        if min(xs) < -width or max(xs) > 2 * width or min(ys) < -height or max(ys) > 2 * height:
            raise BadEntry(f"polygon {k} lies far outside the {width}x{height} image")
        for i in range(len(xs)):
            perimeter += max(abs(xs[i] - xs[i - 1]), abs(ys[i] - ys[i - 1]))
        if perimeter > MAX_PERIMETER:
            raise BadEntry(f"the polygons' outline is over {MAX_PERIMETER:,} pixels long")


def entry_name(kind: str, index: int, entry: object) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{kind}[{index}]" + (f" (id {_short(ident)})" if ident is not None else "")


def check_ground_truth(data: object, path: Path) -> None:
    """Check every entry and number of a COCO ground truth before pycocotools sees it.

    Images: integer ``id`` (unique), ``file_name``, integer ``width``/``height``.
    Categories: integer ``id`` (unique) and ``name``. Annotations: integer ``id`` (unique),
    ``image_id`` and ``category_id`` that exist, finite ``bbox`` and ``area``, a valid
    ``segmentation`` (:func:`check_segmentation`) when present, ``iscrowd`` 0 or 1 (0 when
    missing, as COCO means it). Anything else is one :class:`SegcliError` naming ``path``
    and the entry.
    """
    if not isinstance(data, dict):
        raise SegcliError(
            f"ground truth {path} is not a COCO file (a JSON object with images and annotations)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise SegcliError(f"ground truth {path} is not a COCO file: it has no {key!r} list")
    sizes: dict[int, tuple[int, int]] = {}
    for i, img in enumerate(data["images"]):
        try:
            if not isinstance(img, dict):
                raise BadEntry("it is not an object")
            image_id = check_int(img, "id")
            if not isinstance(img.get("file_name"), str):
                raise BadEntry("it has no 'file_name' string")
            if image_id in sizes:
                raise BadEntry(f"image id {image_id} is used twice")
            sizes[image_id] = check_size(img)
        except BadEntry as exc:
            raise SegcliError(f"ground truth {path}: {entry_name('images', i, img)}: {exc}") from None
    category_ids: set[int] = set()
    for i, cat in enumerate(data["categories"]):
        try:
            if not isinstance(cat, dict):
                raise BadEntry("it is not an object")
            category_id = check_int(cat, "id")
            if not isinstance(cat.get("name"), str):
                raise BadEntry("it has no 'name' string")
            if category_id in category_ids:
                raise BadEntry(f"category id {category_id} is used twice")
            category_ids.add(category_id)
        except BadEntry as exc:
            raise SegcliError(f"ground truth {path}: {entry_name('categories', i, cat)}: {exc}") from None
    annotation_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        try:
            if not isinstance(ann, dict):
                raise BadEntry("it is not an object")
            ann_id = check_int(ann, "id")
            if ann_id in annotation_ids:
                raise BadEntry(f"annotation id {ann_id} is used twice")
            annotation_ids.add(ann_id)
            image_id = check_int(ann, "image_id")
            if image_id not in sizes:
                raise BadEntry(f"image_id {image_id} is not an image of the ground truth")
            category_id = check_int(ann, "category_id")
            if category_id not in category_ids:
                raise BadEntry(f"category_id {category_id} is not a category of the ground truth")
            height, width = sizes[image_id]
            if "bbox" not in ann:
                raise BadEntry("it has no 'bbox'")
            check_bbox(ann["bbox"], height, width)
            check_number(ann, "area", low=0)
            crowd = ann.setdefault("iscrowd", 0)
            if crowd not in (0, 1) or isinstance(crowd, float):
                raise BadEntry(f"iscrowd {_short(crowd)} is neither 0 nor 1")
            if "segmentation" in ann:
                check_segmentation(ann["segmentation"], height, width, empty_ok=False)
        except BadEntry as exc:
            raise SegcliError(f"ground truth {path}: {entry_name('annotations', i, ann)}: {exc}") from None


# --------------------------------------------------------------------------- matching
def norm_path(name: str) -> str:
    text = name.replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return PurePosixPath(text).as_posix()


def short_list(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def match_images(
    gt_images: Sequence[Mapping[str, Any]],
    file_names: Sequence[str],
    *,
    source: str = "predictions",
    unmatched: list[str] | None = None,
) -> dict[str, int]:
    """Each file name -> the id of the ground-truth image it is.

    A name matches the ground truth's ``file_name`` as a relative path first, then by
    its last component alone. A basename shared by several ground-truth images, or two
    names that land on one image, are errors naming them. A name that matches no image is
    an error too, unless ``unmatched`` is given: then it is left out and appended there.
    """
    by_path: dict[str, int] = {}
    by_base: dict[str, list[str]] = {}
    for img in gt_images:
        key = norm_path(str(img["file_name"]))
        if key in by_path:
            raise SegcliError(f"the ground truth lists file_name {key!r} twice")
        by_path[key] = int(img["id"])
        by_base.setdefault(PurePosixPath(key).name, []).append(key)
    out: dict[str, int] = {}
    missing: list[str] = []
    for name in file_names:
        key = norm_path(name)
        if key in by_path:
            out[name] = by_path[key]
            continue
        candidates = by_base.get(PurePosixPath(key).name, [])
        if len(candidates) == 1:
            out[name] = by_path[candidates[0]]
        elif candidates:
            raise SegcliError(
                f"{source} image {name!r} is ambiguous: its name matches {len(candidates)} ground-truth "
                f"images ({short_list(candidates)}); give it the ground truth's relative path (file_name)"
            )
        else:
            missing.append(name)
    if missing and unmatched is None:
        raise SegcliError(
            f"{len(missing)} {source} image(s) are not in the ground truth: {short_list(missing)}"
        )
    if unmatched is not None:
        unmatched.extend(missing)
    seen: dict[int, str] = {}
    for name, image_id in out.items():
        if image_id in seen:
            raise SegcliError(
                f"{source} images {seen[image_id]!r} and {name!r} both match the ground-truth image "
                f"with id {image_id}"
            )
        seen[image_id] = name
    return out


@dataclass(frozen=True)
class CategoryMatch:
    """How prediction categories map onto the ground truth's."""

    by: str  # "name" or "id"
    mapping: dict[int, int]  # prediction category id -> ground-truth category id
    unmatched_predicted: tuple[str, ...]  # prediction categories (with detections) left out
    unmatched_ground_truth: tuple[str, ...]  # ground-truth categories no prediction can hit


def match_categories(
    gt_categories: Sequence[Mapping[str, Any]],
    pred_categories: Sequence[Mapping[str, Any]],
    *,
    by: str = "name",
    used: Mapping[int, int] | None = None,
) -> CategoryMatch:
    """Map prediction category ids to ground-truth ids by (case-insensitive) name, or by id.

    ``used`` counts detections per prediction category id: only categories with
    detections are listed as unmatched. Placeholder names (``N/A``) never match.
    """
    if by not in MATCH_BY:
        raise SegcliError(f"match categories by {by!r}? choose from {', '.join(MATCH_BY)}")
    gt_by_id = {int(c["id"]): str(c["name"]) for c in gt_categories}
    mapping: dict[int, int] = {}
    if by == "name":
        gt_by_name: dict[str, int] = {}
        for cid, name in gt_by_id.items():
            key = name.strip().casefold()
            if key in gt_by_name:
                raise SegcliError(f"the ground truth has two categories named {name!r}; use --match-by id")
            gt_by_name[key] = cid
        for cat in pred_categories:
            name = str(cat.get("name", ""))
            if name in PLACEHOLDER_CLASSES:
                continue
            gt_id = gt_by_name.get(name.strip().casefold())
            if gt_id is not None:
                mapping[int(cat["id"])] = gt_id
    else:
        mapping = {int(c["id"]): int(c["id"]) for c in pred_categories if int(c["id"]) in gt_by_id}
    pred_names = {int(c["id"]): str(c.get("name", f"id {c['id']}")) for c in pred_categories}
    counts = used if used is not None else dict.fromkeys(pred_names, 1)
    unmatched_pred = tuple(
        f"{pred_names.get(cid, f'id {cid}')} ({n} detections)"
        for cid, n in sorted(counts.items())
        if n and cid not in mapping
    )
    hit = set(mapping.values())
    unmatched_gt = tuple(name for cid, name in sorted(gt_by_id.items()) if cid not in hit)
    return CategoryMatch(by, mapping, unmatched_pred, unmatched_gt)
