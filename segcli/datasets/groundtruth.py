"""COCO ground truth: loading an instances file and matching its images and categories.

``segcli eval``, the batch's COCO results export and ``segcli train`` all read labels
through here, so one file is read, checked and matched the same way everywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pycocotools.coco import COCO

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError

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


def quiet_coco(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_ground_truth(path: Path) -> COCO:
    """A COCO ground-truth file as a pycocotools ``COCO`` object (checked, silent)."""
    data = read_json(path, "ground truth")
    if not isinstance(data, dict):
        raise SegcliError(
            f"ground truth {path} is not a COCO file (a JSON object with images and annotations)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise SegcliError(f"ground truth {path} is not a COCO file: it has no {key!r} list")
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise SegcliError(f"ground truth {path}: an image entry lacks 'id' or 'file_name': {img!r:.120}")
    for cat in data["categories"]:
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise SegcliError(f"ground truth {path}: a category lacks 'id' or 'name': {cat!r:.120}")
    return quiet_coco(data)


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
    gt_images: Sequence[Mapping[str, Any]], file_names: Sequence[str], *, source: str = "predictions"
) -> dict[str, int]:
    """Each file name -> the id of the ground-truth image it is.

    A name matches the ground truth's ``file_name`` as a relative path first, then by
    its last component alone. A name that matches no image, a basename shared by
    several ground-truth images, or two names that land on one image are errors
    naming them.
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
    if missing:
        raise SegcliError(
            f"{len(missing)} {source} image(s) are not in the ground truth: {short_list(missing)}"
        )
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
