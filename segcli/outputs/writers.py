"""Output files: overlay images, per-image JSON, mask PNGs, id maps, COCO, YOLO-seg and LabelMe files.

Every file is written atomically (temp file + fsync + rename); the per-image JSON is
written last, after the other outputs are on the disk, so a JSON that parses
(:func:`read_record`) marks an image as done, also after a power cut.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segcli.core.errors import SegcliError, UsageError
from segcli.core.instances import PLACEHOLDER_CLASSES, Instances
from segcli.core.masks import rle_encode
from segcli.draw.annotators import Annotator, OverlayAnnotator, instance_color
from segcli.io.files import NAME_MAX, atomic_path, atomic_write_bytes, fsync_dir, name_bytes, truncate_name
from segcli.io.video import is_video_path
from segcli.outputs.formats import coco_polygons, labelme_record, yolo_class_index, yolo_lines

SCHEMA = "segcli.instances/1"
OUTPUT_KINDS = ("overlay", "json", "masks", "idmap", "polygons", "yolo", "labelme")
DEFAULT_SAVE = ("overlay", "json")
YOLO_DIR = "yolo"
LABELME_DIR = "labelme"


def parse_save(text: str) -> tuple[str, ...]:
    """``--save`` as output kinds; ``polygons`` lives in the JSON, so it brings ``json`` along."""
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise UsageError(
            f"--save {text!r}: unknown output {unknown[0]!r}; choose from {', '.join(OUTPUT_KINDS)}"
            if unknown
            else "--save names no output"
        )
    if "polygons" in kinds and "json" not in kinds:
        kinds = (*kinds, "json")
    return kinds


# --------------------------------------------------------------------------- planning
OUTPUT_SUFFIXES = {
    "json": ".json",
    "polygons": ".json",  # polygons are a field of the JSON
    "overlay": ".overlay{ext}",  # .jpg for JPEG inputs, else .png
    "masks": ".masks",
    "idmap": ".idmap.png",
}
EXTRA_SUFFIXES = (".idmap.preview.png", ".compare.json", ".explain.json", ".proposals.json")
"""Other names derived from an input's: the id map's colour preview, the figures' JSON."""
LONGEST_SUFFIX = max(len(x) for x in (*OUTPUT_SUFFIXES.values(), *EXTRA_SUFFIXES))
"""The longest suffix segcli adds to an input's name (``.idmap.preview.png``)."""
MAX_BASE_BYTES = NAME_MAX - LONGEST_SUFFIX
"""Longer input names are shortened (see :func:`fit_name`) so that every derived name fits."""
RESERVED_NAMES = frozenset(
    {"run.json", "coco.json", "coco-results.json", ".segcli-output", YOLO_DIR, LABELME_DIR}
)
"""What a run writes at the top of its output folder: no input's outputs may take these names."""


def path_tag(text: str) -> str:
    """8 hex digits from ``text`` (its on-disk bytes): the suffix that keeps outputs apart."""
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:8]


def fit_name(name: str, key: str, limit: int = MAX_BASE_BYTES) -> str:
    """``name`` if it fits in ``limit`` bytes, else ``<prefix>~<path_tag(key)><suffix>``.

    Deterministic (the same ``key`` gives the same name, so a resumed run finds its outputs),
    unique (the tag comes from the whole ``key``), the image suffix kept for readers.
    """
    if name_bytes(name) <= limit:
        return name
    suffix = Path(name).suffix
    if name_bytes(suffix) > 16:
        suffix = ""
    tag = f"~{path_tag(key)}{suffix}"
    return truncate_name(name, limit - name_bytes(tag)) + tag


@dataclass(frozen=True)
class OutputPlan:
    """Where one input's outputs go. ``key`` is ``base`` relative to the output folder: the
    input's path relative to the run's root, unless a suffix had to keep it apart (unique).

    ``stem`` is ``key`` without its extension (unique in the run): YOLO-seg and LabelMe
    pair a label file with its image by that name (``photo.jpg`` -> ``photo.txt``).
    """

    source: Path
    key: str
    base: Path
    stem: str = ""

    @property
    def out_dir(self) -> Path:
        """The run's output folder (``base`` is ``out_dir / key``)."""
        return self.base.parents[len(Path(self.key).parts) - 1]

    @property
    def is_video(self) -> bool:
        return is_video_path(self.source)

    def paths(self, save: Iterable[str]) -> dict[str, Path]:
        if self.is_video:
            return video_paths(self.base, save)
        name = self.base.name
        ext = ".jpg" if self.source.suffix.lower() in (".jpg", ".jpeg") else ".png"
        stem = self.stem or Path(self.key).with_suffix("").as_posix()
        out: dict[str, Path] = {}
        for kind in save:
            if kind == "yolo":
                out[kind] = self.out_dir / YOLO_DIR / "labels" / f"{stem}.txt"
            elif kind == "labelme":
                out[kind] = self.out_dir / LABELME_DIR / f"{stem}.json"
            else:
                out[kind] = self.base.with_name(name + OUTPUT_SUFFIXES[kind].format(ext=ext))
        return out


def video_paths(base: Path, save: Iterable[str]) -> dict[str, Path]:
    """Outputs of a video named after ``base`` (e.g. ``out/clip.mp4``).

    ``overlay`` -> ``clip.mp4.overlay.mp4``; ``json`` -> ``clip.mp4.jsonl`` (one record per
    frame) under the key ``jsonl``; the ``segcli.video/1`` summary ``clip.mp4.json`` (key
    ``json``) comes with any of them: written last, it marks the video complete. Nothing
    when ``save`` is empty (``predict --json -``). ``masks``, ``idmap``, ``polygons``, ``yolo``
    and ``labelme`` are image outputs, not made for videos (the JSONL holds every frame's masks).
    """
    kinds = set(save)
    name = base.name
    paths: dict[str, Path] = {}
    if not kinds:
        return paths
    if "overlay" in kinds:
        paths["overlay"] = base.with_name(f"{name}.overlay.mp4")
    if "json" in kinds:
        paths["jsonl"] = base.with_name(f"{name}.jsonl")
    paths["json"] = base.with_name(f"{name}.json")
    return paths


def _output_names(name: str) -> set[str]:
    """Every name (case-folded) an input whose output base is ``name`` may write beside it."""
    return {
        (name + suffix.format(ext=ext)).casefold()
        for suffix in (*OUTPUT_SUFFIXES.values(), EXTRA_SUFFIXES[0])
        for ext in (".jpg", ".png")
    }


def plan_outputs(sources: Sequence[Path], out_dir: Path, root: Path | None = None) -> list[OutputPlan]:
    """One plan per source; outputs mirror the tree under ``root`` (or use bare names).

    Two sources never share an output, and no output takes the name of a folder the tree
    needs (an input folder ``a.png.json/`` beside ``a.png``) or of a run file: such a name
    (also when it differs only in case, for case-insensitive disks) gets a suffix made from
    its path. Names too long for the file system are shortened (:func:`fit_name`).
    """
    rels = [src.relative_to(root) if root is not None else Path(src.name) for src in sources]
    counts: dict[str, int] = {}
    stems: dict[str, int] = {}
    for rel in rels:
        counts[rel.as_posix().casefold()] = counts.get(rel.as_posix().casefold(), 0) + 1
        stem = rel.with_suffix("").as_posix().casefold()
        stems[stem] = stems.get(stem, 0) + 1
    folders = {parent.as_posix().casefold() for rel in rels for parent in rel.parents}
    plans = []
    for src, rel in zip(sources, rels):
        tag = path_tag(str(src.resolve()))
        parent, name = rel.parent, rel.name
        clash = counts[rel.as_posix().casefold()] > 1 or any(
            (parent / out).as_posix().casefold() in folders for out in _output_names(name)
        )
        name = fit_name(f"{name}~{tag}", str(src.resolve())) if clash else fit_name(name, rel.as_posix())
        stem_name = rel.with_suffix("").name
        if stems[rel.with_suffix("").as_posix().casefold()] > 1:  # photo.jpg and photo.png: one label name
            stem_name = f"{stem_name}~{tag}"
        stem_name = fit_name(stem_name, rel.as_posix(), NAME_MAX - len(".json"))
        if parent.parts and parent.parts[0].casefold() in RESERVED_NAMES:  # an input folder "run.json/"
            top = parent.parts[0]
            parent = Path(f"{top}~{path_tag(top)}", *parent.parts[1:])
        plans.append(
            OutputPlan(
                source=src,
                key=(parent / name).as_posix(),
                base=out_dir / parent / name,
                stem=(parent / stem_name).as_posix(),
            )
        )
    return plans


def outputs_complete(paths: dict[str, Path]) -> bool:
    """All outputs exist (a path the file system refuses counts as missing) and the per-image
    JSON, if among them, is a complete record."""
    try:
        if not all(p.exists() for p in paths.values()):
            return False
    except OSError:
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


OUTPUT_MARKER = ".segcli-output"
"""A file in every folder segcli writes outputs to; ``batch`` does not descend into such folders."""


def mark_output(out_dir: Path) -> None:
    """Create ``out_dir`` (and parents) and write its :data:`OUTPUT_MARKER` if missing.

    Written at the start of a run, before any output: a later ``batch`` over a folder that
    holds this one skips it instead of segmenting overlays. An error here (read-only disk,
    ``out_dir`` a file) is the caller's first sign that the folder cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / OUTPUT_MARKER
    if not marker.is_file():
        atomic_write_bytes(marker, b"segcli output folder: segcli batch does not descend into it.\n")


# --------------------------------------------------------------------------- JSON
def instances_record(
    instances: Instances,
    *,
    image_path: str,
    model: dict[str, Any],
    settings: dict[str, Any],
    polygons: bool = False,
) -> dict[str, Any]:
    """The ``segcli.instances/1`` JSON object of one image.

    With ``polygons``, each instance also carries its mask as COCO polygons
    (``[[x1, y1, x2, y2, ...], ...]``, holes bridged in; see :mod:`segcli.outputs.formats`).
    """
    height, width = instances.image_size
    items = []
    for i in range(len(instances)):
        x1, y1, x2, y2 = (round(float(v), 2) for v in instances.boxes[i])
        item: dict[str, Any] = {
            "id": i,
            "category_id": int(instances.class_ids[i]),
            "label": instances.class_names[i],
            "score": round(float(instances.scores[i]), 4),
            "box": [x1, y1, x2, y2],
            "area": int(instances.areas[i]),
            "mask": rle_encode(instances.masks[i], instances.mask_boxes[i], instances.image_size),
        }
        if polygons:
            item["polygons"] = coco_polygons(instances, i)
        items.append(item)
    return {
        "schema": SCHEMA,
        "image": {"path": image_path, "width": width, "height": height},
        "model": model,
        "settings": settings,
        "instances": items,
    }


def dumps(obj: Any) -> bytes:
    """``obj`` as one line of UTF-8 JSON.

    A path that is not valid UTF-8 (a POSIX file name may hold any bytes) reaches here as a
    string with lone surrogates (Python's ``surrogateescape``: byte 0xff is U+DCFF). They are
    written as JSON escapes (``\\udcff``), so the file is valid UTF-8 and nothing is lost:
    ``os.fsencode(json.loads(text)["image"]["path"])`` gives back the original bytes, and
    ``Path(json.loads(text)["image"]["path"])`` opens the file.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    return text.encode("utf-8", JSON_ERRORS)


JSON_ERRORS = "backslashreplace"
"""The codec error handler that writes a lone surrogate as the JSON escape ``\\udcXX``."""


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
) -> None:
    """Write the requested outputs of one image; the JSON (the completion mark) last.

    ``categories`` (the model's class list) numbers the YOLO-seg classes.
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
