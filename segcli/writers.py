"""Output files: overlay images, per-image JSON, mask PNGs, id maps, COCO files.

Every file is written atomically (temp file + fsync + rename); the per-image JSON is
written last, after the other outputs are on the disk, so a JSON that parses
(:func:`read_record`) marks an image as done, also after a power cut.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.errors import SegcliError
from segcli.fsutil import atomic_path, atomic_write_bytes, fsync_dir
from segcli.instances import PLACEHOLDER_CLASSES, Instances
from segcli.masks import rle_encode
from segcli.render import Annotator, OverlayAnnotator

SCHEMA = "segcli.instances/1"
OUTPUT_KINDS = ("overlay", "json", "masks", "idmap")
DEFAULT_SAVE = ("overlay", "json")


def parse_save(text: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise SegcliError(
            f"--save {text!r}: unknown output {unknown[0]!r}; choose from {', '.join(OUTPUT_KINDS)}"
            if unknown
            else "--save names no output"
        )
    return kinds


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class OutputPlan:
    """Where one input's outputs go. ``key`` is the input's path relative to the run's root."""

    source: Path
    key: str
    base: Path

    def paths(self, save: Iterable[str]) -> dict[str, Path]:
        name = self.base.name
        overlay_ext = ".jpg" if self.source.suffix.lower() in (".jpg", ".jpeg") else ".png"
        names = {
            "json": f"{name}.json",
            "overlay": f"{name}.overlay{overlay_ext}",
            "masks": f"{name}.masks",
            "idmap": f"{name}.idmap.png",
        }
        return {kind: self.base.with_name(names[kind]) for kind in save}


def plan_outputs(sources: Sequence[Path], out_dir: Path, root: Path | None = None) -> list[OutputPlan]:
    """One plan per source; outputs mirror the tree under ``root`` (or use bare names).

    Two sources never share an output: a name that collides (also when it differs
    only in case, for case-insensitive disks) gets a suffix made from its path.
    """
    rels = []
    for src in sources:
        if root is not None:
            rels.append(src.relative_to(root))
        else:
            rels.append(Path(src.name))
    counts: dict[str, int] = {}
    for rel in rels:
        counts[rel.as_posix().casefold()] = counts.get(rel.as_posix().casefold(), 0) + 1
    plans = []
    for src, rel in zip(sources, rels):
        if counts[rel.as_posix().casefold()] > 1:
            tag = hashlib.sha1(str(src.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
            rel = rel.with_name(f"{rel.name}~{tag}")
        plans.append(OutputPlan(source=src, key=rel.as_posix(), base=out_dir / rel))
    return plans


def outputs_complete(paths: dict[str, Path]) -> bool:
    """All outputs exist and the per-image JSON, if among them, is a complete record."""
    if not all(p.exists() for p in paths.values()):
        return False
    return "json" not in paths or read_record(paths["json"]) is not None


def read_record(path: Path) -> dict[str, Any] | None:
    """The ``segcli.instances/1`` record at ``path``, or None if it is missing, empty,
    truncated or not such a record (a file to redo, not to trust)."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(record, dict)
        or record.get("schema") != SCHEMA
        or not isinstance(record.get("image"), dict)
        or not isinstance(record.get("instances"), list)
    ):
        return None
    return record


# --------------------------------------------------------------------------- JSON
def instances_record(
    instances: Instances,
    *,
    image_path: str,
    model: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The ``segcli.instances/1`` JSON object of one image."""
    height, width = instances.image_size
    items = []
    for i in range(len(instances)):
        x1, y1, x2, y2 = (round(float(v), 2) for v in instances.boxes[i])
        items.append(
            {
                "id": i,
                "category_id": int(instances.class_ids[i]),
                "label": instances.class_names[i],
                "score": round(float(instances.scores[i]), 4),
                "box": [x1, y1, x2, y2],
                "area": int(instances.areas[i]),
                "mask": rle_encode(instances.masks[i], instances.mask_boxes[i], instances.image_size),
            }
        )
    return {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": width, "height": height},
        "model": model,
        "settings": settings,
        "instances": items,
    }


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- images
def encode_image(rgb: np.ndarray, ext: str) -> bytes:
    """Encode an RGB (or single-channel) array as PNG or JPEG bytes."""
    arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise SegcliError(f"could not encode a {arr.shape} image as {ext}")
    return buf.tobytes()


def _write_mask_dir(path: Path, instances: Instances) -> None:
    with atomic_path(path, directory=True) as tmp:
        full = np.zeros(instances.image_size, dtype=np.uint8)
        for i in range(len(instances)):
            x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
            full[y0:y1, x0:x1] = instances.masks[i] * np.uint8(255)
            (tmp / f"{i:03d}.png").write_bytes(encode_image(full, ".png"))
            full[y0:y1, x0:x1] = 0


def write_outputs(
    paths: dict[str, Path],
    image: np.ndarray,
    instances: Instances,
    record: dict[str, Any],
    annotator: Annotator | None = None,
) -> None:
    """Write the requested outputs of one image; the JSON (the completion mark) last."""
    if "overlay" in paths:
        overlay = (annotator or OverlayAnnotator()).annotate(image, instances)
        atomic_write_bytes(paths["overlay"], encode_image(overlay, paths["overlay"].suffix))
    if "masks" in paths:
        _write_mask_dir(paths["masks"], instances)
    if "idmap" in paths:
        # (H, W) uint16: pixel = instance id + 1, 0 = background; higher scores win overlaps
        if len(instances) > 65534:
            raise SegcliError(f"an id map holds at most 65534 instances, got {len(instances)}")
        ids = instances.label_map(np.arange(1, len(instances) + 1), dtype=np.uint16)
        atomic_write_bytes(paths["idmap"], encode_image(ids, ".png"))
    if "json" in paths:
        if len(paths) > 1:
            fsync_dir(paths["json"].parent)  # the other outputs are durable before the mark
        atomic_write_bytes(paths["json"], dumps(record))
    if paths:
        fsync_dir(next(iter(paths.values())).parent)


# --------------------------------------------------------------------------- COCO
def coco_categories(categories: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": name, "supercategory": "object"}
        for i, name in enumerate(categories)
        if name not in PLACEHOLDER_CLASSES
    ]


def write_coco(
    path: Path,
    entries: Iterable[tuple[str, Path]],
    categories: Sequence[str],
    info: dict[str, Any],
) -> tuple[int, int]:
    """Write one COCO file from per-image JSON files, streaming (flat memory).

    ``entries`` are (file_name relative to the input folder, per-image JSON path).
    Returns (images, annotations) written.
    """
    n_images = n_ann = 0
    with (
        atomic_path(path) as tmp,
        open(tmp, "w", encoding="utf-8") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8") as anns,
    ):
        out.write('{"info":' + json.dumps(info) + ',"licenses":[],"images":[')
        for file_name, json_path in entries:
            record = read_record(json_path)
            if record is None:
                raise SegcliError(f"{json_path}: not a complete segcli.instances/1 record; rerun to redo it")
            n_images += 1
            image = record["image"]
            out.write(
                ("," if n_images > 1 else "")
                + json.dumps(
                    {
                        "id": n_images,
                        "file_name": file_name,
                        "width": image["width"],
                        "height": image["height"],
                    },
                    ensure_ascii=False,
                )
            )
            for inst in record["instances"]:
                n_ann += 1
                x1, y1, x2, y2 = inst["box"]
                anns.write(
                    ("," if n_ann > 1 else "")
                    + json.dumps(
                        {
                            "id": n_ann,
                            "image_id": n_images,
                            "category_id": inst["category_id"],
                            "segmentation": inst["mask"],
                            "area": inst["area"],
                            "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                            "iscrowd": 0,
                            "score": inst["score"],
                        }
                    )
                )
        out.write('],"annotations":[')
        anns.seek(0)
        shutil.copyfileobj(anns, out)
        out.write('],"categories":' + json.dumps(coco_categories(categories)) + "}\n")
    return n_images, n_ann
