"""Training data: the three label formats segcli writes, read back as Mask R-CNN samples.

``read_dataset(DATA, IMAGES)`` accepts

- a **COCO instances file** (``*.json`` with ``images``, ``annotations``, ``categories``):
  polygons (pixel ``i`` spans ``[i, i+1)``, pycocotools' convention), RLE or compressed RLE;
  ``file_name`` relative to ``IMAGES``, else to the file's own folder. Predictions files
  (``coco.json`` of ``segcli batch``, with scores) read the same. Crowd regions
  (``iscrowd: 1``) are not trained on; COCOeval ignores detections on them.
- a **LabelMe folder** (every ``*.json`` with ``shapes`` under it, or one such file):
  ``polygon``, ``rectangle`` and ``circle`` shapes; the shapes of one ``group_id`` are one
  object; ``imagePath`` relative to the JSON file.
- a **YOLO-seg dataset** (``data.yaml`` with ``path``, ``train``, ``val``, ``names``): each
  image's labels in ``labels/`` beside ``images/`` (Ultralytics' rule), ``class x1 y1 ...`` in
  [0, 1]; an image without a label file has no objects.
- ``scenes:blocks[:N]``: generated block scenes (:mod:`segcli.blocks.scenes`), ``N`` per epoch
  (default 2000), new training seeds every epoch: the bundled model's from-scratch recipe.

Everything that can be checked before training is checked here, and each problem is one
line naming the file and the entry (:class:`DataError`, exit 2): a missing image, a
polygon with fewer than 3 points, a mask outside its image, an unknown category, an image
whose size differs from the one the labels declare, an empty dataset. Image sizes are
read from the headers, with the EXIF orientation applied as :func:`segcli.imageio.read_image`
applies it, so labels drawn on the upright image (LabelMe, CVAT, segcli itself) line up.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import UsageError, first_line
from segcli.core.jsonio import parse_json
from segcli.core.masks import rle_problem
from segcli.core.settings import DEFAULT_MAX_PIXELS
from segcli.io.images import IMAGE_EXTENSIONS

BACKGROUND = "__background__"
PLACEHOLDER = "N/A"
MAX_PROBLEMS = 20
"""Problems listed before the check gives up (the first ones are what a user fixes first)."""
EDGE_TOLERANCE = 1.0
"""Polygon points may lie this many pixels beyond the image edge (annotation tools round)."""
MAX_KEPT_IDS = 1000
"""COCO category ids up to this keep their value as class ids (gaps are placeholders)."""
SCENES_PREFIX = "scenes:"
DEFAULT_SCENES_PER_EPOCH = 2000
SCENE_VAL_COUNT = 50
"""Most held-out scenes a ``scenes:`` dataset validates on (a tenth of N, at least 4)."""
EXIF_TRANSPOSED = (5, 6, 7, 8)
"""EXIF orientations that swap width and height."""


class DataError(UsageError):
    """Bad training data: one line per problem (the CLI prints each, then exits 2)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = len(self.problems) - 1
        super().__init__(self.problems[0] + (f" (and {more} more problem(s))" if more > 0 else ""))


class _Problems:
    """Collects problems; stops the read once :data:`MAX_PROBLEMS` are found."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)
        if len(self.items) >= MAX_PROBLEMS:
            raise DataError([*self.items, f"stopped after {MAX_PROBLEMS} problems"])

    def raise_if_any(self) -> None:
        if self.items:
            raise DataError(self.items)


# --------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Geometry:
    """One object's mask, as its file gives it.

    ``kind``: ``span`` (COCO polygons, flat lists, pixel ``i`` spans ``[i, i+1)``), ``index``
    (LabelMe / YOLO-seg polygons as (N, 2) arrays, pixel ``i`` is the point ``i``; ``index``
    parts are filled one by one and united), ``rle`` (a COCO RLE dict) or ``scene`` (the
    ``data``-th object of a generated scene).
    """

    kind: str
    data: Any


@dataclass(frozen=True)
class LabeledObject:
    label: int  # class id (index into the dataset's categories)
    geometry: Geometry
    entry: str  # how errors name it: "annotation id 7", "shape 3"


@dataclass(frozen=True)
class Sample:
    """One training image: where it is, its size (EXIF applied) and its objects."""

    path: Path | None  # None for a generated scene
    height: int
    width: int
    objects: tuple[LabeledObject, ...]
    where: str  # the label file and entry: "labels.json image id 3 ('a.png')"
    seed: int | None = None  # a generated scene's seed
    crowd: tuple[LabeledObject, ...] = ()  # COCO crowd regions (not trained on; COCOeval uses them)


@dataclass
class Dataset:
    """Samples and their class names (index 0 the background, ``N/A`` unused ids)."""

    samples: list[Sample]
    categories: tuple[str, ...]
    format: str  # "coco", "labelme", "yolo", "scenes"
    source: str
    notes: list[str] = field(default_factory=list)
    val_source: Dataset | None = None  # a YOLO data.yaml's own val split
    scenes_per_epoch: int = 0  # "scenes": samples per epoch (seeds advance every epoch)
    coco_file: Path | None = None  # a COCO file read as it is (its val can be evaluated directly)
    images_root: Path | None = None  # the folder COCO file names are relative to

    @property
    def classes(self) -> list[str]:
        return [c for c in self.categories if c not in PLACEHOLDER_CLASSES]

    def summary(self) -> dict[str, Any]:
        counts = [0] * len(self.categories)
        for s in self.samples:
            for o in s.objects:
                counts[o.label] += 1
        return {
            "format": self.format,
            "source": self.source,
            "images": len(self.samples) if self.format != "scenes" else self.scenes_per_epoch,
            "empty_images": sum(1 for s in self.samples if not s.objects),
            "objects": sum(counts),
            "per_class": {
                name: counts[i] for i, name in enumerate(self.categories) if name not in PLACEHOLDER_CLASSES
            },
        }


def same_classes(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two category lists give every class the same id and name (placeholders alike)."""

    def norm(cats: Sequence[str]) -> list[str]:
        out = [PLACEHOLDER if c in PLACEHOLDER_CLASSES else c.strip().casefold() for c in cats]
        while out and out[-1] == PLACEHOLDER:
            out.pop()
        return out

    return norm(a) == norm(b)


# --------------------------------------------------------------------------- image headers
def image_size(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of an image file as :func:`segcli.imageio.read_image` returns it (EXIF
    orientation applied), from its header only. Raises ``OSError``/``ValueError`` with a reason."""
    from PIL import Image

    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise ValueError("is a folder, not an image")
    if not stat.S_ISREG(mode):
        raise ValueError("is not a regular file")
    from segcli.io.images import pillow_warnings

    with pillow_warnings(Path(path), report=False), Image.open(path) as im:  # read_image reports them
        width, height = im.size
        try:
            orientation = int(im.getexif().get(0x0112, 1))
        except Exception:
            orientation = 1
    if width < 1 or height < 1:
        raise ValueError(f"has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(f"declares {width}x{height} pixels, over the {max_pixels:,} limit")
    if orientation in EXIF_TRANSPOSED:
        width, height = height, width
    return int(height), int(width)


def _check_image(path: Path, where: str, problems: _Problems) -> tuple[int, int] | None:
    if not path.exists():
        problems.add(f"{where}: image {path} not found")
        return None
    try:
        return image_size(path)
    except Exception as exc:  # PIL raises many kinds
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        problems.add(f"{where}: image {path} cannot be read ({reason})")
        return None


def _size_mismatch(declared: tuple[Any, Any], actual: tuple[int, int]) -> bool:
    h, w = declared
    return (h is not None and int(h) != actual[0]) or (w is not None and int(w) != actual[1])


# --------------------------------------------------------------------------- geometry checks
def _points_outside(points: np.ndarray, height: int, width: int, index: bool) -> np.ndarray | None:
    """The first point beyond the image (by more than EDGE_TOLERANCE), or None."""
    hi_x = width - (1 if index else 0) + EDGE_TOLERANCE
    hi_y = height - (1 if index else 0) + EDGE_TOLERANCE
    bad = (
        ~np.isfinite(points).all(axis=1)
        | (points[:, 0] < -EDGE_TOLERANCE)
        | (points[:, 1] < -EDGE_TOLERANCE)
        | (points[:, 0] > hi_x)
        | (points[:, 1] > hi_y)
    )
    return points[int(np.argmax(bad))] if bad.any() else None


def _fmt_point(p: np.ndarray) -> str:
    return f"({float(p[0]):g}, {float(p[1]):g})"


def geometry_area(geom: Geometry, height: int, width: int) -> int:
    """Pixels of the mask at the image's own size (cheap: crops and RLE, no full frames)."""
    if geom.kind == "span":
        rles = mask_utils.frPyObjects([list(map(float, p)) for p in geom.data], height, width)
        return int(mask_utils.area(mask_utils.merge(rles)))
    if geom.kind == "rle":
        return int(mask_utils.area(_rle_object(geom.data, height, width)))
    if geom.kind == "index":
        return int(_fill_index(geom.data, height, width, 1.0, 1.0).sum())
    return 1  # generated scenes: every object is at least 1 % of the image


def _rle_object(rle: Mapping[str, Any], height: int, width: int) -> Any:
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(dict(rle), height, width)
    return {
        "size": list(rle["size"]),
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


def _fill_index(parts: Sequence[np.ndarray], height: int, width: int, sy: float, sx: float) -> np.ndarray:
    """Index-convention polygons filled (united) at scale (sy, sx) into a (height, width) mask."""
    out = np.zeros((height, width), np.uint8)
    for pts in parts:
        scaled = np.empty_like(pts, dtype=np.float64)
        scaled[:, 0] = (pts[:, 0] + 0.5) * sx - 0.5
        scaled[:, 1] = (pts[:, 1] + 0.5) * sy - 0.5
        fixed = np.round(scaled * 16).astype(np.int32).reshape(-1, 1, 2)
        layer = np.zeros_like(out)
        cv2.fillPoly(layer, [fixed], 1, cv2.LINE_8, 4)
        out |= layer
    return out.astype(bool)


def render_mask(geom: Geometry, sample: Sample, out_h: int, out_w: int, scene: Any = None) -> np.ndarray:
    """The object's mask resized to (out_h, out_w): polygons are drawn at that size, RLE and
    scene masks decoded and resized by nearest neighbour (as torchvision resizes masks)."""
    h, w = sample.height, sample.width
    sy, sx = out_h / h, out_w / w
    if geom.kind == "span":
        polys = []
        for flat in geom.data:
            arr = np.asarray(flat, np.float64).reshape(-1, 2) * (sx, sy)
            polys.append(arr.reshape(-1).tolist())
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, out_h, out_w))).astype(bool)
    if geom.kind == "index":
        return _fill_index(geom.data, out_h, out_w, sy, sx)
    if geom.kind == "rle":
        full = mask_utils.decode(_rle_object(geom.data, h, w))
    elif geom.kind == "scene":
        full = scene.objects[int(geom.data)].mask.astype(np.uint8)
    else:
        raise ValueError(f"unknown geometry {geom.kind!r}")
    if (out_h, out_w) == (h, w):
        return full.astype(bool)
    return cv2.resize(full, (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)


# --------------------------------------------------------------------------- class lists
def _ordered_classes(names: Sequence[str], base: Sequence[str] | None) -> tuple[str, ...]:
    """Class list from label names. The base model's own list when the names are exactly its
    classes (so the dataset needs no new head); else the names the base model knows in its
    order, then the new ones in alphabetical order."""
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if base is not None:
        real = [c for c in base if c not in PLACEHOLDER_CLASSES]
        if {n.casefold() for n in wanted} == {c.casefold() for c in real}:
            return tuple(base)
        known = {c.casefold() for c in real}
        first = [c for c in real if c.casefold() in {n.casefold() for n in wanted}]
        rest = sorted(n for n in wanted if n.casefold() not in known)
        return (BACKGROUND, *first, *rest)
    return (BACKGROUND, *sorted(wanted))


# --------------------------------------------------------------------------- COCO
def _coco_images_root(path: Path, images: Path | None) -> Path:
    return images if images is not None else path.parent


def _safe_relative(name: str) -> str | None:
    """``file_name`` as a relative POSIX path, or None if it leaves its folder."""
    text = name.replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    rel = PurePosixPath(text)
    if not text or rel.is_absolute() or ".." in rel.parts or (len(text) > 1 and text[1] == ":"):
        return None
    return rel.as_posix()


def read_coco(path: Path, images: Path | None, *, check_images: bool = True) -> Dataset:
    """A COCO instances file as a dataset (see the module docstring)."""
    from segcli.evaluation.evaluate import read_json

    problems = _Problems()
    try:
        data = read_json(path, "COCO file")
    except UsageError:
        raise
    except Exception as exc:
        raise DataError([first_line(exc)]) from None
    if not isinstance(data, dict):
        raise DataError([f"{path}: not a COCO file (a JSON object with images, annotations, categories)"])
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError([f"{path}: not a COCO instances file: it has no {key!r} list"])
    root = _coco_images_root(path, images)
    if not root.is_dir():
        raise DataError([f"{path}: images folder {root} does not exist"])

    cat_ids: dict[int, str] = {}
    for k, cat in enumerate(data["categories"]):
        if (
            not isinstance(cat, dict)
            or not isinstance(cat.get("id"), int)
            or not isinstance(cat.get("name"), str)
        ):
            problems.add(f"{path}: categories[{k}] needs an integer 'id' and a 'name': {cat!r:.80}")
            continue
        if cat["id"] in cat_ids:
            problems.add(f"{path}: category id {cat['id']} is listed twice")
        name = cat["name"].strip()
        if not name or name in PLACEHOLDER_CLASSES:
            problems.add(f"{path}: category id {cat['id']} has no usable name ({cat['name']!r})")
        cat_ids[int(cat["id"])] = name
    names = list(cat_ids.values())
    dup = sorted({n for n in names if [m.casefold() for m in names].count(n.casefold()) > 1})
    if dup:
        problems.add(f"{path}: two categories are named {dup[0]!r}")
    problems.raise_if_any()
    if not cat_ids:
        raise DataError([f"{path}: no categories: the dataset names no class to learn"])
    notes: list[str] = []
    if all(1 <= cid <= MAX_KEPT_IDS for cid in cat_ids):
        top = max(cat_ids)
        categories = (BACKGROUND, *(cat_ids.get(i, PLACEHOLDER) for i in range(1, top + 1)))
        class_of = {cid: cid for cid in cat_ids}
    else:
        order = sorted(cat_ids)
        categories = (BACKGROUND, *(cat_ids[c] for c in order))
        class_of = {cid: k + 1 for k, cid in enumerate(order)}
        notes.append(f"{path}: category ids renumbered 1..{len(order)} (in id order)")

    by_id: dict[Any, dict[str, Any]] = {}
    seen_names: set[str] = set()
    for k, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            problems.add(f"{path}: images[{k}] lacks 'id' or 'file_name': {img!r:.80}")
            continue
        where = f"{path} image id {img['id']} ({img['file_name']!r})"
        if img["id"] in by_id:
            problems.add(f"{path}: image id {img['id']} is listed twice")
            continue
        rel = _safe_relative(img["file_name"])
        if rel is None:
            problems.add(f"{where}: file_name leaves the images folder {root}")
            continue
        if rel.casefold() in seen_names:
            problems.add(f"{where}: file_name is listed twice")
            continue
        seen_names.add(rel.casefold())
        by_id[img["id"]] = {**img, "_rel": rel, "_where": where, "_objects": [], "_crowd": []}
    if not by_id:
        problems.raise_if_any()
        raise DataError([f"{path}: no images: the dataset is empty"])
    for img in by_id.values():
        img["_size"] = None
        file = root / img["_rel"]
        if check_images:
            size = _check_image(file, img["_where"], problems)
            if size is None:
                continue
            declared = (img.get("height"), img.get("width"))
            if _size_mismatch(declared, size):
                problems.add(
                    f"{img['_where']}: the image is {size[1]}x{size[0]} (EXIF orientation applied) but "
                    f"the file declares {img.get('width')}x{img.get('height')}"
                )
                continue
            img["_size"] = size
        elif isinstance(img.get("height"), int) and isinstance(img.get("width"), int):
            img["_size"] = (img["height"], img["width"])

    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            problems.add(f"{path}: annotations[{k}] is not an object")
            continue
        entry = f"annotation id {ann.get('id', f'#{k}')}"
        img = by_id.get(ann.get("image_id"))
        if img is None:
            problems.add(f"{path} {entry}: image id {ann.get('image_id')!r} is not in the images list")
            continue
        where = f"{img['_where']} {entry}"
        cid = ann.get("category_id")
        if cid not in cat_ids:
            problems.add(f"{where}: unknown category id {cid!r} (categories: {sorted(cat_ids)})")
            continue
        if img["_size"] is None:
            continue  # its image already has a problem
        height, width = img["_size"]
        geom = _coco_geometry(ann.get("segmentation"), height, width, where, problems)
        if geom is None:
            continue
        if ann.get("iscrowd"):
            img["_crowd"].append(LabeledObject(class_of[int(cid)], geom, entry))
            continue
        if geometry_area(geom, height, width) == 0:
            notes.append(f"{where}: empty mask, left out")
            continue
        img["_objects"].append(LabeledObject(class_of[int(cid)], geom, entry))
    problems.raise_if_any()
    samples = [
        Sample(
            path=root / img["_rel"],
            height=img["_size"][0],
            width=img["_size"][1],
            objects=tuple(img["_objects"]),
            where=img["_where"],
            crowd=tuple(img["_crowd"]),
        )
        for img in by_id.values()
    ]
    return Dataset(samples, categories, "coco", str(path), notes, coco_file=path, images_root=root)


def _coco_geometry(segm: Any, height: int, width: int, where: str, problems: _Problems) -> Geometry | None:
    if isinstance(segm, list):
        if not segm:
            problems.add(f"{where}: empty segmentation (segcli train needs a mask per object)")
            return None
        for k, poly in enumerate(segm):
            if not isinstance(poly, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly
            ):
                problems.add(f"{where}: polygon {k} is not a list of numbers")
                return None
            if len(poly) % 2:
                problems.add(f"{where}: polygon {k} has an odd number of coordinates ({len(poly)})")
                return None
            if len(poly) < 6:
                problems.add(
                    f"{where}: polygon {k} has {len(poly) // 2} point(s); a polygon needs at least 3"
                )
                return None
            outside = _points_outside(np.asarray(poly, np.float64).reshape(-1, 2), height, width, False)
            if outside is not None:
                problems.add(
                    f"{where}: polygon {k} point {_fmt_point(outside)} is outside the {width}x{height} image"
                )
                return None
        return Geometry("span", [list(map(float, p)) for p in segm])
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        size = segm["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            problems.add(f"{where}: RLE 'size' must be [height, width], got {size!r:.40}")
            return None
        if list(size) != [height, width]:
            problems.add(
                f"{where}: RLE mask is {size[1]}x{size[0]} but the image is {width}x{height} "
                "(mask outside the image)"
            )
            return None
        counts = segm["counts"]
        if isinstance(counts, list) and sum(int(c) for c in counts) != height * width:
            problems.add(f"{where}: RLE counts cover {sum(counts)} pixels, the image has {height * width}")
            return None
        problem = rle_problem(segm, height, width)  # a compressed string's runs too
        if problem is not None:
            problems.add(f"{where}: {problem}")
            return None
        try:
            _rle_object(segm, height, width)
            if not isinstance(counts, list):
                mask_utils.area(_rle_object(segm, height, width))
        except Exception as exc:
            problems.add(f"{where}: unreadable RLE ({first_line(exc)})")
            return None
        return Geometry("rle", {"size": list(size), "counts": counts})
    problems.add(f"{where}: no segmentation (polygons or RLE): segcli train needs a mask per object")
    return None


# --------------------------------------------------------------------------- LabelMe
def _labelme_files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.lower().endswith(".json") and not name.startswith("."):
                yield Path(root) / name


def read_labelme(
    data: Path, base: Sequence[str] | None, *, categories: Sequence[str] | None = None
) -> Dataset:
    """A LabelMe folder (or one LabelMe file) as a dataset. ``categories``: a fixed class list
    (a validation set takes its training set's); otherwise from the labels (see
    :func:`_ordered_classes`)."""
    problems = _Problems()
    files = [data] if data.is_file() else list(_labelme_files(data))
    records: list[tuple[Path, dict[str, Any]]] = []
    for file in files:
        try:
            rec = parse_json(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if data.is_file():
                problems.add(f"{file}: not a readable LabelMe JSON file ({first_line(exc)})")
            continue  # other JSON in a folder (run.json, coco.json): not LabelMe files
        if not isinstance(rec, dict) or not isinstance(rec.get("shapes"), list):
            if data.is_file():
                problems.add(f"{file}: not a LabelMe file (no 'shapes' list)")
            continue
        records.append((file, rec))
    problems.raise_if_any()
    if not records:
        raise DataError([f"{data}: no LabelMe files (JSON with 'shapes') found: the dataset is empty"])
    labels = sorted(
        {
            str(s.get("label", "")).strip()
            for _, rec in records
            for s in rec["shapes"]
            if isinstance(s, dict) and str(s.get("label", "")).strip()
        }
    )
    cats = tuple(categories) if categories is not None else _ordered_classes(labels, base)
    class_id = {c.casefold(): i for i, c in enumerate(cats) if c not in PLACEHOLDER_CLASSES}
    samples: list[Sample] = []
    notes: list[str] = []
    for file, rec in records:
        image_path = rec.get("imagePath")
        if not isinstance(image_path, str) or not image_path:
            problems.add(f"{file}: no 'imagePath'")
            continue
        image = (file.parent / image_path.replace("\\", "/")).resolve()
        where = f"{file}"
        size = _check_image(image, where, problems)
        if size is None:
            continue
        declared = (rec.get("imageHeight"), rec.get("imageWidth"))
        if _size_mismatch(declared, size):
            problems.add(
                f"{where}: the image is {size[1]}x{size[0]} (EXIF orientation applied) but the file "
                f"declares {rec.get('imageWidth')}x{rec.get('imageHeight')}"
            )
            continue
        height, width = size
        groups: dict[Any, tuple[str, list[np.ndarray], str]] = {}
        for k, shape in enumerate(rec["shapes"]):
            entry = f"shape {k}"
            if not isinstance(shape, dict):
                problems.add(f"{where} {entry}: not an object")
                continue
            label = str(shape.get("label", "")).strip()
            kind = shape.get("shape_type") or "polygon"
            if not label:
                problems.add(f"{where} {entry}: no label")
                continue
            if label.casefold() not in class_id:
                problems.add(f"{where} {entry}: label {label!r} is not a class of the training data")
                continue
            try:
                pts = np.asarray(shape.get("points"), dtype=np.float64).reshape(-1, 2)
            except (TypeError, ValueError):
                problems.add(f"{where} {entry}: 'points' is not a list of [x, y] pairs")
                continue
            part = _labelme_part(kind, pts, where, entry, problems)
            if part is None:
                if kind in ("line", "linestrip", "point", "points"):
                    notes.append(f"{where} {entry}: a {kind} shape has no area, left out")
                continue
            outside = _points_outside(part, height, width, True)
            if outside is not None:
                problems.add(
                    f"{where} {entry}: point {_fmt_point(outside)} is outside the {width}x{height} image"
                )
                continue
            gid = shape.get("group_id")
            key = ("group", gid, label.casefold()) if gid is not None else ("shape", k)
            if key in groups:
                groups[key][1].append(part)
            else:
                groups[key] = (label, [part], entry)
        objects = []
        for label, parts, entry in groups.values():
            geom = Geometry("index", parts)
            if geometry_area(geom, height, width) == 0:
                notes.append(f"{where} {entry}: empty mask, left out")
                continue
            objects.append(LabeledObject(class_id[label.casefold()], geom, entry))
        samples.append(Sample(image, height, width, tuple(objects), where))
    problems.raise_if_any()
    return Dataset(samples, cats, "labelme", str(data), notes)


def _labelme_part(
    kind: str, pts: np.ndarray, where: str, entry: str, problems: _Problems
) -> np.ndarray | None:
    if kind == "polygon":
        if len(pts) < 3:
            problems.add(f"{where} {entry}: polygon has {len(pts)} point(s); a polygon needs at least 3")
            return None
        return pts
    if kind == "rectangle":
        if len(pts) != 2:
            problems.add(f"{where} {entry}: a rectangle needs 2 points, got {len(pts)}")
            return None
        (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    if kind == "circle":
        if len(pts) != 2:
            problems.add(f"{where} {entry}: a circle needs 2 points (centre, edge), got {len(pts)}")
            return None
        c, e = pts
        r = float(np.hypot(*(e - c)))
        t = np.linspace(0, 2 * math.pi, max(8, int(r * 2)), endpoint=False)
        return np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)
    if kind in ("line", "linestrip", "point", "points"):
        return None
    problems.add(f"{where} {entry}: shape_type {kind!r} is not supported (polygon, rectangle, circle)")
    return None


# --------------------------------------------------------------------------- YOLO-seg
def _yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise DataError([f"{path}: reading data.yaml needs PyYAML (pip install pyyaml)"]) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError([f"{path}: cannot read ({first_line(exc)})"]) from None
    except yaml.YAMLError as exc:
        raise DataError([f"{path}: not valid YAML ({first_line(exc)})"]) from None
    if not isinstance(data, dict):
        raise DataError([f"{path}: not a YOLO dataset file (a mapping with train, val, names)"])
    return data


def _yolo_names(data: Mapping[str, Any], path: Path) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError([f"{path}: 'names' keys must be class indices 0, 1, ..."]) from None
        if keys != list(range(len(keys))):
            raise DataError([f"{path}: 'names' must number the classes 0..{len(keys) - 1} without gaps"])
        out = [str(names.get(k, names.get(str(k)))) for k in keys]
    elif isinstance(names, list):
        out = [str(n) for n in names]
    else:
        raise DataError([f"{path}: no 'names' (the class names, index 0 first)"])
    if not out:
        raise DataError([f"{path}: 'names' is empty: the dataset names no class to learn"])
    if "nc" in data and data["nc"] != len(out):
        raise DataError([f"{path}: nc is {data['nc']} but 'names' lists {len(out)} classes"])
    return out


def _yolo_images(root: Path, spec: Any, path: Path) -> list[Path]:
    """Image files of a ``train``/``val`` entry: a folder, a text file of paths, or a list."""
    entries = spec if isinstance(spec, list) else [spec]
    out: list[Path] = []
    for item in entries:
        if not isinstance(item, str):
            raise DataError([f"{path}: train/val entries must be paths, got {item!r:.40}"])
        p = Path(item) if Path(item).is_absolute() else root / item
        if p.is_dir():
            for folder, dirs, names in os.walk(p, followlinks=True):
                dirs.sort()
                out += [Path(folder) / n for n in sorted(names) if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
        elif p.is_file() and p.suffix.lower() == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    q = Path(line)
                    out.append(
                        q if q.is_absolute() else (root / q if line.startswith("./") else p.parent / q)
                    )
        else:
            raise DataError([f"{path}: train/val path {p} is neither a folder nor a .txt list of images"])
    return out


def yolo_label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, suffix ``.txt``."""
    text = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in text:
        head, _, tail = text.rpartition(sa)
        text = head + sb + tail
    return Path(text).with_suffix(".txt")


def read_yolo(path: Path, *, split: str = "train") -> Dataset:
    """A YOLO-seg ``data.yaml`` (its ``split`` entry) as a dataset; its ``val`` rides along in
    ``val_source`` when it lists other images than ``train``."""
    data = _yaml(path)
    names = _yolo_names(data, path)
    base = data.get("path")
    root = Path(base) if isinstance(base, str) and base else path.parent
    if not root.is_absolute():
        root = path.parent / root
    if split not in data:
        raise DataError([f"{path}: no {split!r} entry"])
    files = _yolo_images(root, data[split], path)
    categories = (BACKGROUND, *names)
    problems = _Problems()
    samples: list[Sample] = []
    notes: list[str] = []
    for image in files:
        where = f"{yolo_label_path(image)}"
        size = _check_image(image, f"{path} {split} image", problems)
        if size is None:
            continue
        height, width = size
        label_file = yolo_label_path(image)
        objects: list[LabeledObject] = []
        if label_file.is_file():
            try:
                lines = label_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                problems.add(f"{label_file}: cannot read ({first_line(exc)})")
                continue
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                entry = f"line {n}"
                parts = line.split()
                try:
                    cls = int(parts[0])
                    values = np.asarray([float(v) for v in parts[1:]], np.float64)
                except ValueError:
                    problems.add(f"{label_file} {entry}: not 'class x1 y1 x2 y2 ...' numbers")
                    continue
                if not 0 <= cls < len(names):
                    problems.add(
                        f"{label_file} {entry}: unknown class {cls} (data.yaml names 0..{len(names) - 1})"
                    )
                    continue
                if len(values) == 4:
                    problems.add(
                        f"{label_file} {entry}: a box (class x y w h), not a polygon: "
                        "segcli train needs masks"
                    )
                    continue
                if len(values) % 2:
                    problems.add(f"{label_file} {entry}: an odd number of coordinates ({len(values)})")
                    continue
                if len(values) < 6:
                    problems.add(
                        f"{label_file} {entry}: polygon has {len(values) // 2} point(s); "
                        "a polygon needs at least 3"
                    )
                    continue
                pts = values.reshape(-1, 2)
                bad = ~np.isfinite(pts).all(1) | (pts < -1e-6).any(1) | (pts > 1 + 1e-6).any(1)
                if bad.any():
                    problems.add(
                        f"{label_file} {entry}: point {_fmt_point(pts[int(np.argmax(bad))])} "
                        "is outside [0, 1] "
                        "(mask outside the image)"
                    )
                    continue
                geom = Geometry("index", [pts * (width, height)])
                if geometry_area(geom, height, width) == 0:
                    notes.append(f"{label_file} {entry}: empty mask, left out")
                    continue
                objects.append(LabeledObject(cls + 1, geom, entry))
        samples.append(Sample(image, height, width, tuple(objects), where))
    problems.raise_if_any()
    if not files:
        raise DataError([f"{path}: its {split!r} entry lists no images: the dataset is empty"])
    ds = Dataset(samples, categories, "yolo", str(path), notes)
    if split == "train" and "val" in data and data.get("val") != data.get("train"):
        ds.val_source = read_yolo(path, split="val")
    return ds


# --------------------------------------------------------------------------- generated scenes
def parse_scenes(text: str) -> tuple[str, int]:
    body = text[len(SCENES_PREFIX) :]
    name, _, count = body.partition(":")
    if name != "blocks":
        raise UsageError(f"{text!r}: the generated scenes are 'scenes:blocks[:N]'")
    try:
        n = int(count) if count else DEFAULT_SCENES_PER_EPOCH
    except ValueError:
        raise UsageError(f"{text!r}: N (scenes per epoch) must be a whole number") from None
    if n < 1:
        raise UsageError(f"{text!r}: N (scenes per epoch) must be at least 1")
    return name, n


def read_scenes(text: str) -> Dataset:
    """``scenes:blocks[:N]``: N generated training scenes per epoch, new seeds each epoch."""
    from segcli.models.blocks.arch import CATEGORIES

    _, n = parse_scenes(text)
    return Dataset([], tuple(CATEGORIES), "scenes", text, scenes_per_epoch=n)


def scene_from_render(seed: int, scene: Any) -> Sample:
    """The sample of a rendered generated scene (its masks are read from ``scene`` when drawn)."""
    objects = tuple(
        LabeledObject(o.category_id, Geometry("scene", k), f"object {k}") for k, o in enumerate(scene.objects)
    )
    return Sample(None, scene.height, scene.width, objects, f"scene {seed}", seed=seed)


# --------------------------------------------------------------------------- entry point
def detect_format(data: str | Path) -> str:
    text = str(data)
    if text.startswith(SCENES_PREFIX):
        return "scenes"
    path = Path(text)
    if not path.exists():
        raise DataError([f"{path}: no such file or folder"])
    if path.is_dir():
        if (path / "data.yaml").is_file() and not any(_labelme_files(path)):
            return "yolo"
        return "labelme"
    if path.suffix.lower() in (".yaml", ".yml"):
        return "yolo"
    if path.suffix.lower() == ".json":
        try:
            head = parse_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DataError([f"{path}: not a readable JSON file ({first_line(exc)})"]) from None
        return "labelme" if isinstance(head, dict) and "shapes" in head else "coco"
    raise DataError(
        [f"{path}: not a COCO file (.json), a LabelMe folder or a YOLO data.yaml (the formats segcli writes)"]
    )


def read_dataset(
    data: str | Path,
    images: Path | None = None,
    *,
    base_categories: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
) -> Dataset:
    """Read and check ``data`` (any format above). ``images``: the folder COCO file names are
    relative to. ``base_categories``: the starting model's (LabelMe class order follows it).
    ``categories``: the class list to map onto (a validation set: its training set's)."""
    kind = detect_format(data)
    if images is not None and kind != "coco":
        raise UsageError(f"IMAGES ({images}) is for a COCO file; {kind} labels say where their images are")
    if kind == "scenes":
        ds = read_scenes(str(data))
    elif kind == "coco":
        ds = read_coco(Path(data), images)
    elif kind == "labelme":
        ds = read_labelme(Path(data), base_categories, categories=categories)
    else:
        path = Path(data)
        ds = read_yolo(path / "data.yaml" if path.is_dir() else path)
    if categories is not None and kind != "scenes":
        ds = map_categories(ds, categories)
    if kind != "scenes":
        if not ds.samples:
            raise DataError([f"{data}: no images: the dataset is empty"])
        if not any(s.objects for s in ds.samples):
            raise DataError(
                [f"{data}: no labelled objects in its {len(ds.samples)} image(s): nothing to learn"]
            )
    return ds


def map_categories(ds: Dataset, categories: Sequence[str]) -> Dataset:
    """``ds`` with its class ids renumbered into ``categories`` (by name); a class of ``ds``
    that ``categories`` lacks is a :class:`DataError`."""
    if same_classes(ds.categories, categories):
        return replace(ds, categories=tuple(categories))
    target = {c.casefold(): i for i, c in enumerate(categories) if c not in PLACEHOLDER_CLASSES}
    used = {o.label for s in ds.samples for o in s.objects}
    missing = sorted(ds.categories[i] for i in used if ds.categories[i].casefold() not in target)
    if missing:
        raise DataError(
            [
                f"{ds.source}: class {missing[0]!r} is not among the training classes "
                f"({', '.join(c for c in categories if c not in PLACEHOLDER_CLASSES)})"
            ]
        )
    remap = {i: target[c.casefold()] for i, c in enumerate(ds.categories) if c.casefold() in target}
    samples = [
        replace(s, objects=tuple(replace(o, label=remap[o.label]) for o in s.objects)) for s in ds.samples
    ]
    return replace(ds, samples=samples, categories=tuple(categories))


def split_dataset(ds: Dataset, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A fixed, seeded split: (train, val). ``val`` is ``fraction`` of the images (at least one);
    a dataset of one image trains and validates on it."""
    n = len(ds.samples)
    if n < 2:
        return ds, ds
    k = min(n - 1, max(1, round(n * fraction)))
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:k].tolist())
    train = [s for i, s in enumerate(ds.samples) if i not in val_idx]
    val = [s for i, s in enumerate(ds.samples) if i in val_idx]
    return replace(ds, samples=train, val_source=None), replace(ds, samples=val, val_source=None)
