"""Run-level export files: ``coco-results.json`` (the list ``COCO.loadRes`` takes).

Per-image formats (polygons, YOLO-seg, LabelMe) are pure functions in
:mod:`segcli.outputs.formats`; this module streams a run's per-image JSON records into
one results file, numbered like ``coco.json`` or like a ground truth's images.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pycocotools.coco import COCO

from segcli.core.jsonio import parse_json
from segcli.datasets.groundtruth import CategoryMatch, match_categories, match_images
from segcli.io.files import atomic_path
from segcli.outputs.formats import results_from_record
from segcli.outputs.writers import coco_categories


@dataclass(frozen=True)
class ResultsFile:
    path: Path
    results: int
    categories: CategoryMatch | None  # how the model's classes became the ground truth's, if one was given


def coco_image_ids(
    file_names: Sequence[str], ground_truth: COCO | None, *, source: str = "run"
) -> dict[str, int]:
    """Image ids for a run's files: the ground truth's (matched by file name), or 1..N in order.

    Without a ground truth the ids are those ``coco.json`` gives the same files.
    """
    if ground_truth is None:
        return {name: k for k, name in enumerate(file_names, start=1)}
    return match_images(ground_truth.dataset["images"], file_names, source=source)


def write_coco_results(
    path: Path,
    entries: Sequence[tuple[str, Path]],
    categories: Sequence[str],
    ground_truth: COCO | None = None,
    *,
    match_by: str = "name",
) -> ResultsFile:
    """Write ``coco-results.json`` from (file name, per-image JSON path) entries, streaming.

    With a ground truth, image ids and category ids are the ground truth's (images by
    file name, classes by name or id); detections of classes it lacks are left out.
    Without one, ids are ``coco.json``'s: images numbered 1..N, the model's class ids.
    """
    ids = coco_image_ids([name for name, _ in entries], ground_truth)
    mapping: dict[int, int] | None = None
    if ground_truth is not None:
        mapping = match_categories(
            ground_truth.dataset["categories"], coco_categories(categories), by=match_by
        ).mapping
    used: Counter[int] = Counter()
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write("[")
        for name, json_path in entries:
            record = parse_json(json_path.read_text(encoding="utf-8"))
            used.update(int(inst["category_id"]) for inst in record["instances"])
            for result in results_from_record(record, ids[name], mapping):
                out.write(("," if count else "") + json.dumps(result, ensure_ascii=False))
                count += 1
        out.write("]\n")
    match = None
    if ground_truth is not None:  # again, now listing the unmatched classes that have detections
        match = match_categories(
            ground_truth.dataset["categories"], coco_categories(categories, used), by=match_by, used=used
        )
    return ResultsFile(path, count, match)
