"""Output files: overlay images, per-image JSON, mask PNGs, id maps, COCO, YOLO-seg and LabelMe files.

Every file is written atomically (temp file + fsync + rename); the per-image JSON is
written last, after the other outputs are on the disk, so a JSON that parses
(:func:`segcli.outputs.plans.read_record`) marks an image as done, also after a power cut.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError
from segcli.core.instances import Instances
from segcli.draw.annotators import Annotator, OverlayAnnotator, instance_color
from segcli.io.files import atomic_path, atomic_write_bytes, fsync_dir
from segcli.outputs.formats import labelme_record, yolo_class_index, yolo_lines
from segcli.outputs.plans import read_record
from segcli.outputs.records import JSON_ERRORS, dumps


# --------------------------------------------------------------------------- images
def encode_image(rgb: np.ndarray, ext: str) -> bytes:
    """Encode an RGB (or single-channel) array as PNG or JPEG bytes."""
    arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise SegcliError(f"could not encode a {arr.shape} image as {ext}")
    return buf.tobytes()


def safe_name(label: str, limit: int = 40) -> str:
    """``label`` as a file-name part: letters, digits, ``_.-`` kept, anything else ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "object"
    return cleaned[:limit]


def mask_file_name(i: int, label: str) -> str:
    """The PNG of instance ``i`` in a ``--save masks`` folder: ``000-cube.png``, ``012-hair_drier.png``."""
    return f"{i:03d}-{safe_name(label)}.png"


def idmap_preview_path(idmap_path: Path) -> Path:
    """The colour preview written beside a 16-bit id map: ``photo.jpg.idmap.preview.png``."""
    return idmap_path.with_name(idmap_path.name.removesuffix(".png") + ".preview.png")


def idmap_preview(ids: np.ndarray) -> np.ndarray:
    """An id map (0 = background, k = instance k - 1) as RGB: each instance in its overlay
    colour (:func:`segcli.draw.annotators.instance_color`), the background black."""
    top = int(ids.max()) if ids.size else 0
    palette = np.zeros((top + 1, 3), dtype=np.uint8)
    for k in range(1, top + 1):
        palette[k] = instance_color(k - 1)
    return palette[ids]


def _write_mask_dir(path: Path, instances: Instances) -> None:
    with atomic_path(path, directory=True) as tmp:
        full = np.zeros(instances.image_size, dtype=np.uint8)
        for i in range(len(instances)):
            x0, y0, x1, y1 = (int(v) for v in instances.mask_boxes[i])
            full[y0:y1, x0:x1] = instances.masks[i] * np.uint8(255)
            (tmp / mask_file_name(i, instances.class_names[i])).write_bytes(encode_image(full, ".png"))
            full[y0:y1, x0:x1] = 0


def write_outputs(
    paths: dict[str, Path],
    image: np.ndarray,
    instances: Instances,
    record: dict[str, Any],
    annotator: Annotator | None = None,
    categories: Sequence[str] = (),
    tile_grid: dict[str, Any] | None = None,
) -> None:
    """Write the requested outputs of one image; the JSON (the completion mark) last.

    ``categories`` (the model's class list) numbers the YOLO-seg classes; ``tile_grid`` (the
    JSON's ``tiling.grid``) is drawn on the overlay.
    """
    if "yolo" in paths:
        if not categories:
            raise SegcliError("YOLO-seg labels need the model's class list (categories)")
        lines = yolo_lines(instances, yolo_class_index(categories, PLACEHOLDER_CLASSES))
        atomic_write_bytes(paths["yolo"], "".join(f"{line}\n" for line in lines).encode("utf-8"))
    if "labelme" in paths:
        target = paths["labelme"]
        image_path = os.path.relpath(Path(record["image"]["path"]).absolute(), target.parent.absolute())
        atomic_write_bytes(target, dumps(labelme_record(instances, Path(image_path).as_posix())))
    if "overlay" in paths:
        overlay = (annotator or OverlayAnnotator()).annotate(image, instances)
        if tile_grid is not None:
            from segcli.draw.grid import draw_tile_grid

            draw_tile_grid(overlay, tile_grid)
        atomic_write_bytes(paths["overlay"], encode_image(overlay, paths["overlay"].suffix))
    if "masks" in paths:
        _write_mask_dir(paths["masks"], instances)
    if "idmap" in paths:
        # (H, W) uint16: pixel = instance id + 1, 0 = background; higher scores win overlaps
        if len(instances) > 65534:
            raise SegcliError(f"an id map holds at most 65534 instances, got {len(instances)}")
        ids = instances.label_map(np.arange(1, len(instances) + 1), dtype=np.uint16)
        # the viewer-friendly preview first: the id map itself is what marks the output done
        preview = idmap_preview_path(paths["idmap"])
        atomic_write_bytes(preview, encode_image(idmap_preview(ids), ".png"))
        atomic_write_bytes(paths["idmap"], encode_image(ids, ".png"))
    json_path = paths.get("json")
    # The other outputs' renames are durable before the mark (they may live in other folders).
    for folder in dict.fromkeys(p.parent for p in paths.values() if p != json_path):
        fsync_dir(folder)
    if json_path is not None:
        atomic_write_bytes(json_path, dumps(record))
        fsync_dir(json_path.parent)


# --------------------------------------------------------------------------- COCO
def coco_categories(categories: Sequence[str], used: Iterable[int] = ()) -> list[dict[str, Any]]:
    """The model's classes as COCO categories, plus any placeholder slot (``N/A``) in ``used``."""
    used = set(used)
    listed = [
        {"id": i, "name": name, "supercategory": "object"}
        for i, name in enumerate(categories)
        if name not in PLACEHOLDER_CLASSES or i in used
    ]
    known = {c["id"] for c in listed}
    listed += [{"id": i, "name": f"class {i}", "supercategory": "object"} for i in sorted(used - known)]
    return sorted(listed, key=lambda c: c["id"])


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
    used: set[int] = set()
    with (
        atomic_path(path) as tmp,
        open(tmp, "w", encoding="utf-8", errors=JSON_ERRORS) as out,
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
                used.add(int(inst["category_id"]))
                x1, y1, x2, y2 = inst["box"]
                anns.write(
                    ("," if n_ann > 1 else "")
                    + json.dumps(
                        {
                            "id": n_ann,
                            "image_id": n_images,
                            "category_id": inst["category_id"],
                            "segmentation": inst.get("polygons") or inst["mask"],
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
        out.write('],"categories":' + json.dumps(coco_categories(categories, used)) + "}\n")
    return n_images, n_ann
