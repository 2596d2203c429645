"""Polygons and exchange formats: COCO polygons and results, YOLO-seg, LabelMe, coco.json categories."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.core.errors import UsageError
from segcli.core.instances import Instances
from segcli.core.masks import rle_decode
from segcli.outputs.formats import (
    LABELME_VERSION,
    coco_polygons,
    coco_results,
    labelme_record,
    mask_rings,
    results_from_record,
    yolo_class_index,
    yolo_data_yaml,
    yolo_lines,
)
from segcli.outputs.records import instances_record
from segcli.outputs.writers import write_coco
from tests.conftest import REPO

GT_PATH = REPO / "examples" / "blocks" / "ground-truth.json"
BLOCKS = ("__background__", "cube", "sphere", "cylinder")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _holed_mask() -> np.ndarray:
    """Two holes (one holding an island), a one-pixel speck and a one-pixel-wide line."""
    m = np.zeros((60, 80), dtype=bool)
    m[5:50, 5:70] = True
    m[15:30, 15:30] = False  # hole ...
    m[20:25, 20:25] = True  # ... with an island in it
    m[35:45, 40:60] = False  # second hole
    m[55, 75] = True  # speck
    m[52:58, 2] = True  # line
    return m


def _gt_instances() -> list[tuple[dict, Instances]]:
    """Each ground-truth image of the blocks examples as (image entry, Instances of its GT masks)."""
    gt = json.loads(GT_PATH.read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    out = []
    for img in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        inst = Instances.from_full_masks(
            [rle_decode(a["segmentation"]) for a in anns],
            scores=[0.9 - 0.01 * k for k in range(len(anns))],
            class_ids=[a["category_id"] for a in anns],
            class_names=[names[a["category_id"]] for a in anns],
        )
        out.append((img, inst))
    return out


def _coco_raster(polygons: list[list[float]], h: int, w: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))).astype(bool)


# --------------------------------------------------------------------------- COCO polygons
def test_coco_polygons_round_trip_on_blocks_ground_truth() -> None:
    ious = []
    for _, inst in _gt_instances():
        h, w = inst.image_size
        for i in range(len(inst)):
            polygons = coco_polygons(inst, i)
            assert polygons and all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
            ious.append(_iou(_coco_raster(polygons, h, w), inst.full_mask(i)))
    assert len(ious) == 25
    assert min(ious) >= 0.95, ious
    # The quarter-pixel trace reproduces the masks exactly under pycocotools.
    assert min(ious) == 1.0


def test_coco_polygons_keep_holes_specks_and_lines() -> None:
    mask = _holed_mask()
    inst = Instances.from_full_masks([mask], scores=[0.9], class_ids=[1], class_names=["cube"])
    polygons = coco_polygons(inst, 0)
    assert len(polygons) == 4  # the holed body, the island, the speck, the line
    back = _coco_raster(polygons, *mask.shape)
    assert not back[17, 17] and not back[40, 50]  # holes stay holes
    assert back[22, 22] and back[55, 75] and back[54, 2]  # island, speck and line survive
    assert _iou(back, mask) >= 0.95
    assert np.array_equal(back, mask)


def test_mask_rings_of_an_offset_crop_are_in_image_coordinates() -> None:
    crop = np.ones((3, 4), dtype=bool)
    [ring] = mask_rings(crop, offset=(10, 20))
    assert ring[:, 0].min() == pytest.approx(10.25) and ring[:, 0].max() == pytest.approx(13.75)
    assert ring[:, 1].min() == pytest.approx(20.25) and ring[:, 1].max() == pytest.approx(22.75)
    assert mask_rings(np.zeros((3, 3), dtype=bool)) == []


# --------------------------------------------------------------------------- COCO results
def test_coco_results_load_with_loadres_and_score_like_the_masks(tmp_path: Path) -> None:
    gt = json.loads(GT_PATH.read_text())
    results = []
    for img, inst in _gt_instances():
        got = coco_results(inst, img["id"], {1: 1, 2: 2, 3: 3})
        assert isinstance(got, list) and len(got) == len(inst)  # COCO's results format: a list, one per mask
        results += got
    path = tmp_path / "coco-results.json"
    path.write_text(json.dumps(results))
    coco = COCO(str(GT_PATH))
    dt = coco.loadRes(str(path))  # the file as is, by its path
    assert len(dt.getAnnIds()) == len(gt["annotations"])
    first = results[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    assert len(first["bbox"]) == 4 and isinstance(first["segmentation"]["counts"], str)
    ev = COCOeval(coco, dt, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # the ground-truth masks score perfectly


def test_coco_results_map_categories_and_drop_unmapped() -> None:
    [(_, inst), *_] = _gt_instances()
    assert len(inst) == 2 and set(inst.class_ids.tolist()) == {1}
    assert coco_results(inst, 7, {2: 5}) == []
    mapped = coco_results(inst, 7, {1: 42})
    assert [r["category_id"] for r in mapped] == [42, 42] and {r["image_id"] for r in mapped} == {7}
    unmapped = coco_results(inst, 7)
    assert [r["category_id"] for r in unmapped] == [1, 1]
    polys = coco_results(inst, 7, polygons=True)
    assert isinstance(polys[0]["segmentation"], list) and len(polys[0]["segmentation"][0]) >= 6


def test_results_from_record_equal_results_from_instances() -> None:
    [(img, inst), *_] = _gt_instances()
    record = instances_record(inst, image_path=img["file_name"], model={}, settings={})
    record = json.loads(json.dumps(record))  # as read back from disk
    assert results_from_record(record, 3, {1: 9}) == coco_results(inst, 3, {1: 9})


# --------------------------------------------------------------------------- YOLO-seg
def test_yolo_lines_follow_the_format_and_round_trip() -> None:
    index = yolo_class_index(BLOCKS, {"__background__"})
    assert index == {1: 0, 2: 1, 3: 2}
    for _, inst in _gt_instances():
        h, w = inst.image_size
        lines = yolo_lines(inst, index)
        assert len(lines) == len(inst)
        for i, line in enumerate(lines):
            assert line == line.strip() and "\n" not in line
            fields = line.split(" ")
            assert fields[0] == str(index[int(inst.class_ids[i])])  # a bare class index
            coords = [float(v) for v in fields[1:]]
            assert len(coords) >= 6 and len(coords) % 2 == 0  # x y pairs, three points at least
            assert all(0.0 <= v <= 1.0 for v in coords)  # normalised by width and height
            # Ultralytics' polygon2mask: denormalise, int32, cv2.fillPoly.
            pts = np.asarray(coords).reshape(-1, 2) * [w, h]
            back = np.zeros((h, w), np.uint8)
            cv2.fillPoly(back, [np.round(pts).astype(np.int32)], 1)
            assert _iou(back.astype(bool), inst.full_mask(i)) >= 0.95


def test_yolo_joins_parts_and_holes_into_one_polygon() -> None:
    mask = _holed_mask()
    inst = Instances.from_full_masks([mask], scores=[0.9], class_ids=[1], class_names=["cube"])
    [line] = yolo_lines(inst, {1: 0})
    pts = np.asarray([float(v) for v in line.split()[1:]]).reshape(-1, 2) * [80, 60]
    back = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(back, [np.round(pts).astype(np.int32)], 1)
    back = back.astype(bool)
    assert not back[17, 17] and not back[40, 50] and back[22, 22] and back[55, 75]
    assert _iou(back, mask) >= 0.95
    assert yolo_lines(inst, {2: 0}) == []  # unmapped classes are left out


def test_yolo_data_yaml_is_an_ultralytics_dataset_file() -> None:
    names = ["cube", "sphere", 'odd: "name" #1']
    data = yaml.safe_load(yolo_data_yaml(names, path="/data/set", train="images", val="images"))
    assert data["path"] == "/data/set" and data["train"] == "images" and data["val"] == "images"
    assert data["names"] == {0: "cube", 1: "sphere", 2: 'odd: "name" #1'}
    assert data["nc"] == 3


# --------------------------------------------------------------------------- LabelMe
def _labelme_raster(shapes: list[dict], h: int, w: int) -> np.ndarray:
    """LabelMe's own ``shape_to_mask`` for polygons: Pillow, outline and fill."""
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        draw.polygon([tuple(p) for p in shape["points"]], outline=1, fill=1)
    return np.asarray(image).astype(bool)


def test_labelme_record_follows_the_format_and_round_trips() -> None:
    for img, inst in _gt_instances():
        record = labelme_record(inst, img["file_name"])
        record = json.loads(json.dumps(record))
        assert set(record) == {
            "version",
            "flags",
            "shapes",
            "imagePath",
            "imageData",
            "imageHeight",
            "imageWidth",
        }
        assert record["version"] == LABELME_VERSION and record["flags"] == {}
        assert record["imagePath"] == img["file_name"] and record["imageData"] is None
        assert (record["imageHeight"], record["imageWidth"]) == (img["height"], img["width"])
        for shape in record["shapes"]:
            assert set(shape) >= {"label", "points", "group_id", "shape_type", "flags"}
            assert shape["shape_type"] == "polygon" and shape["flags"] == {}
            assert isinstance(shape["label"], str) and isinstance(shape["group_id"], int)
            assert len(shape["points"]) >= 3
            assert all(len(p) == 2 and all(isinstance(v, float) for v in p) for p in shape["points"])
        h, w = inst.image_size
        for i in range(len(inst)):
            mine = [s for s in record["shapes"] if s["group_id"] == i]
            assert mine and all(s["label"] == inst.class_names[i] for s in mine)
            assert _iou(_labelme_raster(mine, h, w), inst.full_mask(i)) >= 0.95


def test_labelme_one_shape_per_part_holes_kept() -> None:
    mask = _holed_mask()
    inst = Instances.from_full_masks([mask], scores=[0.9], class_ids=[1], class_names=["cube"])
    record = labelme_record(inst, "x.png")
    assert len(record["shapes"]) == 4 and {s["group_id"] for s in record["shapes"]} == {0}
    back = _labelme_raster(record["shapes"], *mask.shape)
    assert not back[17, 17] and not back[40, 50] and back[22, 22]
    assert _iou(back, mask) >= 0.95


# --------------------------------------------------------------------------- coco.json
def test_coco_json_lists_every_category_it_uses(tmp_path: Path) -> None:
    """A placeholder slot (COCO's "N/A") that appears in annotations is listed in categories."""
    categories = ("__background__", "person", "N/A", "car")
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 2:5] = True
    inst = Instances.from_full_masks(
        [mask, mask], scores=[0.9, 0.8], class_ids=[2, 3], class_names=["N/A", "car"]
    )
    record = instances_record(inst, image_path="a.png", model={}, settings={})
    json_path = tmp_path / "a.png.json"
    json_path.write_text(json.dumps(record))
    write_coco(tmp_path / "coco.json", [("a.png", json_path)], categories, {})
    coco = json.loads((tmp_path / "coco.json").read_text())
    listed = {c["id"]: c["name"] for c in coco["categories"]}
    assert {a["category_id"] for a in coco["annotations"]} <= set(listed)
    assert listed == {1: "person", 2: "N/A", 3: "car"}  # unused placeholders stay out
    COCO(str(tmp_path / "coco.json"))  # loads


# --------------------------------------------------------------------------- coco-results.json
def _run_records(tmp_path: Path) -> list[tuple[str, Path]]:
    """Per-image JSON records of the ground-truth masks, as a run over the blocks folder writes them."""
    entries = []
    for img, inst in reversed(_gt_instances()):  # another order than the ground truth's ids
        path = tmp_path / f"{img['file_name']}.json"
        record = instances_record(inst, image_path=img["file_name"], model={}, settings={})
        path.write_text(json.dumps(record))
        entries.append((img["file_name"], path))
    return entries


def test_coco_results_file_with_ground_truth_ids(tmp_path: Path) -> None:
    from segcli.datasets.groundtruth import load_ground_truth
    from segcli.outputs.exports import write_coco_results

    entries = _run_records(tmp_path)
    gt = load_ground_truth(GT_PATH)
    written = write_coco_results(tmp_path / "coco-results.json", entries, BLOCKS, gt)
    results = json.loads(written.path.read_text())
    assert isinstance(results, list) and written.results == len(results) == 25
    assert written.categories is not None and written.categories.mapping == {1: 1, 2: 2, 3: 3}
    assert written.categories.unmatched_predicted == () and written.categories.unmatched_ground_truth == ()
    coco = COCO(str(GT_PATH))
    dt = coco.loadRes(str(written.path))  # as is
    by_file = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
    for name, path in entries:
        n = len(json.loads(path.read_text())["instances"])
        assert len(dt.getAnnIds(imgIds=[by_file[name]])) == n
    ev = COCOeval(coco, dt, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_coco_results_file_without_ground_truth_numbers_like_coco_json(tmp_path: Path) -> None:
    from segcli.outputs.exports import write_coco_results

    entries = _run_records(tmp_path)
    written = write_coco_results(tmp_path / "coco-results.json", entries, BLOCKS)
    write_coco(tmp_path / "coco.json", entries, BLOCKS, {})
    coco = COCO(str(tmp_path / "coco.json"))
    results = json.loads(written.path.read_text())
    assert written.categories is None
    assert sorted((r["image_id"], r["category_id"], r["score"]) for r in results) == sorted(
        (a["image_id"], a["category_id"], a["score"]) for a in coco.dataset["annotations"]
    )
    coco.loadRes(str(written.path))


def test_coco_results_file_leaves_out_classes_the_ground_truth_lacks(tmp_path: Path) -> None:
    from segcli.datasets.groundtruth import load_ground_truth
    from segcli.outputs.exports import write_coco_results

    entries = _run_records(tmp_path)
    model_classes = ("__background__", "cube", "ball", "cylinder")  # "sphere" is "ball" here
    gt = load_ground_truth(GT_PATH)
    written = write_coco_results(tmp_path / "r.json", entries, model_classes, gt)
    assert written.categories is not None and written.categories.mapping == {1: 1, 3: 3}
    assert written.categories.unmatched_predicted == ("ball (5 detections)",)
    assert written.categories.unmatched_ground_truth == ("sphere",)
    assert written.results == 20 and {r["category_id"] for r in json.loads(written.path.read_text())} == {
        1,
        3,
    }


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("masks", ("masks",)),
        ("+masks", ("overlay", "json", "masks")),
        ("+masks,idmap", ("overlay", "json", "masks", "idmap")),
        ("+ masks, +idmap", ("overlay", "json", "masks", "idmap")),
        ("+json", ("overlay", "json")),
        ("+polygons", ("overlay", "json", "polygons")),
        ("polygons", ("polygons", "json")),
        ("OVERLAY,Json", ("overlay", "json")),
    ],
)
def test_save_replaces_the_default_or_adds_to_it_with_a_plus(text: str, kinds: tuple[str, ...]) -> None:
    from segcli.outputs.plans import parse_save

    assert parse_save(text) == kinds


def test_save_plus_adds_to_the_commands_own_default() -> None:
    from segcli.outputs.plans import parse_save

    assert parse_save("+masks", defaults=()) == ("masks",)  # predict --json - writes no files by default
    for bad, message in [
        ("+", "names no output"),
        ("+crop", "unknown output 'crop'"),
        ("", "names no output"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_save(bad)
