"""Validation AP by ``segcli eval``'s own code: the numbers in train.json are the ones it prints.

Each validation loads the checkpoint just written (``last.pt``) into a ``Segmenter`` with
no other setting than eval's score threshold (0.05, COCO's convention), segments the
validation images with :func:`segcli.evaluation.evaluate.run_eval` into ``val/`` and keeps
COCOeval's box and mask statistics. ``segcli eval VAL.json IMAGES --weights last.pt`` gives
the same numbers. A validation set that is a COCO file is evaluated as it is; any other
(a split of DATA, LabelMe, YOLO-seg, generated scenes) is written as ``val.json`` first
(polygons as given, LabelMe / YOLO-seg polygons drawn as training draws them and stored as RLE).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.io.files import atomic_write_bytes
from segcli.train.data import Dataset, Geometry, Sample, render_mask

EVAL_SCORE_THRESHOLD = 0.05


@dataclass(frozen=True)
class ValSet:
    """What COCOeval validates against: a COCO file and the folder its file names are in."""

    ground_truth: Path
    images: Path
    count: int
    how: str  # said in the output and recorded


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _segmentation(geom: Geometry, sample: Sample, scene: Any) -> Any:
    if geom.kind == "span":
        return geom.data
    if geom.kind == "rle":
        return geom.data
    return _rle(render_mask(geom, sample, sample.height, sample.width, scene))


def write_val_coco(ds: Dataset, out_dir: Path, how: str) -> ValSet:
    """``out_dir/val.json`` for ``ds`` (generated scenes also as ``val-images/*.png``)."""
    scenes: dict[int, Any] = {}
    if ds.format == "scenes":
        from segcli.models.blocks.scenes import render_scene
        from segcli.outputs.writers import encode_image

        folder = out_dir / "val-images"
        folder.mkdir(parents=True, exist_ok=True)
        for s in ds.samples:
            assert s.seed is not None
            scene = render_scene(s.seed)
            scenes[s.seed] = scene
            atomic_write_bytes(folder / f"scene-{s.seed}.png", encode_image(scene.image, ".png"))
        root = folder
        names = [f"scene-{s.seed}.png" for s in ds.samples]
    else:
        paths = [s.path.resolve() for s in ds.samples if s.path is not None]
        root = (
            ds.images_root.resolve()
            if ds.images_root is not None
            else Path(os.path.commonpath([str(p.parent) for p in paths]))
        )
        names = [p.relative_to(root).as_posix() for p in paths]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (s, name) in enumerate(zip(ds.samples, names), start=1):
        images.append({"id": image_id, "file_name": name, "width": s.width, "height": s.height})
        drawn: Any = scenes.get(s.seed) if s.seed is not None else None
        for obj in s.objects:
            annotations.append(
                _annotation(len(annotations) + 1, image_id, obj.label, obj.geometry, s, drawn, 0)
            )
        for obj in s.crowd:
            annotations.append(
                _annotation(len(annotations) + 1, image_id, obj.label, obj.geometry, s, drawn, 1)
            )
    categories = [
        {"id": i, "name": name, "supercategory": "object"}
        for i, name in enumerate(ds.categories)
        if name not in PLACEHOLDER_CLASSES
    ]
    path = out_dir / "val.json"
    data = {"images": images, "annotations": annotations, "categories": categories}
    atomic_write_bytes(path, (json.dumps(data) + "\n").encode("utf-8"))
    return ValSet(path, root, len(images), how)


def _annotation(
    ann_id: int, image_id: int, label: int, geom: Geometry, s: Sample, scene: Any, crowd: int
) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    segm = _segmentation(geom, s, scene)
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, s.height, s.width))
    elif isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, s.height, s.width)
    else:
        rle = {"size": segm["size"], "counts": segm["counts"].encode("ascii")}
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": label,
        "segmentation": segm,
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": crowd,
    }


def evaluate_checkpoint(checkpoint: Path, val: ValSet, out_dir: Path, device: str) -> dict[str, Any] | None:
    """COCOeval box and mask statistics of ``checkpoint`` on ``val`` (``None`` if interrupted),
    by ``segcli eval``'s code path; its files (eval.json, coco.json, pr/) go to ``out_dir``."""
    from segcli.core.settings import Settings
    from segcli.evaluation.evaluate import run_eval
    from segcli.inference.segmenter import Segmenter
    from segcli.runs.batch import BatchOptions

    def load() -> Segmenter:
        return Segmenter(
            weights=checkpoint,
            device=device,
            settings=Settings(score_threshold=EVAL_SCORE_THRESHOLD),
            progress=False,
        )

    outcome = run_eval(
        val.ground_truth,
        out_dir,
        images=val.images,
        load=load,
        options=BatchOptions(save=("json",), overwrite=True),
    )
    if outcome.result is None:
        return None
    stats = {k: dict(v) for k, v in outcome.result.stats.items()}
    return {**stats, "detections": outcome.result.detections, "images": outcome.result.images}
