"""`segcli batch` through the CLI: discovery, mirrored outputs, resume, failures, run.json, coco.json.

One test runs the real (randomly initialised) blocks model end to end; the others test the
run around it on a FakeSegmenter (``use_fake_in_cli``), which the settings options still reach.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO
from typer.testing import CliRunner, Result

from segcli.cli import app
from segcli.io.files import temp_name
from segcli.runs.discovery import discover
from tests.conftest import BATCH_FAST as FAST
from tests.conftest import PHOTOS
from tests.fakes import use_fake_in_cli

runner = CliRunner()


def _tree(root: Path) -> Path:
    """A folder with nested photos, name collisions, hidden and non-image files."""
    (root / "a" / "deep" / "er").mkdir(parents=True)
    shutil.copy(PHOTOS / "chelsea.jpg", root / "cat.jpg")
    Image.open(PHOTOS / "chelsea.jpg").save(root / "cat.png")  # same stem, other extension
    shutil.copy(PHOTOS / "coffee.jpg", root / "a" / "cup.JPEG")  # upper-case extension
    shutil.copy(PHOTOS / "rocket.jpg", root / "a" / "deep" / "er" / "rocket ünïcode.jpg")
    (root / ".hidden.jpg").write_bytes((PHOTOS / "coffee.jpg").read_bytes())
    (root / "notes.txt").write_text("not an image")
    return root


def _run(folder: Path, out: Path, *extra: str, ckpt: Path | None = None) -> Result:
    weights = ["--weights", str(ckpt)] if ckpt is not None else []
    return runner.invoke(app, ["batch", str(folder), "-o", str(out), *weights, *FAST, *extra])


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_in_cli(monkeypatch)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "run.json" and p.name != "coco.json"
    }


def test_discovery_rules(tmp_path: Path) -> None:
    root = _tree(tmp_path / "in")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop
    found = discover(root, exclude=[root / "a" / "deep"])
    rels = [p.relative_to(root).as_posix() for p in found.files]
    assert rels == ["a/cup.JPEG", "cat.jpg", "cat.png"]
    assert [p.relative_to(root).as_posix() for p in discover(root, recursive=False).files] == [
        "cat.jpg",
        "cat.png",
    ]


def test_batch_mirrors_tree_and_writes_run_files(tmp_path: Path, blocks_ckpt: Path) -> None:
    root = _tree(tmp_path / "in")
    out = tmp_path / "out"
    result = _run(root, out, ckpt=blocks_ckpt)
    assert result.exit_code == 0, result.output
    for rel in ("cat.jpg", "cat.png", "a/cup.JPEG", "a/deep/er/rocket ünïcode.jpg"):
        assert (out / f"{rel}.json").is_file()
    assert (out / "cat.jpg.overlay.jpg").is_file() and (out / "cat.png.overlay.png").is_file()
    assert not list(out.rglob("*hidden*")) and not list(out.rglob("notes*"))
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    counts = dict(run["counts"])
    instances = counts.pop("instances")
    assert counts.pop("total") == {"done": 4, "failed": 0, "pending": 0, "instances": instances}
    assert counts == {
        "inputs": 4,
        "done": 4,
        "skipped": 0,
        "failed": 0,
        "images": 4,
        "videos": 0,
        "frames": 0,
    }
    assert run["settings"]["max_detections"] == 4 and run["failed"] == []
    coco = COCO(str(out / "coco.json"))
    assert sorted(img["file_name"] for img in coco.dataset["images"]) == sorted(
        ["cat.jpg", "cat.png", "a/cup.JPEG", "a/deep/er/rocket ünïcode.jpg"]
    )
    assert len(coco.getAnnIds()) == instances > 0
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"cube", "sphere", "cylinder"}
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).sum() == ann["area"]
    assert ann["bbox"][2] >= 0 and "score" in ann


def test_resume_skips_complete_and_overwrite_redoes(tmp_path: Path, fake: None) -> None:
    root = _tree(tmp_path / "in")
    out = tmp_path / "out"
    assert _run(root, out).exit_code == 0
    before = _snapshot(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    (out / "cat.png.json").unlink()  # one incomplete input
    (out / "a" / temp_name("cup.JPEG.json")).write_text("left by a killed run")
    result = _run(root, out)
    assert result.exit_code == 0
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["done"] == 1 and run["counts"]["skipped"] == 3
    assert _snapshot(out) == before, "the resumed run equals the uninterrupted one"
    assert not list(out.rglob("*.part"))
    assert (out / "cat.jpg.json").stat().st_mtime_ns == mtimes[out / "cat.jpg.json"]
    assert len(COCO(str(out / "coco.json")).dataset["images"]) == 4
    result = _run(root, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["counts"]["done"] == 4


def test_other_settings_do_not_mix_into_old_results(tmp_path: Path, fake: None) -> None:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "coffee.jpg", root)
    out = tmp_path / "out"
    assert _run(root, out).exit_code == 0
    result = _run(root, out, "--nms-iou", "0.3")
    assert result.exit_code == 1
    assert "other settings" in result.stderr and "--overwrite" in result.stderr


def test_bad_file_does_not_stop_the_run(tmp_path: Path, fake: None) -> None:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "coffee.jpg", root / "a.jpg")
    (root / "b.jpg").write_bytes(b"<html>not a photo</html>")
    (root / "c.png").write_bytes((PHOTOS / "chelsea.jpg").read_bytes()[:3000])  # truncated
    shutil.copy(PHOTOS / "rocket.jpg", root / "d.jpg")
    out = tmp_path / "out"
    result = _run(root, out)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    failed_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("failed:")]
    assert len(failed_lines) == 2
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["done"] == 2 and run["counts"]["failed"] == 2
    assert sorted(Path(f["path"]).name for f in run["failed"]) == ["b.jpg", "c.png"]
    assert all(f["reason"] for f in run["failed"])
    assert (out / "a.jpg.json").is_file() and (out / "d.jpg.json").is_file()


def test_output_inside_input_is_never_read(tmp_path: Path, fake: None) -> None:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(PHOTOS / "coffee.jpg", root)
    out = root / "results"
    assert _run(root, out, "--save", "overlay,json,masks").exit_code == 0
    assert _run(root, out).exit_code == 0
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["inputs"] == 1 and run["counts"]["skipped"] == 1


def test_output_that_is_a_file_fails_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = use_fake_in_cli(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run(PHOTOS, blocker / "out")
    assert result.exit_code == 1 and "cannot write to output folder" in result.stderr
    assert loaded == [], "no model loads"
