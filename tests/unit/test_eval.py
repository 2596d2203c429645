"""``segcli.evaluation.evaluate``: matching, COCOeval parity, eval.json and precision-recall plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.core.errors import SegcliError
from segcli.core.masks import rle_decode
from segcli.evaluation.evaluate import (
    STAT_NAMES,
    TABLE_STATS,
    evaluate,
    match_images,
    write_eval,
)
from tests.conftest import REPO

GT_PATH = REPO / "examples" / "blocks" / "ground-truth.json"


def _gt() -> dict[str, Any]:
    return json.loads(GT_PATH.read_text())


def _predictions(seed: int = 0) -> dict[str, Any]:
    """A segcli-like coco.json made from the ground truth: other image ids and order, masks
    eroded or shifted, a miss, false positives, random scores, categories under other ids."""
    gt = _gt()
    rng = np.random.default_rng(seed)
    images = [dict(img, id=100 + k) for k, img in enumerate(reversed(gt["images"]))]
    new_id = {img["file_name"]: img["id"] for img in images}
    file_of = {img["id"]: img["file_name"] for img in gt["images"]}
    cat_id = {1: 11, 2: 12, 3: 13}  # the model numbers its classes otherwise
    anns = []
    for k, a in enumerate(gt["annotations"]):
        if k == 3:
            continue  # a miss
        mask = rle_decode(a["segmentation"])
        if k % 3 == 1:
            mask = np.roll(mask, int(rng.integers(2, 9)), axis=1)
        elif k % 3 == 2:
            mask[: int(mask.nonzero()[0].mean())] = False  # lose the top half
        ys, xs = mask.nonzero()
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": new_id[file_of[a["image_id"]]],
                "category_id": cat_id[a["category_id"]] if k != 7 else 12,  # one wrong class
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                "area": int(mask.sum()),
                "bbox": [x0 + rng.uniform(-3, 3), y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
                "score": round(float(rng.uniform(0.05, 1.0)), 4),
            }
        )
    for img in images[:3]:  # false positives
        mask = np.zeros((img["height"], img["width"]), dtype=np.uint8)
        mask[10:60, 10:90] = 1
        rle = mask_utils.encode(np.asfortranarray(mask))
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": img["id"],
                "category_id": 13,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                "area": int(mask.sum()),
                "bbox": [10.0, 10.0, 80.0, 50.0],
                "iscrowd": 0,
                "score": 0.3,
            }
        )
    categories = [
        {"id": 0, "name": "__background__", "supercategory": "object"},
        {"id": 11, "name": "cube", "supercategory": "object"},
        {"id": 12, "name": "sphere", "supercategory": "object"},
        {"id": 13, "name": "cylinder", "supercategory": "object"},
        {"id": 14, "name": "pyramid", "supercategory": "object"},
    ]
    return {"info": {}, "images": images, "annotations": anns, "categories": categories}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def _direct(results: list[dict[str, Any]], iou_type: str) -> COCOeval:
    """pycocotools run directly, by hand: segm results without boxes (mask areas)."""
    gt = COCO(str(GT_PATH))
    keep = "bbox" if iou_type == "bbox" else "segmentation"
    dt = gt.loadRes([{k: r[k] for k in ("image_id", "category_id", "score", keep)} for r in results])
    ev = COCOeval(gt, dt, iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev


def _by_hand(pred: dict[str, Any]) -> list[dict[str, Any]]:
    """The predictions remapped to the ground truth's ids by file name and category name."""
    gt = _gt()
    gt_image = {img["file_name"]: img["id"] for img in gt["images"]}
    image = {img["id"]: gt_image[img["file_name"]] for img in pred["images"]}
    gt_cat = {c["name"]: c["id"] for c in gt["categories"]}
    cat = {c["id"]: gt_cat[c["name"]] for c in pred["categories"] if c["name"] in gt_cat}
    return [
        {
            "image_id": image[a["image_id"]],
            "category_id": cat[a["category_id"]],
            "score": a["score"],
            "bbox": a["bbox"],
            "segmentation": a["segmentation"],
        }
        for a in pred["annotations"]
        if a["category_id"] in cat
    ]


def _assert_stats_equal(mine: dict[str, float | None], ev: COCOeval) -> None:
    for name, ref in zip(STAT_NAMES, ev.stats):
        if ref < 0:
            assert mine[name] is None, name
        else:
            assert mine[name] == pytest.approx(float(ref), abs=1e-9), name


# --------------------------------------------------------------------------- parity
def test_eval_equals_cocoeval_run_directly(tmp_path: Path) -> None:
    pred = _predictions()
    result = evaluate(GT_PATH, _write(tmp_path / "coco.json", pred))
    results = _by_hand(pred)
    for iou_type in ("bbox", "segm"):
        ev = _direct(results, iou_type)
        _assert_stats_equal(result.stats[iou_type], ev)
        assert 0.3 < ev.stats[0] < 0.95  # not a trivial case: misses, shifts, false positives
        for k, cls in enumerate(result.classes):
            p = ev.eval["precision"][:, :, k, 0, -1]
            assert cls.ap[iou_type]["AP"] == pytest.approx(float(p[p > -1].mean()), abs=1e-9)
            assert cls.ap[iou_type]["AP50"] == pytest.approx(float(p[0][p[0] > -1].mean()), abs=1e-9)
            assert cls.ap[iou_type]["AP75"] == pytest.approx(float(p[5][p[5] > -1].mean()), abs=1e-9)
    assert [c.name for c in result.classes] == ["cube", "sphere", "cylinder"]
    assert [c.instances for c in result.classes] == [7, 5, 13]
    assert result.detections == len(results) == 27
    assert result.categories.mapping == {11: 1, 12: 2, 13: 3}


def test_results_list_in_ground_truth_ids_is_evaluated_as_is(tmp_path: Path) -> None:
    results = _by_hand(_predictions())
    result = evaluate(GT_PATH, _write(tmp_path / "coco-results.json", results))
    for iou_type in ("bbox", "segm"):
        _assert_stats_equal(result.stats[iou_type], _direct(results, iou_type))
    assert result.categories.by == "id"
    assert any("matched by id" in note for note in result.notes)


def test_polygon_predictions_are_evaluated(tmp_path: Path) -> None:
    """Polygons (e.g. a coco.json written with --save polygons) go in as RLE of the same pixels."""
    from segcli.outputs.formats import mask_rings

    pred = _predictions()
    for a in pred["annotations"]:
        mask = rle_decode(a["segmentation"])
        a["segmentation"] = [[float(v) for v in ring.reshape(-1)] for ring in mask_rings(mask)]
    rle = evaluate(GT_PATH, _write(tmp_path / "rle.json", _predictions()))
    poly = evaluate(GT_PATH, _write(tmp_path / "poly.json", pred))
    assert poly.stats["segm"] == rle.stats["segm"]


# --------------------------------------------------------------------------- matching
def test_image_ids_of_the_predictions_do_not_matter(tmp_path: Path) -> None:
    """The issue's trap: segcli numbers images in its own order; matching goes by file name."""
    pred = _predictions()
    shuffled = json.loads(json.dumps(pred))
    remap = {img["id"]: 1000 - img["id"] for img in shuffled["images"]}
    for img in shuffled["images"]:
        img["id"] = remap[img["id"]]
    for a in shuffled["annotations"]:
        a["image_id"] = remap[a["image_id"]]
    a = evaluate(GT_PATH, _write(tmp_path / "a.json", pred))
    b = evaluate(GT_PATH, _write(tmp_path / "b.json", shuffled))
    assert a.stats == b.stats and a.stats["segm"]["AP"] > 0.3


def test_results_list_with_foreign_image_ids_is_one_clear_error(tmp_path: Path) -> None:
    results = [dict(r, image_id=r["image_id"] + 50) for r in _by_hand(_predictions())]
    with pytest.raises(SegcliError, match=r"image id\(s\) are not in the ground truth.*'51'"):
        evaluate(GT_PATH, _write(tmp_path / "r.json", results))


def test_match_images_by_path_then_basename() -> None:
    gt_images = [
        {"id": 1, "file_name": "val/a.png"},
        {"id": 2, "file_name": "train/a.png"},
        {"id": 3, "file_name": "val/b.png"},
    ]
    assert match_images(gt_images, ["./val/a.png", "train\\a.png", "other/b.png"]) == {
        "./val/a.png": 1,
        "train\\a.png": 2,
        "other/b.png": 3,
    }
    with pytest.raises(SegcliError, match=r"'a.png' is ambiguous.*'val/a.png', 'train/a.png'"):
        match_images(gt_images, ["a.png"])
    with pytest.raises(SegcliError, match=r"1 predictions image\(s\) are not in the ground truth: 'c.png'"):
        match_images(gt_images, ["val/a.png", "c.png"])
    with pytest.raises(SegcliError, match=r"'val/b.png' and 'x/b.png' both match"):
        match_images(gt_images, ["val/b.png", "x/b.png"])
    with pytest.raises(SegcliError, match=r"lists file_name 'a.png' twice"):
        match_images([{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "./a.png"}], [])


def test_prediction_image_renamed_away_from_the_ground_truth(tmp_path: Path) -> None:
    """Renaming a prediction image leaves its ground-truth image without predictions: an error."""
    pred = _predictions()
    pred["images"][0]["file_name"] = "not-in-gt.png"
    with pytest.raises(SegcliError, match=r"1 ground-truth image\(s\) are not in predictions"):
        evaluate(GT_PATH, _write(tmp_path / "p.json", pred))


@pytest.mark.parametrize("extra", [["other.png"], ["sub/x.jpg", "y.png", "z.tif"]])
def test_extra_prediction_images_are_left_out_with_one_warning(tmp_path: Path, extra: list[str]) -> None:
    """Predictions for images the ground truth does not have (a batch over a bigger folder) are
    left out with one warning naming them; the AP is exactly the AP without them."""
    pred = _predictions()
    reference = evaluate(GT_PATH, _write(tmp_path / "ref.json", pred))
    template = dict(pred["annotations"][0])
    for k, name in enumerate(extra):
        image_id = 900 + k
        pred["images"].append({"id": image_id, "file_name": name, "width": 64, "height": 48})
        pred["annotations"].append(dict(template, id=9000 + k, image_id=image_id))
    got = evaluate(GT_PATH, _write(tmp_path / "p.json", pred))
    assert got.stats == reference.stats
    [warning] = [w for w in got.warnings if "left out" in w and "prediction image" in w]
    assert warning.startswith(
        f"{len(extra)} prediction image(s) are not in the ground truth and were left out"
    )
    assert all(repr(name) in warning for name in extra)
    assert not any("prediction image" in w for w in reference.warnings)


def test_match_images_collects_unmatched_names_when_asked() -> None:
    gt_images = [{"id": 1, "file_name": "a.png"}]
    unmatched: list[str] = []
    assert match_images(gt_images, ["a.png", "b.png", "c/d.png"], unmatched=unmatched) == {"a.png": 1}
    assert unmatched == ["b.png", "c/d.png"]


def test_ground_truth_image_missing_from_predictions(tmp_path: Path) -> None:
    pred = _predictions()
    gone = pred["images"].pop()
    pred["annotations"] = [a for a in pred["annotations"] if a["image_id"] != gone["id"]]
    with pytest.raises(
        SegcliError, match=rf"1 ground-truth image\(s\) are not in predictions .*'{gone['file_name']}'"
    ):
        evaluate(GT_PATH, _write(tmp_path / "p.json", pred))


def test_category_names_that_do_not_match_are_listed(tmp_path: Path) -> None:
    pred = _predictions()
    for c in pred["categories"]:
        if c["name"] == "cube":
            c["name"] = "box"
        if c["name"] == "sphere":
            c["name"] = "Sphere"  # case does not matter
    result = evaluate(GT_PATH, _write(tmp_path / "p.json", pred))
    boxes = sum(a["category_id"] == 11 for a in pred["annotations"])
    assert boxes == 7
    assert result.categories.mapping == {12: 2, 13: 3}
    assert result.categories.unmatched_predicted == ("box (7 detections)",)
    assert result.categories.unmatched_ground_truth == ("cube",)
    cube = next(c for c in result.classes if c.name == "cube")
    assert cube.detections == 0 and cube.ap["segm"]["AP"] == 0.0
    text = " ".join(result.warnings)
    assert "box (7 detections)" in text and "AP 0): cube" in text
    # --match-by id ignores the names: here the ids are the model's own, so nothing matches.
    by_id = evaluate(GT_PATH, tmp_path / "p.json", match_by="id")
    assert by_id.categories.mapping == {} and by_id.detections == 0
    with pytest.raises(SegcliError, match="--match-by 'label'"):
        evaluate(GT_PATH, tmp_path / "p.json", match_by="label")


def test_empty_predictions_score_zero(tmp_path: Path) -> None:
    pred = _predictions()
    pred["annotations"] = []
    result = evaluate(GT_PATH, _write(tmp_path / "p.json", pred))
    gt = COCO(str(GT_PATH))
    empty = COCO()
    empty.dataset = {
        "images": gt.dataset["images"],
        "categories": gt.dataset["categories"],
        "annotations": [],
    }
    empty.createIndex()
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(gt, empty, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        _assert_stats_equal(result.stats[iou_type], ev)
        assert result.stats[iou_type]["AP"] == 0.0
    assert all(c.ap["segm"]["AP"] == 0.0 for c in result.classes)
    assert any("no predictions" in w for w in result.warnings)


def test_bad_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SegcliError, match=r"ground truth .*nope.json does not exist"):
        evaluate(tmp_path / "nope.json", GT_PATH)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SegcliError, match=r"bad.json is not valid JSON"):
        evaluate(GT_PATH, tmp_path / "bad.json")
    with pytest.raises(SegcliError, match="no 'annotations' list"):
        evaluate(_write(tmp_path / "gt.json", {"images": []}), GT_PATH)
    with pytest.raises(SegcliError, match="annotations without a score: is it a ground-truth file"):
        evaluate(GT_PATH, GT_PATH)
    with pytest.raises(SegcliError, match=r"r.json: \[0\]: it has no 'score'"):
        evaluate(
            GT_PATH, _write(tmp_path / "r.json", [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])
        )
    with pytest.raises(SegcliError, match=r"neither a COCO file .* nor a COCO results list"):
        evaluate(GT_PATH, _write(tmp_path / "s.json", {"annotations": []}))


# --------------------------------------------------------------------------- warnings
def test_score_threshold_above_coco_convention_warns(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    data = _predictions()
    data["annotations"][0]["score"] = 0.02
    pred = _write(run / "coco.json", data)
    _write(run / "run.json", {"settings": {"score_threshold": 0.5}})
    result = evaluate(GT_PATH, pred)
    assert result.score_threshold == 0.5
    assert any("--score-threshold 0.5" in w and "0.05" in w for w in result.warnings)
    _write(run / "run.json", {"settings": {"score_threshold": 0.05}})
    assert not any("score" in w for w in evaluate(GT_PATH, pred).warnings)
    (run / "run.json").unlink()
    # Unknown threshold: the lowest score decides (0.02 here: no cut above 0.05).
    low = evaluate(GT_PATH, pred)
    assert low.score_threshold is None and not any("score" in w for w in low.warnings)
    high = _predictions()
    for a in high["annotations"]:
        a["score"] = max(a["score"], 0.6)
    assert any(
        "lowest prediction score is 0.600" in w
        for w in evaluate(GT_PATH, _write(run / "h.json", high)).warnings
    )
    assert any("0.7" in w for w in evaluate(GT_PATH, pred, score_threshold=0.7).warnings)


# --------------------------------------------------------------------------- outputs
def test_eval_json_holds_every_printed_number_and_plots_exist(tmp_path: Path) -> None:
    result = evaluate(GT_PATH, _write(tmp_path / "p.json", _predictions()))
    eval_path, plots = write_eval(result, tmp_path / "out")
    record = json.loads(eval_path.read_text())
    assert record["schema"] == "segcli.eval/1"
    assert record["ground_truth"] == str(GT_PATH) and record["images"] == 5
    assert record["detections"] == result.detections == 27
    for iou_type in ("bbox", "segm"):
        for name in TABLE_STATS:
            assert record[iou_type][name] == result.stats[iou_type][name]
    assert [c["name"] for c in record["per_class"]] == ["cube", "sphere", "cylinder"]
    for row, cls in zip(record["per_class"], result.classes):
        assert row["segm"] == cls.ap["segm"] and row["bbox"] == cls.ap["bbox"]
        png = tmp_path / "out" / row["pr_curve"]
        assert png.is_file()
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size == (800, 374)
            pixels = np.asarray(im.convert("RGB"))
        assert (pixels != 255).any(axis=2).mean() > 0.02  # something is drawn
    assert len(plots) == 3
    assert record["categories"]["unmatched_predicted"] == []
    assert record["categories"]["unmatched_ground_truth"] == []


def test_pr_plot_file_names_are_safe(tmp_path: Path) -> None:
    from segcli.evaluation.evaluate import curve_file_name

    assert curve_file_name(7, "traffic light") == "pr/007-traffic_light.png"
    assert curve_file_name(12, "../../etc/passwd") == "pr/012-etc_passwd.png"
    assert curve_file_name(3, "***") == "pr/003-class.png"


def test_images_in_subfolders_match_by_relative_path(tmp_path: Path) -> None:
    gt = _gt()
    for img in gt["images"]:
        img["file_name"] = f"scenes/{img['file_name']}"
    gt_path = _write(tmp_path / "gt.json", gt)
    pred = _predictions()
    a = evaluate(gt_path, _write(tmp_path / "p.json", pred))  # bare names: by basename
    for img in pred["images"]:
        img["file_name"] = f"scenes/{img['file_name']}"
    b = evaluate(gt_path, _write(tmp_path / "q.json", pred))  # by relative path
    assert a.stats == b.stats
