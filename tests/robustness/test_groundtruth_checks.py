"""Ground truth and predictions with absurd or malformed numbers: every one is caught before
pycocotools sees it, as one line naming the file and the entry; silently wrong inputs are
errors, never quiet wrong AP."""

from __future__ import annotations

import copy
import json
import math
import os
import resource
import select
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segcli.core.errors import SegcliError
from segcli.core.masks import rle_problem, rle_string_counts
from segcli.evaluation.evaluate import evaluate
from tests.conftest import REPO

GT_PATH = REPO / "examples" / "blocks" / "ground-truth.json"
W, H = 512, 384  # every example image's size


def _gt() -> dict[str, Any]:
    return json.loads(GT_PATH.read_text())


def _polygon_gt() -> dict[str, Any]:
    """The example ground truth with a polygon annotation in front (the one the attacks hit)."""
    gt = _gt()
    gt["annotations"][0]["segmentation"] = [[140.0, 83.0, 291.0, 83.0, 291.0, 264.0, 140.0, 264.0]]
    return gt


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes (and reads) them
    return path


def _results() -> list[dict[str, Any]]:
    """A COCO results list in the ground truth's ids: each annotation found exactly."""
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
            "segmentation": a["segmentation"],
        }
        for a in _gt()["annotations"]
    ]


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


def _drop(path: tuple[Any, ...]) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]

    return change


def _zigzag(data: dict[str, Any]) -> None:
    """An outline of 5000 edges across the whole image: legal numbers, 2.5 M px of outline."""
    poly: list[float] = []
    for i in range(5000):
        poly += [float(i % 2) * W, float(i % H)]
    data["annotations"][0]["segmentation"] = [poly]


def _duplicate(kind: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[kind][1]["id"] = data[kind][0]["id"]

    return change


ANN = ("annotations", 0)  # a polygon
RLE = ("annotations", 1)  # a compressed RLE
GROUND_TRUTH_ATTACKS: dict[str, tuple[Callable[[Any], None], str, str]] = {
    # name: (change, the entry named, what is said)
    "NaN polygon coordinate": (
        _set((*ANN, "segmentation", 0, 3), math.nan),
        "annotations[0] (id 1)",
        "polygon 0",
    ),
    "1e12 polygon coordinate": (
        _set((*ANN, "segmentation", 0, 2), 1e12),
        "annotations[0] (id 1)",
        "far outside",
    ),
    "infinite polygon coordinate": (
        _set((*ANN, "segmentation", 0, 0), -math.inf),
        "annotations[0]",
        "finite",
    ),
    "outline too long": (_zigzag, "annotations[0] (id 1)", "outline is over"),
    "2-point polygon": (
        _set((*ANN, "segmentation"), [[1.0, 2.0, 30.0, 40.0]]),
        "annotations[0]",
        "at least 3",
    ),
    "odd coordinate count": (
        _set((*ANN, "segmentation"), [[1, 2, 3, 4, 5, 6, 7]]),
        "annotations[0]",
        "x, y pairs",
    ),
    "empty segmentation": (_set((*ANN, "segmentation"), []), "annotations[0]", "segmentation is empty"),
    "nested polygons": (
        _set((*ANN, "segmentation"), [[[1, 2], [3, 4], [5, 6]]]),
        "annotations[0]",
        "flat list",
    ),
    "deep nesting": (_set((*ANN, "segmentation"), [[[[[[[1.0]]]]]]]), "annotations[0]", "flat list"),
    "string segmentation": (_set((*ANN, "segmentation"), "polygon"), "annotations[0]", "neither polygons"),
    "string coordinates": (
        _set((*ANN, "segmentation"), [["1", "2", "3", "4", "5", "6"]]),
        "annotations[0]",
        "finite",
    ),
    "RLE of another size": (
        _set((*RLE, "segmentation", "size"), [H, W + 1]),
        "annotations[1] (id 2)",
        "RLE of size",
    ),
    "RLE counts of the wrong total": (
        _set((*RLE, "segmentation"), {"size": [H, W], "counts": [10, 20]}),
        "annotations[1] (id 2)",
        "cover 30 pixels",
    ),
    "corrupt compressed RLE": (
        _set((*RLE, "segmentation", "counts"), "gibberish~~"),
        "annotations[1] (id 2)",
        "corrupt",
    ),
    "RLE without counts": (
        _drop((*RLE, "segmentation", "counts")),
        "annotations[1] (id 2)",
        "'size' and 'counts'",
    ),
    "NaN bbox": (_set((*ANN, "bbox", 2), math.nan), "annotations[0]", "bbox"),
    "1e12 bbox": (_set((*ANN, "bbox", 0), 1e12), "annotations[0]", "far outside"),
    "3-number bbox": (_set((*ANN, "bbox"), [1, 2, 3]), "annotations[0]", "four finite numbers"),
    "negative box size": (_set((*ANN, "bbox", 3), -5), "annotations[0]", "negative"),
    "missing bbox": (_drop((*ANN, "bbox")), "annotations[0]", "no 'bbox'"),
    "missing area": (_drop((*ANN, "area")), "annotations[0]", "no 'area'"),
    "NaN area": (_set((*ANN, "area"), math.nan), "annotations[0]", "area nan"),
    "missing image_id": (_drop((*ANN, "image_id")), "annotations[0]", "no 'image_id'"),
    "string category_id": (_set((*ANN, "category_id"), "1"), "annotations[0]", "not an integer"),
    "boolean id": (_set((*ANN, "id"), True), "annotations[0]", "not an integer"),
    "float id": (_set((*ANN, "id"), 1.5), "annotations[0]", "not an integer"),
    "iscrowd 2": (_set((*ANN, "iscrowd"), 2), "annotations[0]", "iscrowd"),
    "unknown image_id": (_set((*ANN, "image_id"), 999), "annotations[0]", "image_id 999 is not an image"),
    "unknown category_id": (_set((*ANN, "category_id"), 77), "annotations[0]", "category_id 77 is not"),
    "duplicate annotation id": (_duplicate("annotations"), "annotations[1] (id 1)", "used twice"),
    "duplicate category id": (_duplicate("categories"), "categories[1] (id 1)", "used twice"),
    "duplicate image id": (_duplicate("images"), "images[1] (id 1)", "used twice"),
    "annotation not an object": (_set(("annotations", 2), [1, 2]), "annotations[2]", "not an object"),
    "zero width": (_set(("images", 0, "width"), 0), "images[0] (id 1)", "no pixels"),
    "string height": (_set(("images", 0, "height"), "384"), "images[0] (id 1)", "not an integer"),
    "missing width": (_drop(("images", 0, "width")), "images[0] (id 1)", "no 'width'"),
    "absurd size": (_set(("images", 0, "width"), 10**9), "images[0] (id 1)", "pixels"),
    "category without a name": (_drop(("categories", 0, "name")), "categories[0] (id 1)", "'name'"),
}


@pytest.mark.parametrize("attack", sorted(GROUND_TRUTH_ATTACKS))
def test_bad_ground_truth_is_one_line_naming_file_and_entry(tmp_path: Path, attack: str) -> None:
    change, entry, said = GROUND_TRUTH_ATTACKS[attack]
    gt = _polygon_gt()
    change(gt)
    path = _write(tmp_path / "labels.json", gt)
    with pytest.raises(SegcliError) as caught:
        evaluate(path, _write(tmp_path / "r.json", _results()))
    message = str(caught.value)
    assert message.startswith(f"ground truth {path}: {entry}"), message
    assert said in message and "\n" not in message, message


def test_a_deeply_nested_file_is_one_line(tmp_path: Path) -> None:
    for depth in (2000, 200_000):
        path = tmp_path / f"deep{depth}.json"
        path.write_text("[" * depth + "]" * depth)
        for args in ((path, GT_PATH), (GT_PATH, path)):
            with pytest.raises(SegcliError, match=r"nested too deeply|is not a COCO file|neither a COCO"):
                evaluate(*args)


PREDICTION_ATTACKS: dict[str, tuple[Callable[[Any], None], str]] = {
    "NaN score": (_set((0, "score"), math.nan), "score nan"),
    "infinite score": (_set((0, "score"), math.inf), "score inf"),
    "string score": (_set((0, "score"), "0.9"), "not a finite number"),
    "missing score": (_drop((0, "score")), "no 'score'"),
    "NaN bbox": (_set((0, "bbox", 0), math.nan), "bbox"),
    "1e12 bbox": (_set((0, "bbox", 2), 1e12), "far outside"),
    "NaN polygon": (_set((0, "segmentation"), [[1.0, 2.0, math.nan, 4.0, 5.0, 6.0]]), "polygon 0"),
    "1e12 polygon": (_set((0, "segmentation"), [[1.0, 2.0, 1e12, 4.0, 5.0, 600.0]]), "far outside"),
    "RLE of another size": (_set((0, "segmentation", "size"), [H + 1, W]), "RLE of size"),
    "corrupt RLE": (_set((0, "segmentation", "counts"), "\x7f\x7f"), "corrupt"),
    "float category_id": (_set((0, "category_id"), 1.0), "not an integer"),
    "entry not an object": (_set((0,), "x"), "not an object"),
}


@pytest.mark.parametrize("attack", sorted(PREDICTION_ATTACKS))
def test_bad_results_list_is_one_line_naming_the_entry(tmp_path: Path, attack: str) -> None:
    change, said = PREDICTION_ATTACKS[attack]
    results = _results()
    change(results)
    path = _write(tmp_path / "r.json", results)
    with pytest.raises(SegcliError) as caught:
        evaluate(GT_PATH, path)
    message = str(caught.value)
    assert message.startswith(f"predictions {path}: [0]"), message
    assert said in message and "\n" not in message, message


def _coco_predictions() -> dict[str, Any]:
    gt = _gt()
    anns = [dict(a, score=0.9) for a in gt["annotations"]]
    return {"images": gt["images"], "annotations": anns, "categories": gt["categories"]}


@pytest.mark.parametrize(
    ("change", "entry", "said"),
    [
        (_set(("annotations", 0, "score"), math.nan), "annotations[0] (id 1)", "score nan"),
        (_set(("annotations", 0, "image_id"), 99), "annotations[0] (id 1)", "not an image listed"),
        (_set(("annotations", 0, "segmentation", "size"), [1, 1]), "annotations[0]", "RLE of size"),
        (_duplicate("images"), "images[1] (id 1)", "used twice"),
        (_duplicate("categories"), "categories[1] (id 1)", "used twice"),
        (_set(("images", 0, "id"), "1"), "images[0]", "not an integer"),
    ],
)
def test_bad_coco_predictions_are_one_line(
    tmp_path: Path, change: Callable[[Any], None], entry: str, said: str
) -> None:
    data = _coco_predictions()
    change(data)
    path = _write(tmp_path / "coco.json", data)
    with pytest.raises(SegcliError) as caught:
        evaluate(GT_PATH, path)
    message = str(caught.value)
    assert message.startswith(f"predictions {path}: {entry}") and said in message, message


def test_what_is_legal_still_evaluates(tmp_path: Path) -> None:
    """Real labels stray a little outside the image, crowds come as uncompressed RLE, some
    tools leave iscrowd out, and an empty prediction mask is an empty polygon list."""
    gt = _polygon_gt()
    gt["annotations"][0]["segmentation"] = [[-0.5, -0.5, 60.0, -0.5, 60.0, 40.0, -0.5, 40.0]]
    gt["annotations"][0]["bbox"] = [-0.5, -0.5, 60.5, 40.5]
    crowd = np.zeros((H, W), np.uint8)
    crowd[200:260, 300:400] = 1
    flat = crowd.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    gt["annotations"][1].update(segmentation={"size": [H, W], "counts": counts}, iscrowd=1)
    del gt["annotations"][2]["iscrowd"]
    results = _results()
    results[0]["segmentation"] = []
    result = evaluate(_write(tmp_path / "gt.json", gt), _write(tmp_path / "r.json", results))
    assert result.stats["segm"]["AP"] is not None and result.stats["bbox"]["AP"] is not None


def test_ground_truth_without_masks_gives_box_ap_and_says_so(tmp_path: Path) -> None:
    gt = _gt()
    for a in gt["annotations"]:
        del a["segmentation"]
    result = evaluate(_write(tmp_path / "gt.json", gt), _write(tmp_path / "r.json", _results()))
    assert list(result.stats) == ["bbox"] and result.stats["bbox"]["AP"] == pytest.approx(1.0)
    assert any("only boxes are evaluated" in n for n in result.notes)


def test_rle_strings_are_decoded_exactly_as_pycocotools_does() -> None:
    rng = np.random.default_rng(7)
    for k in range(200):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        mask = (rng.random((h, w)) < (k % 7) / 6).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(mask))
        runs = rle_string_counts(rle["counts"])
        back = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
        assert np.array_equal(back, mask.flatten(order="F"))
        assert rle_problem({"size": [h, w], "counts": rle["counts"].decode()}, h, w) is None
    for bad in ("", "0", "\x7f", "a" * 20, "?" * 3):
        problem = rle_problem({"size": [4, 4], "counts": bad}, 4, 4)
        assert problem is not None, bad


def _capped(probe: Callable[[], str], limit: int) -> str:
    """``probe()`` in a forked child whose address space is capped ``limit`` bytes above its
    own: an allocation without bound fails there, not on the machine."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            try:
                vm = next(
                    int(line.split()[1]) * 1024
                    for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmSize:")
                )
                resource.setrlimit(resource.RLIMIT_AS, (vm + limit, vm + limit))
                reply = probe()
            except BaseException as exc:
                reply = f"{type(exc).__name__}: {exc}"
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(reply)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            if not select.select([pipe], [], [], 120)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the child ran past 120 s")
            text = pipe.read()
    finally:
        _, status = os.waitpid(pid, 0)
    assert text, f"the child died (wait status {status})"
    return text


def test_the_attacks_of_the_issue_stop_in_bounded_memory(tmp_path: Path) -> None:
    """The inputs that made pycocotools allocate 23 GB (or crash): one line, under a 1 GB cap."""
    gt = _polygon_gt()
    gt["annotations"][0]["segmentation"][0][2] = 1e12
    bad_gt = _write(tmp_path / "gt-1e12.json", gt)
    nan_gt = copy.deepcopy(_polygon_gt())
    nan_gt["annotations"][0]["segmentation"][0][3] = math.nan
    nan_path = _write(tmp_path / "gt-nan.json", nan_gt)
    results = _results()
    results[0]["segmentation"] = [[1.0, 2.0, 1e12, 4.0, 5.0, 1e12]]
    bad_results = _write(tmp_path / "r-1e12.json", results)
    good_results = _write(tmp_path / "r.json", _results())

    def probe() -> str:
        lines = []
        for args in ((bad_gt, good_results), (nan_path, good_results), (GT_PATH, bad_results)):
            try:
                evaluate(*args)
                lines.append("evaluated")
            except SegcliError as exc:
                lines.append(str(exc))
        return "\n".join(lines)

    lines = _capped(probe, 1 << 30).splitlines()
    assert len(lines) == 3 and all("far outside" in line or "polygon 0" in line for line in lines), lines
