"""``segcli eval`` and the new ``--save`` kinds end to end, on examples/blocks with the bundled model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from segcli.cli import app
from segcli.evaluation.evaluate import STAT_NAMES
from tests.conftest import REPO

runner = CliRunner()
BLOCKS = REPO / "examples" / "blocks"
GT_PATH = BLOCKS / "ground-truth.json"
SMALL = ["--model", "blocks", "--device", "cpu", "--min-size", "128", "--max-size", "192"]
"""The bundled blocks model at a small input size: seconds for the five example scenes."""

pytestmark = pytest.mark.blocks


@pytest.fixture()
def scenes(tmp_path: Path) -> Path:
    """A copy of the blocks examples (images and ground truth)."""
    dst = tmp_path / "scenes"
    shutil.copytree(BLOCKS, dst)
    return dst


def _direct(gt_path: Path, results_path: Path, iou_type: str) -> np.ndarray:
    gt = COCO(str(gt_path))
    results = json.loads(results_path.read_text())
    keep = "bbox" if iou_type == "bbox" else "segmentation"
    dt = gt.loadRes([{k: r[k] for k in ("image_id", "category_id", "score", keep)} for r in results])
    ev = COCOeval(gt, dt, iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def _assert_equal(record: dict[str, Any], stats: np.ndarray) -> None:
    for name, ref in zip(STAT_NAMES, stats):
        assert (record[name] is None) if ref < 0 else record[name] == pytest.approx(float(ref), abs=1e-9)


def test_eval_runs_the_model_and_equals_cocoeval(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", str(scenes / "ground-truth.json"), "-o", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    for name in ("eval.json", "run.json", "coco.json", "coco-results.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "pr").glob("*.png"))) == 3
    record = json.loads((out / "eval.json").read_text())
    assert record["schema"] == "segcli.eval/1" and record["images"] == 5
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["score_threshold"] == 0.05  # eval's default, COCO's convention
    assert record["score_threshold"] == 0.05 and record["warnings"] == []
    # coco-results.json already uses the ground truth's ids: COCOeval on it, run directly.
    for iou_type in ("bbox", "segm"):
        _assert_equal(
            record[iou_type], _direct(scenes / "ground-truth.json", out / "coco-results.json", iou_type)
        )
    assert record["segm"]["AP50"] > 0.5  # the bundled model finds the blocks even at 128 px
    # The printed tables show the same numbers.
    assert f"{record['segm']['AP']:.3f}" in result.stdout and f"{record['bbox']['AP75']:.3f}" in result.stdout
    for row in record["per_class"]:
        assert row["name"] in result.stdout and f"{row['segm']['AP']:.3f}" in result.stdout

    # Resumable: a second run segments nothing and gives the same numbers.
    again = runner.invoke(app, ["eval", str(scenes / "ground-truth.json"), "-o", str(out), *SMALL, "-q"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "run.json").read_text())["counts"]["skipped"] == 5
    assert json.loads((out / "eval.json").read_text())["segm"] == record["segm"]

    # --predictions on the run's coco.json: same numbers, no model.
    other = tmp_path / "other"
    by_file = runner.invoke(
        app,
        [
            "eval",
            str(scenes / "ground-truth.json"),
            "--predictions",
            str(out / "coco.json"),
            "-o",
            str(other),
        ],
    )
    assert by_file.exit_code == 0, by_file.output
    assert json.loads((other / "eval.json").read_text())["segm"] == record["segm"]
    assert not (other / "run.json").exists()


def test_eval_usage_errors_come_before_any_model(
    scenes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes import use_fake_in_cli

    loaded = use_fake_in_cli(monkeypatch)
    gt = str(scenes / "ground-truth.json")
    out = tmp_path / "out"
    cases = [
        (["--predictions", gt, "--model", "blocks"], "--model: no model runs with --predictions"),
        (["--match-by", "label"], "--match-by 'label'"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["eval", gt, "-o", str(out), *extra])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.stderr.split())
    assert not (out / "run.json").exists() and loaded == []
    shown = runner.invoke(app, ["eval", "--help"])
    assert shown.exit_code == 0, shown.output
    help_text = " ".join(shown.stdout.replace("│", " ").split())  # no panel borders
    assert "Drop detections below this score [0.05, COCO's convention]" in help_text
    assert "--predictions" in help_text and "--match-by" in help_text


def test_eval_missing_image_is_one_line_before_the_model_loads(scenes: Path, tmp_path: Path) -> None:
    (scenes / "cluttered.png").unlink()
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", str(scenes / "ground-truth.json"), "-o", str(out), *SMALL])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    text = " ".join(result.stderr.split())
    assert "1 ground-truth image(s) are not in" in text and "'cluttered.png'" in text
    assert "model blocks" not in result.stderr and "Traceback" not in result.output
    assert len(lines) <= 2  # one message (soft-wrapped at most once)
    assert not (out / "run.json").exists()


def test_eval_lists_unmatched_categories_and_escapes_names(scenes: Path, tmp_path: Path) -> None:
    gt_path = scenes / "ground-truth.json"
    gt = json.loads(gt_path.read_text())
    gt["categories"][0]["name"] = "[bold]box[/bold]"  # was "cube"; markup must print literally
    gt_path.write_text(json.dumps(gt))
    out = tmp_path / "out"
    first = runner.invoke(app, ["eval", str(BLOCKS / "ground-truth.json"), "-o", str(out), *SMALL, "-q"])
    assert first.exit_code == 0, first.output
    result = runner.invoke(
        app, ["eval", str(gt_path), "--predictions", str(out / "coco.json"), "-o", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    assert "[bold]box[/bold]" in result.stdout  # escaped, not styled away
    text = " ".join(result.stderr.split())
    assert "prediction categories not in the ground truth (left out): cube (" in text
    assert "(AP 0): [bold]box[/bold]" in text
    record = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert record["categories"]["unmatched_ground_truth"] == ["[bold]box[/bold]"]
    assert (tmp_path / "e" / "pr" / "001-bold_box_bold.png").is_file()


def test_eval_warns_about_a_high_score_threshold(scenes: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "eval",
            str(scenes / "ground-truth.json"),
            "-o",
            str(tmp_path / "o"),
            *SMALL,
            "-q",
            "--score-threshold",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "--score-threshold 0.5" in " ".join(result.stderr.split())


def test_batch_writes_every_export_format(scenes: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for p in scenes.glob("*.png"):
        shutil.copy(p, images / ("sub" if p.name == "cluttered.png" else "") / p.name)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "batch", str(images), "-o", str(out), *SMALL, "-q",
            "--save", "polygons,yolo,labelme",
            "--coco-ids-from", str(scenes / "ground-truth.json"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["save"] == ["polygons", "yolo", "labelme", "json"]  # polygons live in the JSON
    # coco.json: polygons as segmentation, every category id listed; coco-results.json: GT ids.
    coco = json.loads((out / "coco.json").read_text())
    assert coco["annotations"] and all(isinstance(a["segmentation"], list) for a in coco["annotations"])
    assert {a["category_id"] for a in coco["annotations"]} <= {c["id"] for c in coco["categories"]}
    gt = COCO(str(scenes / "ground-truth.json"))
    dt = gt.loadRes(str(out / "coco-results.json"))
    assert len(dt.getAnnIds()) == len(coco["annotations"]) == run["counts"]["instances"]
    record = json.loads((out / "sub" / "cluttered.png.json").read_text())
    assert all(inst["polygons"] for inst in record["instances"])
    # YOLO-seg: labels by stem under yolo/labels, data.yaml, images linked to the input folder.
    data = yaml.safe_load((out / "yolo" / "data.yaml").read_text())
    assert data["names"] == {0: "cube", 1: "sphere", 2: "cylinder"}
    assert Path(data["path"]) == (out / "yolo").absolute()
    assert (out / "yolo" / "images").resolve() == images.resolve()
    label = out / "yolo" / "labels" / "sub" / "cluttered.txt"
    lines = label.read_text().splitlines()
    assert len(lines) == len(record["instances"])
    assert all(line.split()[0] in {"0", "1", "2"} for line in lines)
    # Ultralytics finds a label at the image path with /images/ -> /labels/ and the suffix -> .txt.
    image = out / "yolo" / "images" / "sub" / "cluttered.png"
    assert image.is_file() and Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt") == label
    # LabelMe: <stem>.json under labelme/, imagePath relative to it.
    labelme = json.loads((out / "labelme" / "sub" / "cluttered.json").read_text())
    assert (out / "labelme" / "sub" / labelme["imagePath"]).resolve() == (
        images / "sub" / "cluttered.png"
    ).resolve()
    assert len({s["group_id"] for s in labelme["shapes"]}) == len(record["instances"])

    # Rerun with other JSON content (no polygons) into the same folder: refused, nothing lost.
    again = runner.invoke(app, ["batch", str(images), "-o", str(out), *SMALL, "-q", "--save", "json"])
    assert again.exit_code == 1 and "with polygons" in again.stderr
    assert json.loads((out / "sub" / "cluttered.png.json").read_text()) == record


def test_batch_coco_ids_from_a_ground_truth_that_lacks_an_input(scenes: Path, tmp_path: Path) -> None:
    gt = json.loads((scenes / "ground-truth.json").read_text())
    gone = {img["id"] for img in gt["images"] if img["file_name"] == "tiled-floor.png"}
    gt["images"] = [img for img in gt["images"] if img["id"] not in gone]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] not in gone]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["batch", str(scenes), "-o", str(out), *SMALL, "--coco-ids-from", str(tmp_path / "gt.json")]
    )
    assert result.exit_code == 1
    assert "1 input image(s) are not in the ground truth: 'tiled-floor.png'" in " ".join(
        result.stderr.split()
    )
    assert "model blocks" not in result.stderr  # before the model loads
    assert not (out / "run.json").exists()


def test_predict_writes_yolo_and_labelme(tmp_path: Path) -> None:
    out = tmp_path / "out"
    image = BLOCKS / "two-red-cubes.png"
    result = runner.invoke(
        app, ["predict", str(image), "-o", str(out), *SMALL, "-q", "--save", "yolo,labelme"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "yolo" / "labels" / "two-red-cubes.txt").is_file()
    assert yaml.safe_load((out / "yolo" / "data.yaml").read_text())["nc"] == 3
    assert not (out / "yolo" / "images").exists()  # predict's images may come from anywhere
    labelme = json.loads((out / "labelme" / "two-red-cubes.json").read_text())
    assert (out / "labelme" / labelme["imagePath"]).resolve() == image.resolve()
    assert labelme["imageHeight"] == 384 and labelme["imageWidth"] == 512
