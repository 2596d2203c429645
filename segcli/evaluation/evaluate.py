"""Evaluation against a COCO ground truth, with pycocotools' ``COCOeval`` as the reference.

``evaluate(ground_truth, predictions)`` matches the predictions' images to the
ground truth's by ``file_name`` and their categories by name, runs ``COCOeval`` for
boxes and masks, and returns an :class:`EvalResult` (plain data). ``eval_record``
turns it into the ``segcli.eval/1`` JSON object; ``write_eval`` writes that and one
precision-recall plot per class. The numbers are COCOeval's own: nothing is
recomputed, so they equal a direct COCOeval run on the same predictions.

Mask AP uses each detection's mask area for the small/medium/large ranges (the
results are handed to ``loadRes`` without boxes, as COCO's own segmentation results
files are); box AP uses box areas.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.core.errors import SegcliError, first_line
from segcli.core.exits import EXIT_INTERRUPTED, EXIT_OK
from segcli.core.jsonio import parse_json
from segcli.datasets.groundtruth import (
    MATCH_BY,
    BadEntry,
    CategoryMatch,
    check_bbox,
    check_int,
    check_number,
    check_segmentation,
    entry_name,
    is_int,
    load_ground_truth,
    match_categories,
    match_images,
    norm_path,
    quiet_coco,
    read_json,
    short_list,
)
from segcli.io.files import atomic_write_bytes, make_folders
from segcli.io.locks import output_lock

if TYPE_CHECKING:
    from segcli.runs.batch import BatchEvents, BatchOptions, BatchOutcome
    from segcli.runs.engines.base import SegmenterLike

EVAL_SCHEMA = "segcli.eval/1"
IOU_TYPES = ("bbox", "segm")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""COCOeval's ``stats`` vector, in its order."""
TABLE_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
"""The summary columns printed for each IoU type."""
CLASS_STATS = ("AP", "AP50", "AP75")
COCO_SCORE_THRESHOLD = 0.05
"""Above this score threshold, truncated precision-recall curves lower AP noticeably."""


# --------------------------------------------------------------------------- predictions
@dataclass
class Predictions:
    """Predictions as a COCO results list in the ground truth's image and category ids."""

    results: list[dict[str, Any]]
    categories: CategoryMatch
    images: int  # ground-truth images the predictions cover
    score_threshold: float | None  # as recorded by the run that made them, if known
    has_masks: bool
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _segmentation_rle(segm: Any, height: int, width: int) -> dict[str, Any]:
    """Any COCO segmentation (polygons, RLE, compressed RLE) as a compressed RLE."""
    if isinstance(segm, list):
        if not segm:  # an empty mask, without an image-sized array
            return mask_utils.frPyObjects(
                {"size": [height, width], "counts": [height * width]}, height, width
            )
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return mask_utils.frPyObjects(segm, height, width)
    return segm


def _recorded_threshold(data: Mapping[str, Any], path: Path) -> float | None:
    found = data.get("info")
    info = found if isinstance(found, dict) else {}
    settings = (info.get("segcli") or {}).get("settings") if isinstance(info.get("segcli"), dict) else None
    if settings is None:
        run_json = path.parent / "run.json"
        if run_json.is_file():
            with contextlib.suppress(OSError, ValueError):
                settings = parse_json(run_json.read_text(encoding="utf-8")).get("settings")
    value = settings.get("score_threshold") if isinstance(settings, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _check_detection(entry: object, sizes: Mapping[int, tuple[int, int]], image_id: object, ids: str) -> None:
    """One detection's numbers, before pycocotools sees them (a :class:`BadEntry` if wrong):
    integer ``category_id``, finite ``score``, and ``bbox`` / ``segmentation`` (an empty
    polygon list is an empty mask) valid for its ground-truth image."""
    if not isinstance(entry, dict):
        raise BadEntry("it is not an object")
    check_int(entry, "image_id")
    check_int(entry, "category_id")
    check_number(entry, "score")
    if image_id not in sizes:
        raise BadEntry(f"image_id {entry['image_id']} is not {ids}")
    height, width = sizes[image_id]  # type: ignore[index]
    if entry.get("bbox") is not None and entry.get("bbox") != []:
        check_bbox(entry["bbox"], height, width)
    if "segmentation" in entry:
        check_segmentation(entry["segmentation"], height, width, empty_ok=True)


def load_predictions(path: Path, gt: COCO, *, match_by: str = "name") -> Predictions:
    """Read a ``coco.json`` (images + annotations with scores) or a COCO results list.

    A ``coco.json`` is matched to the ground truth by file name and category name
    (or id); every ground-truth image must be in it. A results list already uses the
    ground truth's ids (COCO's results format): its image ids must exist there. Every
    entry's numbers are checked first (:func:`_check_detection`): a malformed or absurd
    one is one :class:`SegcliError` naming the file and the entry.
    """
    data = read_json(path, "predictions")
    gt_images = gt.dataset["images"]
    sizes = {int(img["id"]): (int(img["height"]), int(img["width"])) for img in gt_images}
    notes: list[str] = []
    extra_warnings: list[str] = []
    if isinstance(data, list):
        anns = data
        unknown = sorted(
            {a["image_id"] for a in anns if isinstance(a, dict) and is_int(a.get("image_id"))} - set(sizes),
            key=str,
        )
        if unknown:
            raise SegcliError(
                f"predictions {path}: {len(unknown)} image id(s) are not in the ground truth "
                f"({short_list([str(u) for u in unknown])}); a results list must use the ground truth's ids "
                "(a coco.json with images is matched by file name)"
            )
        for i, a in enumerate(anns):
            try:
                _check_detection(a, sizes, a.get("image_id") if isinstance(a, dict) else None, "known")
            except BadEntry as exc:
                raise SegcliError(f"predictions {path}: [{i}]: {exc}") from None
        if match_by == "name":
            notes.append("a results list has no category names: categories matched by id")
        used = Counter(int(a["category_id"]) for a in anns)
        pred_cats = [
            {"id": cid, "name": gt.cats[cid]["name"] if cid in gt.cats else f"id {cid}"} for cid in used
        ]
        cats = match_categories(gt.dataset["categories"], pred_cats, by="id", used=used)
        image_ids = {int(a["image_id"]): int(a["image_id"]) for a in anns}
        covered = len(set(image_ids))
        threshold = None
    elif (
        isinstance(data, dict)
        and isinstance(data.get("annotations"), list)
        and isinstance(data.get("images"), list)
    ):
        anns = data["annotations"]
        if anns and not all(isinstance(a, dict) and "score" in a for a in anns):
            raise SegcliError(
                f"predictions {path} has annotations without a score: is it a ground-truth file? "
                "(predictions need a score per annotation)"
            )
        pred_ids: set[int] = set()
        for i, img in enumerate(data["images"]):
            try:
                if not isinstance(img, dict) or not isinstance(img.get("file_name"), str):
                    raise BadEntry("it has no 'file_name' string")
                image_id = check_int(img, "id")
                if image_id in pred_ids:
                    raise BadEntry(f"image id {image_id} is used twice")
                pred_ids.add(image_id)
            except BadEntry as exc:
                raise SegcliError(f"predictions {path}: {entry_name('images', i, img)}: {exc}") from None
        pred_cat_ids: set[int] = set()
        for i, cat in enumerate(data.get("categories") or []):
            try:
                if not isinstance(cat, dict):
                    raise BadEntry("it is not an object")
                cid = check_int(cat, "id")
                if cid in pred_cat_ids:
                    raise BadEntry(f"category id {cid} is used twice")
                pred_cat_ids.add(cid)
            except BadEntry as exc:
                raise SegcliError(f"predictions {path}: {entry_name('categories', i, cat)}: {exc}") from None
        names = [str(img["file_name"]) for img in data["images"]]
        extra: list[str] = []
        by_name = match_images(gt_images, names, unmatched=extra)
        image_ids = {
            int(img["id"]): by_name[str(img["file_name"])]
            for img in data["images"]
            if str(img["file_name"]) in by_name
        }
        if extra:  # predictions for images the ground truth does not have: left out, said once
            extra_ids = {int(img["id"]) for img in data["images"] if str(img["file_name"]) not in by_name}
            anns = [a for a in anns if not (isinstance(a, dict) and a.get("image_id") in extra_ids)]
            extra_warnings.append(
                f"{len(extra)} prediction image(s) are not in the ground truth and were left out: "
                f"{short_list(extra)}"
            )
        covered_ids = set(image_ids.values())
        absent = [str(img["file_name"]) for img in gt_images if int(img["id"]) not in covered_ids]
        if absent:
            raise SegcliError(
                f"{len(absent)} ground-truth image(s) are not in predictions {path}: {short_list(absent)} "
                "(segment them too, or evaluate against a ground truth of the segmented images only)"
            )
        for i, a in enumerate(anns):
            try:
                target = image_ids.get(a.get("image_id")) if is_int(a.get("image_id")) else None
                _check_detection(a, sizes, target, "an image listed in the predictions")
            except BadEntry as exc:
                raise SegcliError(f"predictions {path}: {entry_name('annotations', i, a)}: {exc}") from None
        used = Counter(int(a["category_id"]) for a in anns)
        cats = match_categories(
            gt.dataset["categories"], data.get("categories") or [], by=match_by, used=used
        )
        covered = len(image_ids)
        threshold = _recorded_threshold(data, path)
    else:
        raise SegcliError(
            f"predictions {path} is neither a COCO file (images, annotations with scores) nor a COCO "
            "results list"
        )

    results: list[dict[str, Any]] = []
    has_masks = bool(anns) and all("segmentation" in a for a in anns)
    for a in anns:
        if int(a["category_id"]) not in cats.mapping:
            continue
        image_id = image_ids[int(a["image_id"])]
        entry: dict[str, Any] = {
            "image_id": image_id,
            "category_id": cats.mapping[int(a["category_id"])],
            "score": float(a["score"]),
        }
        if has_masks:
            height, width = sizes[image_id]
            entry["segmentation"] = _segmentation_rle(a["segmentation"], height, width)
        if a.get("bbox"):
            entry["bbox"] = [float(v) for v in a["bbox"]]
        elif has_masks:
            entry["bbox"] = [float(v) for v in mask_utils.toBbox(entry["segmentation"])]
        else:
            raise SegcliError(f"predictions {path}: an entry has neither bbox nor segmentation")
        results.append(entry)
    if anns and not has_masks:
        notes.append("the predictions have no masks: only boxes are evaluated")
    return Predictions(results, cats, covered, threshold, has_masks or not anns, notes, extra_warnings)


# --------------------------------------------------------------------------- COCOeval
def run_cocoeval(gt: COCO, results: Sequence[Mapping[str, Any]], iou_type: str) -> COCOeval:
    """COCOeval (evaluate, accumulate, summarize) on a results list, its output silenced.

    For ``segm`` the boxes are left out, so that mask areas decide small/medium/large.
    """
    keep = ("image_id", "category_id", "score", "bbox" if iou_type == "bbox" else "segmentation")
    dets = [{k: copy.copy(r[k]) for k in keep} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        if dets:
            dt = gt.loadRes(dets)
        else:
            dt = quiet_coco(
                {
                    "images": list(gt.dataset["images"]),
                    "categories": gt.dataset["categories"],
                    "annotations": [],
                }
            )
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@dataclass(frozen=True)
class ClassAP:
    category_id: int
    name: str
    instances: int  # ground-truth instances (not crowd)
    detections: int
    ap: dict[str, dict[str, float | None]]  # iou type -> {"AP", "AP50", "AP75"}


@dataclass(frozen=True)
class Curves:
    """Interpolated precision at COCO's 101 recall points, area "all", 100 detections."""

    recall: np.ndarray  # (R,)
    iou_thresholds: np.ndarray  # (T,)
    precision: np.ndarray  # (T, R, K), -1 where a class has no ground truth


@dataclass
class EvalResult:
    ground_truth: str
    predictions: str
    images: int
    detections: int
    categories: CategoryMatch
    stats: dict[str, dict[str, float | None]]  # iou type -> STAT_NAMES -> value (None: undefined)
    classes: list[ClassAP]
    curves: dict[str, Curves]
    score_threshold: float | None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _value(x: float) -> float | None:
    """COCOeval's -1 ("no ground truth in this range") as None."""
    return None if x < 0 or math.isnan(x) else float(x)


def _class_ap(precision: np.ndarray, k: int) -> dict[str, float | None]:
    p = precision[:, :, k, 0, -1]  # (T, R) at area "all", maxDets 100
    out: dict[str, float | None] = {}
    for name, rows in (("AP", p), ("AP50", p[0:1]), ("AP75", p[5:6])):
        valid = rows[rows > -1]
        out[name] = float(np.mean(valid)) if valid.size else None
    return out


def score_warning(threshold: float | None, results: Sequence[Mapping[str, Any]]) -> str | None:
    """The warning for predictions cut above COCO's usual 0.05 score threshold, if any."""
    if threshold is not None:
        if threshold > COCO_SCORE_THRESHOLD:
            return (
                f"the predictions were made with --score-threshold {threshold:g}: precision-recall curves "
                f"stop early and AP comes out lower than the model's; COCO evaluations keep scores down to "
                f"{COCO_SCORE_THRESHOLD} (rerun with --score-threshold {COCO_SCORE_THRESHOLD})"
            )
        return None
    if results:
        low = min(float(r["score"]) for r in results)
        if low > COCO_SCORE_THRESHOLD:
            return (
                f"the lowest prediction score is {low:.3f}: if the predictions were cut at a score threshold "
                f"above {COCO_SCORE_THRESHOLD}, AP comes out lower than the model's"
            )
    return None


def evaluate_predictions(gt: COCO, preds: Predictions, *, ground_truth: str, predictions: str) -> EvalResult:
    """Run COCOeval for boxes (and masks, when the predictions have them)."""
    gt_masks = all("segmentation" in a for a in gt.dataset["annotations"])
    iou_types = IOU_TYPES if preds.has_masks and gt_masks else ("bbox",)
    stats: dict[str, dict[str, float | None]] = {}
    curves: dict[str, Curves] = {}
    evals: dict[str, COCOeval] = {}
    for iou_type in iou_types:
        ev = run_cocoeval(gt, preds.results, iou_type)
        evals[iou_type] = ev
        stats[iou_type] = {name: _value(float(v)) for name, v in zip(STAT_NAMES, ev.stats)}
        curves[iou_type] = Curves(
            recall=np.asarray(ev.params.recThrs, dtype=np.float64),
            iou_thresholds=np.asarray(ev.params.iouThrs, dtype=np.float64),
            precision=np.asarray(ev.eval["precision"][:, :, :, 0, -1], dtype=np.float64),
        )
    cat_ids = list(evals["bbox"].params.catIds)
    gt_counts = Counter(int(a["category_id"]) for a in gt.dataset["annotations"] if not a.get("iscrowd", 0))
    det_counts = Counter(int(r["category_id"]) for r in preds.results)
    classes = [
        ClassAP(
            category_id=int(cid),
            name=str(gt.cats[cid]["name"]),
            instances=gt_counts.get(int(cid), 0),
            detections=det_counts.get(int(cid), 0),
            ap={t: _class_ap(ev.eval["precision"], k) for t, ev in evals.items()},
        )
        for k, cid in enumerate(cat_ids)
    ]
    warnings: list[str] = list(preds.warnings)
    notes = list(preds.notes)
    if preds.has_masks and not gt_masks:
        notes.append("some ground-truth annotations have no segmentation: only boxes are evaluated")
    warning = score_warning(preds.score_threshold, preds.results)
    if warning:
        warnings.append(warning)
    if not preds.results:
        warnings.append("there are no predictions to evaluate: every AP is 0")
    if preds.categories.unmatched_predicted:
        warnings.append(
            f"prediction categories not in the ground truth (left out): "
            f"{', '.join(preds.categories.unmatched_predicted)}"
        )
    no_pred = [c.name for c in classes if c.instances and c.name in preds.categories.unmatched_ground_truth]
    if no_pred:
        warnings.append(
            f"ground-truth categories the predictions have no category for (AP 0): {', '.join(no_pred)}"
        )
    return EvalResult(
        ground_truth=ground_truth,
        predictions=predictions,
        images=len(gt.dataset["images"]),
        detections=len(preds.results),
        categories=preds.categories,
        stats=stats,
        classes=classes,
        curves=curves,
        score_threshold=preds.score_threshold,
        warnings=warnings,
        notes=notes,
    )


def evaluate(
    ground_truth: Path, predictions: Path, *, match_by: str = "name", score_threshold: float | None = None
) -> EvalResult:
    """Evaluate a prediction file (``coco.json`` or a COCO results list) against a ground truth.

    ``score_threshold`` is the threshold the predictions were made with, when known
    and not recorded in the file (for the warning above 0.05).
    """
    if match_by not in MATCH_BY:
        raise SegcliError(f"--match-by {match_by!r}: choose from {', '.join(MATCH_BY)}")
    gt = load_ground_truth(ground_truth)
    preds = load_predictions(predictions, gt, match_by=match_by)
    if score_threshold is not None:
        preds.score_threshold = score_threshold
    return evaluate_predictions(gt, preds, ground_truth=str(ground_truth), predictions=str(predictions))


# --------------------------------------------------------------------------- outputs
def curve_file_name(category_id: int, name: str) -> str:
    """``pr/<id>-<name>.png`` with the name reduced to safe file-name characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "class"
    return f"pr/{category_id:03d}-{safe[:60]}.png"


def eval_record(result: EvalResult, curve_files: Mapping[int, str] | None = None) -> dict[str, Any]:
    """The ``segcli.eval/1`` JSON object: every number the tables show, unrounded."""
    cats = result.categories
    return {
        "schema": EVAL_SCHEMA,
        "ground_truth": result.ground_truth,
        "predictions": result.predictions,
        "images": result.images,
        "detections": result.detections,
        "score_threshold": result.score_threshold,
        "categories": {
            "match_by": cats.by,
            "matched": [
                {
                    "id": gt_id,
                    "name": next(c.name for c in result.classes if c.category_id == gt_id),
                    "predicted_id": pid,
                }
                for pid, gt_id in sorted(cats.mapping.items())
            ],
            "unmatched_predicted": list(cats.unmatched_predicted),
            "unmatched_ground_truth": list(cats.unmatched_ground_truth),
        },
        **{iou_type: dict(values) for iou_type, values in result.stats.items()},
        "per_class": [
            {
                "category_id": c.category_id,
                "name": c.name,
                "instances": c.instances,
                "detections": c.detections,
                **{iou_type: dict(values) for iou_type, values in c.ap.items()},
                **(
                    {"pr_curve": curve_files[c.category_id]}
                    if curve_files and c.category_id in curve_files
                    else {}
                ),
            }
            for c in result.classes
        ],
        "warnings": list(result.warnings),
        "notes": list(result.notes),
    }


def write_eval(result: EvalResult, out_dir: Path) -> tuple[Path, list[Path]]:
    """Write ``eval.json`` and ``pr/<id>-<name>.png`` per class; returns their paths."""
    from segcli.draw.plots import pr_curve_image
    from segcli.outputs.records import dumps
    from segcli.outputs.writers import encode_image

    make_folders(out_dir)
    files: dict[int, str] = {}
    written: list[Path] = []
    for k, c in enumerate(result.classes):
        rel = curve_file_name(c.category_id, c.name)
        panels = {
            t: (curves.recall, curves.iou_thresholds, curves.precision[:, :, k])
            for t, curves in result.curves.items()
        }
        path = out_dir / rel
        try:
            image = pr_curve_image(c.name, panels, c.ap)
        except Exception as exc:  # a plot is a picture of eval.json's numbers: never lose those for it
            result.warnings.append(f"no precision-recall plot for class {c.name!r} ({first_line(exc)})")
            continue
        make_folders(path.parent)
        atomic_write_bytes(path, encode_image(image, ".png"))
        files[c.category_id] = rel
        written.append(path)
    eval_path = out_dir / "eval.json"
    atomic_write_bytes(eval_path, dumps(eval_record(result, files)))
    return eval_path, written


# --------------------------------------------------------------------------- one evaluation run
@dataclass
class EvalOutcome:
    """What ``run_eval`` did: the evaluation (None if the model run was interrupted) and its files."""

    result: EvalResult | None
    eval_path: Path | None
    plots: list[Path]
    predictions: Path | None
    batch: BatchOutcome | None  # the model run, when there was one

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.batch is not None and self.batch.report.interrupted else EXIT_OK


def ground_truth_files(gt: COCO, images: Path) -> list[Path]:
    """The image file of every ground-truth image under ``images``; missing ones are one error."""
    files: list[Path] = []
    missing: list[str] = []
    for img in gt.dataset["images"]:
        rel = norm_path(str(img["file_name"]))
        if rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise SegcliError(f"ground-truth file_name {rel!r} leaves the images folder {images}")
        path = images / rel
        if path.is_file():
            files.append(path)
        else:
            missing.append(rel)
    if missing:
        raise SegcliError(
            f"{len(missing)} ground-truth image(s) are not in {images}: {short_list(missing)} "
            "(give the folder their file_name is relative to as IMAGES)"
        )
    return files


def run_eval(
    ground_truth: Path,
    output: Path,
    *,
    images: Path | None = None,
    predictions: Path | None = None,
    load: Callable[[], SegmenterLike] | None = None,
    options: BatchOptions | None = None,
    events: BatchEvents | None = None,
    match_by: str = "name",
) -> EvalOutcome:
    """Evaluate against a COCO ground truth; write ``eval.json`` and ``pr/*.png`` into ``output``.

    With ``predictions`` (a ``coco.json`` or COCO results list), evaluate those.
    Without, segment the ground truth's images (found under ``images``, default the
    ground truth's folder) with ``load``'s segmenter through :func:`segcli.runs.batch.run_batch`
    into ``output`` (resumable: a rerun does only what is missing; its
    ``coco-results.json`` uses the ground truth's ids), then evaluate its ``coco.json``.
    Bad input is one ``SegcliError``, raised before any model loads. ``output`` is locked
    (exclusive) throughout: another segcli command writing there is refused, or refuses this.
    """
    from segcli.runs.batch import BatchOptions, run_batch

    if match_by not in MATCH_BY:
        raise SegcliError(f"--match-by {match_by!r}: choose from {', '.join(MATCH_BY)}")
    gt = load_ground_truth(ground_truth)
    folder = images if images is not None else ground_truth.parent
    files: list[Path] = []
    if predictions is None:
        if load is None:
            raise SegcliError("no predictions to evaluate: pass --predictions or a model to run")
        if not folder.is_dir():
            raise SegcliError(f"images folder {folder} does not exist")
        files = ground_truth_files(gt, folder)
    with output_lock(output):  # the batch it runs, then eval.json: one owner of the folder
        batch = None
        if predictions is None:
            opts = options or BatchOptions()
            opts = dataclasses.replace(
                opts, save=tuple(dict.fromkeys(("json", *opts.save))), coco_ids_from=ground_truth
            )
            assert load is not None  # checked above, before the lock
            batch = run_batch(folder, output, load, options=opts, events=events, files=files)
            if batch.report.interrupted:
                return EvalOutcome(None, None, [], batch.coco_path, batch)
            failed = batch.summary["counts"]["failed"]
            if failed or batch.coco_path is None:
                raise SegcliError(
                    f"{failed} ground-truth image(s) failed in the model run "
                    f"(listed in {output / 'run.json'}); "
                    "the evaluation needs every image: fix them and run again (images done are kept)"
                )
            predictions = batch.coco_path
        preds = load_predictions(predictions, gt, match_by=match_by)
        result = evaluate_predictions(gt, preds, ground_truth=str(ground_truth), predictions=str(predictions))
        eval_path, plots = write_eval(result, output)
        return EvalOutcome(result, eval_path, plots, predictions, batch)
