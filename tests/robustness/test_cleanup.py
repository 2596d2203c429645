"""Stale temp cleanup: segcli removes only temporary files it provably made, only in folders
it owns, never in the input tree; an output folder of an earlier version still resumes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from segcli.io.files import temp_name
from segcli.outputs.plans import OUTPUT_MARKER, mark_output, plan_outputs
from segcli.runs.batch import BatchOptions, run_batch
from segcli.runs.runfiles import remove_stale_temp_files
from tests.fakes import FakeSegmenter, write_images

USER_FILES = (
    ".thesis.docx.part",  # a user's download in progress
    ".x.part",
    ".a.png.json.part",  # no token at all
    ".thesis.docx.abcdefgh.part",  # an old segcli shape, but not of an output segcli writes
    ".a.png.json.segcli-000000000000.part",  # the new shape, wrong check digits
    ".notes.part",  # a folder, below
)


def _user_files(folder: Path) -> set[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = set()
    for name in USER_FILES:
        path = folder / name
        if name == ".notes.part":
            path.mkdir()
            (path / "draft.txt").write_text("mine")
        else:
            path.write_text("mine")
        made.add(path)
    return made


def _batch(root: Path, out: Path, **options: object) -> object:
    return run_batch(root, out, FakeSegmenter, options=BatchOptions(**options))  # type: ignore[arg-type]


def test_user_files_named_like_temp_files_survive_every_batch(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_images(root, {"a.png": 10, "sub/b.png": 11})
    out = tmp_path / "out"
    mine = _user_files(out) | _user_files(out / "sub") | _user_files(out / "yolo" / "labels")
    for save in (("overlay", "json"), ("json", "masks", "yolo", "labelme")):
        outcome = _batch(root, out, save=save, overwrite=True)
        assert outcome.stale_removed == 0, save  # type: ignore[attr-defined]
    assert all(p.exists() for p in mine)
    assert (out / ".notes.part" / "draft.txt").read_text() == "mine"


def test_temp_files_segcli_made_are_removed_wherever_it_writes(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_images(root, {"a.png": 10, "sub/b.png": 11})
    out = tmp_path / "out"
    _batch(root, out, save=("json", "masks", "yolo", "labelme"))
    ours = [
        out / temp_name("a.png.json"),
        out / "sub" / temp_name("b.png.overlay.png"),
        out / "sub" / temp_name("something.no.longer.planned"),  # still provably ours
        out / "yolo" / "labels" / "sub" / temp_name("b.txt"),
        out / "labelme" / temp_name("a.json"),
        out / temp_name("run.json"),
        out / "sub" / ".b.png.attempt.part",  # a Ray worker's attempt mark
    ]
    for path in ours:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
    folder = out / temp_name("a.png.masks")
    folder.mkdir()
    (folder / "000-cube.png").write_bytes(b"")
    mine = _user_files(out / "sub")
    outcome = _batch(root, out, save=("json", "masks", "yolo", "labelme"))
    assert outcome.stale_removed == len(ours) + 1  # type: ignore[attr-defined]
    assert not [p for p in [*ours, folder] if p.exists()]
    assert all(p.exists() for p in mine)


def test_an_output_folder_of_an_earlier_version_resumes_and_loses_its_leftovers(tmp_path: Path) -> None:
    """What an older segcli killed mid-run left: ``.<output>.XXXXXXXX.part`` files and folders
    (tempfile's 8 characters) and attempt marks, beside complete and missing outputs."""
    root = tmp_path / "in"
    write_images(root, {"a.png": 10, "b.png": 11, "deep/c.png": 12})
    out = tmp_path / "out"
    _batch(root, out, save=("overlay", "json", "masks"))
    (out / "b.png.json").unlink()  # b was in flight when the old run died
    legacy = [
        out / ".b.png.json.k2j3x_9z.part",
        out / ".b.png.overlay.png.abc12345.part",
        out / ".run.json.q1w2e3r4.part",
        out / ".coco.json.zzzzzzzz.part",
        out / "deep" / ".c.png.json.0000_000.part",
        out / ".b.png.attempt.part",
    ]
    for path in legacy:
        path.write_text("partial")
    (out / ".b.png.masks.m4sk_d1r.part").mkdir()
    (out / ".b.png.masks.m4sk_d1r.part" / "000-cube.png").write_bytes(b"")
    mine = _user_files(out) | _user_files(out / "deep")
    outcome = _batch(root, out, save=("overlay", "json", "masks"))
    counts = outcome.summary["counts"]  # type: ignore[attr-defined]
    assert (counts["done"], counts["skipped"], counts["failed"]) == (1, 2, 0)
    assert outcome.stale_removed == len(legacy) + 1  # type: ignore[attr-defined]
    assert not [p for p in legacy if p.exists()] and not (out / ".b.png.masks.m4sk_d1r.part").exists()
    assert all(p.exists() for p in mine)
    assert json.loads((out / "b.png.json").read_text())["image"]["path"] == str(root / "b.png")


@pytest.mark.parametrize("layout", ["output-is-cwd", "output-holds-input"])
def test_nothing_in_the_input_tree_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """``batch photos -o .``: the input tree lies in the output folder; its files, even ones
    named exactly as segcli names its temporary files, are never touched."""
    top = tmp_path / "top"
    photos = top / "photos"
    write_images(photos, {"a.png": 10, "photos/b.png": 11, "sub/c.png": 12})
    planted = _user_files(photos) | _user_files(photos / "sub") | _user_files(photos / "photos")
    for folder in (photos, photos / "sub", photos / "photos"):
        for name in (temp_name("a.png.json"), ".b.png.json.abcdefgh.part", ".b.png.attempt.part"):
            (folder / name).write_text("mine")
            planted.add(folder / name)
    monkeypatch.chdir(top)
    out = Path(".") if layout == "output-is-cwd" else top
    outcome = _batch(Path("photos"), out)
    assert outcome.summary["counts"]["done"] == 3  # type: ignore[attr-defined]
    again = _batch(Path("photos"), out)
    assert again.stale_removed == 0  # type: ignore[attr-defined]
    assert not [p for p in planted if not p.exists()]


def test_cleanup_stays_out_of_folders_segcli_does_not_own(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_images(root, {"a.png": 10, "sub/b.png": 11, "other/c.png": 12})
    out = tmp_path / "out"
    plans = plan_outputs(sorted(root.rglob("*.png")), out, root=root)
    (out / "sub").mkdir(parents=True)
    in_flight = out / "sub" / temp_name("b.png.json")
    in_flight.write_text("{")
    # no marker: not (yet) a segcli output folder
    assert remove_stale_temp_files(out, plans, input_root=root) == 0 and in_flight.exists()
    mark_output(out)
    # another run's output folder inside this one (its own marker, its own lock)
    mark_output(out / "sub")
    assert remove_stale_temp_files(out, plans, input_root=root) == 0 and in_flight.exists()
    # a planned folder that is a link out of the output folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / temp_name("c.png.json")).write_text("{")
    os.symlink(elsewhere, out / "other")
    assert remove_stale_temp_files(out, plans, input_root=root) == 0
    assert len(list(elsewhere.iterdir())) == 1
    (out / "sub" / OUTPUT_MARKER).unlink()
    assert remove_stale_temp_files(out, plans, input_root=root) == 1 and not in_flight.exists()


def test_a_folder_that_holds_an_input_is_never_cleaned(tmp_path: Path) -> None:
    """--from-list may name a file inside the output folder itself (no tree rule can tell):
    the folder an input lies in is left alone, however its names look."""
    write_images(tmp_path, {"a.png": 10, "out/b.png": 11})
    out = tmp_path / "out"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'a.png'}\n{out / 'b.png'}\n")
    from segcli.runs.discovery import read_list

    root, files = read_list(listing)
    assert run_batch(root, out, FakeSegmenter, files=files).exit_code == 0
    planted = [out / temp_name("a.png.json"), out / ".a.png.json.abcdefgh.part", out / ".b.png.attempt.part"]
    for path in planted:
        path.write_text("mine?")
    deeper = out / "out" / temp_name("b.png.json")  # b's own outputs' folder holds no input
    deeper.write_text("{")
    outcome = run_batch(root, out, FakeSegmenter, files=files)
    assert outcome.stale_removed == 1 and not deeper.exists()  # type: ignore[attr-defined]
    assert all(p.exists() for p in planted)
