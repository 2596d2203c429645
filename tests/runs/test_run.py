"""Engines, run_plans, run_batch, run files and the demo, on a FakeSegmenter: milliseconds, no model.

Inputs are small PNGs of distinct widths, so a test picks the input that fails by its width.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

import segcli.runs.engines.base
from segcli.core.errors import SegcliError, UsageError
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.io.files import temp_name
from segcli.outputs.plans import OUTPUT_KINDS, OutputPlan, plan_outputs
from segcli.outputs.writers import idmap_preview_path
from segcli.runs.batch import BatchEvents, BatchOptions, BatchOutcome, run_batch, run_plans
from segcli.runs.engines import RayOptions, select_engine
from segcli.runs.engines.base import ItemResult, Job, process_plans, segment_images
from segcli.runs.engines.local import LocalEngine
from tests.fakes import FAKE_SETTINGS, FakeSegmenter, two_instances, write_images

WIDTHS = {"a.png": 10, "b.png": 11, "c.png": 12, "d.png": 13, "e.png": 14}


def _plans(tmp_path: Path, widths: dict[str, int] = WIDTHS) -> list[OutputPlan]:
    sources = write_images(tmp_path / "in", widths)
    return plan_outputs(sources, tmp_path / "out", root=tmp_path / "in")


def _files(out: Path) -> dict[str, bytes]:
    """Every output file except the run files (which hold times)."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("run.json", "coco.json")
    }


def _run(
    plans: Sequence[OutputPlan], seg: FakeSegmenter, save: Sequence[str] = ("json",), batch_size: int = 1
) -> tuple[dict[str, ItemResult], bool]:
    results: dict[str, ItemResult] = {}

    def emit(result: ItemResult) -> None:
        assert result.plan.key not in results, f"{result.plan.key} reported twice"
        results[result.plan.key] = result

    interrupted = LocalEngine(seg).run(plans, Job.for_segmenter(seg, save, batch_size=batch_size), emit)
    return results, interrupted


# --------------------------------------------------------------------------- engine stages
def test_local_engine_writes_each_input_and_reports_it_once(tmp_path: Path) -> None:
    plans = _plans(tmp_path)
    seg = FakeSegmenter()
    results, interrupted = _run(plans, seg, OUTPUT_KINDS, batch_size=3)
    assert not interrupted
    assert seg.calls == [3, 2]
    assert sorted(results) == sorted(WIDTHS)
    for plan in plans:
        result = results[plan.key]
        assert (result.status, result.instances) == ("done", 2)
        assert result.summary == "2 instances (1 cube, 1 sphere)"
        paths = plan.paths(OUTPUT_KINDS)
        assert json.loads(paths["json"].read_bytes()) == result.record
        assert sorted(p.name for p in paths["masks"].iterdir()) == ["000-cube.png", "001-sphere.png"]
        assert paths["overlay"].is_file() and paths["idmap"].is_file()
        assert idmap_preview_path(paths["idmap"]).is_file()  # the colour preview beside it
    assert not list((tmp_path / "out").rglob("*.part"))


def test_one_failing_image_is_retried_alone(tmp_path: Path) -> None:
    plans = _plans(tmp_path)
    seg = FakeSegmenter(
        fail_on={
            11: RuntimeError("bad weights\nsecond line"),
            12: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB"),
            14: MemoryError(),
        }
    )
    results, _ = _run(plans, seg, batch_size=5)
    assert seg.calls == [5, 1, 1, 1, 1, 1], "the batch first, then image by image"
    status = {key: r.status for key, r in results.items()}
    assert status == {
        "a.png": "done",
        "b.png": "failed",
        "c.png": "failed",
        "d.png": "done",
        "e.png": "failed",
    }
    assert results["b.png"].reason == f"{plans[1].source}: model failed (bad weights)"
    assert results["c.png"].reason == (
        f"{plans[2].source}: out of memory in the model (CUDA out of memory. Tried to allocate 9.00 GiB); "
        "try a smaller --max-size, --batch-size 1 or --device cpu"
    )
    assert results["e.png"].reason.startswith(f"{plans[4].source}: out of memory in the model (MemoryError)")
    assert not (tmp_path / "out" / "b.png.json").exists()


def test_wrong_number_of_results_fails_the_images(tmp_path: Path) -> None:
    class Short(FakeSegmenter):
        def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
            return super().__call__(images)[1:]

    results, _ = _run(_plans(tmp_path, {"a.png": 10, "b.png": 11}), Short(), batch_size=2)
    assert {r.status for r in results.values()} == {"failed"}
    assert "returned 0 results for 1 images" in results["a.png"].reason


def test_unreadable_and_oversized_inputs_fail_alone(tmp_path: Path) -> None:
    plans = _plans(tmp_path, {"a.png": 10, "big.png": 40, "c.png": 12})
    (tmp_path / "in" / "junk.png").write_bytes(b"<html>not an image</html>")
    plans = plan_outputs(sorted((tmp_path / "in").iterdir()), tmp_path / "out", root=tmp_path / "in")
    seg = FakeSegmenter()
    results: dict[str, ItemResult] = {}
    LocalEngine(seg).run(
        plans, Job.for_segmenter(seg, ["json"], max_pixels=8 * 20), lambda r: results.update({r.plan.key: r})
    )
    assert {k: r.status for k, r in results.items()} == {
        "a.png": "done",
        "big.png": "failed",
        "c.png": "done",
        "junk.png": "failed",
    }
    assert "declares 40x8" in results["big.png"].reason and "--max-pixels" in results["big.png"].reason
    assert results["junk.png"].reason == f"{tmp_path / 'in' / 'junk.png'}: not an image segcli can read"


def test_write_failures_become_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = segcli.runs.engines.base.write_outputs

    def failing(paths: dict[str, Path], *args: object, **kwargs: object) -> None:
        name = next(iter(paths.values())).name
        if name.startswith("b.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if name.startswith("c.png"):
            raise ValueError("cannot encode\ndetails")
        real(paths, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(segcli.runs.engines.base, "write_outputs", failing)
    results, _ = _run(_plans(tmp_path), FakeSegmenter())
    assert results["b.png"].reason.endswith("b.png: cannot write outputs (No space left on device)")
    assert results["c.png"].reason.endswith("c.png: cannot encode")
    assert [k for k, r in sorted(results.items()) if r.status == "done"] == ["a.png", "d.png", "e.png"]


def test_process_plans_writes_what_the_local_engine_writes(tmp_path: Path) -> None:
    seg = FakeSegmenter(fail_on={12: RuntimeError("boom")})
    sources = write_images(tmp_path / "in", WIDTHS)
    _run(plan_outputs(sources, tmp_path / "local", root=tmp_path / "in"), seg, OUTPUT_KINDS, batch_size=2)
    plans = plan_outputs(sources, tmp_path / "worker", root=tmp_path / "in")
    results = process_plans(seg, plans, Job.for_segmenter(seg, OUTPUT_KINDS, batch_size=2))
    assert [r.plan for r in results] == plans, "one result per plan, in order"
    assert [r.status for r in results] == ["done", "done", "failed", "done", "done"]
    assert all(r.record is None for r in results), "records stay on the worker"
    assert _files(tmp_path / "worker") == _files(tmp_path / "local")


def test_select_engine_names_the_choices_and_checks_the_ray_options() -> None:
    """The one place an engine is chosen (the CLI's --engine goes through it)."""
    assert isinstance(select_engine("local")(FakeSegmenter()), LocalEngine)
    with pytest.raises(UsageError, match="unknown --engine 'gpu-farm'; choose from local, ray"):
        select_engine("gpu-farm")
    with pytest.raises(UsageError, match=r"^--workers needs --engine ray$"):
        select_engine("local", ray=RayOptions(workers=2))
    with pytest.raises(UsageError, match=r"^--cpus-per-worker needs --engine ray$"):
        select_engine("local", ray=RayOptions(cpus_per_worker=1.0))
    for bad, message in [
        (RayOptions(workers=0), "--workers must be at least 1, got 0"),
        (RayOptions(cpus_per_worker=float("nan")), "--cpus-per-worker must be a finite number, got nan"),
        (RayOptions(cpus_per_worker=0), "--cpus-per-worker must be above 0, got 0"),
        (RayOptions(gpus_per_worker=float("inf")), "--gpus-per-worker must be a finite number, got inf"),
        (RayOptions(gpus_per_worker=-1), "--gpus-per-worker must be 0 or more, got -1"),
    ]:
        with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
            select_engine("ray", ray=bad)
    with pytest.raises(SegcliError, match="--batch-size must be at least 1"):
        Job.for_segmenter(FakeSegmenter(), ["json"], batch_size=0)


def test_segment_images_lets_interrupts_through() -> None:
    seg = FakeSegmenter(fail_on={3: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        segment_images(seg, [np.zeros((2, 3, 3), np.uint8)])


# --------------------------------------------------------------------------- interrupt
def test_interrupt_keeps_finished_writes_and_reports_nothing_else(tmp_path: Path) -> None:
    plans = _plans(tmp_path)
    seg = FakeSegmenter(fail_on={12: KeyboardInterrupt()})
    results, interrupted = _run(plans, seg, OUTPUT_KINDS)
    assert interrupted
    assert {k: r.status for k, r in results.items()} == {"a.png": "done", "b.png": "done"}
    for plan in plans[:2]:
        assert all(p.exists() for p in plan.paths(OUTPUT_KINDS).values())
    assert not any(p.exists() for p in plans[2].paths(OUTPUT_KINDS).values())
    assert not list((tmp_path / "out").rglob("*.part"))


def _batch(tmp_path: Path, seg: FakeSegmenter, out: str = "out", **options: object) -> BatchOutcome:
    opts = BatchOptions(save=("overlay", "json", "masks"), **options)  # type: ignore[arg-type]
    return run_batch(tmp_path / "in", tmp_path / out, lambda: seg, options=opts)


def test_interrupted_batch_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    write_images(tmp_path / "in", {**WIDTHS, "sub/f.png": 15})
    reference = _batch(tmp_path, FakeSegmenter(), out="ref")
    assert reference.exit_code == 0

    stopped = _batch(tmp_path, FakeSegmenter(fail_on={13: KeyboardInterrupt()}))
    assert stopped.exit_code == 130
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "interrupted" and run["counts"]["done"] == 3
    assert run["counts"]["inputs"] == 6, "an interrupted run counts every input, reached or not"
    assert run["counts"]["total"] == {"done": 3, "failed": 0, "pending": 3, "instances": 6}
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png.json")}
    assert len(done) == 3

    resumed = _batch(tmp_path, FakeSegmenter())
    assert resumed.exit_code == 0
    assert resumed.summary["counts"] == {
        "inputs": 6,
        "done": 3,
        "skipped": 3,
        "failed": 0,
        "instances": 6,  # this run's
        "images": 3,
        "videos": 0,
        "frames": 0,
        "total": {"done": 6, "failed": 0, "pending": 0, "instances": 12},  # the folder's
    }
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "nothing is done twice"
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")
    assert len(json.loads((tmp_path / "out" / "coco.json").read_text())["images"]) == 6


def test_real_sigint_in_process(tmp_path: Path) -> None:
    """A real SIGINT (not a raised KeyboardInterrupt) during the forward pass of the third image."""

    class SigintOnThird(FakeSegmenter):
        def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
            if len(self.calls) == 2:
                signal.raise_signal(signal.SIGINT)
            return super().__call__(images)

    write_images(tmp_path / "in", WIDTHS)
    outcome = _batch(tmp_path, SigintOnThird())
    assert outcome.report.interrupted and outcome.exit_code == 130
    assert outcome.summary["status"] == "interrupted"
    assert outcome.summary["counts"]["done"] == 2
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png.json")) == ["a.png.json", "b.png.json"]


# --------------------------------------------------------------------------- run_plans
def test_run_plans_skips_complete_outputs_unless_overwrite(tmp_path: Path) -> None:
    plans = _plans(tmp_path)
    seg = FakeSegmenter()
    job = Job.for_segmenter(seg, ["json", "overlay"])
    run_plans(plans, job, LocalEngine(seg))
    plans[1].paths(["overlay"])["overlay"].unlink()  # b incomplete: its JSON alone is not enough
    seen: list[tuple[str, bool]] = []
    report = run_plans(
        plans, job, LocalEngine(seg), on_result=lambda r: seen.append((r.status, r.record is not None))
    )
    assert [(r.plan.key, r.status) for r in sorted(report.results, key=lambda r: r.plan.key)] == [
        ("a.png", "skipped"),
        ("b.png", "done"),
        ("c.png", "skipped"),
        ("d.png", "skipped"),
        ("e.png", "skipped"),
    ]
    assert report.count("done") == 1 and report.instances == 2 and report.failed == []
    assert sorted(seen) == [("done", True)] + [("skipped", False)] * 4, "on_result sees the JSON"
    assert all(r.record is None for r in report.results), "the report keeps no JSON"
    report = run_plans(plans, job, LocalEngine(seg), overwrite=True)
    assert report.count("done") == 5 and not report.interrupted


# --------------------------------------------------------------------------- run_batch
class _Recorder(BatchEvents):
    def __init__(self) -> None:
        self.log: list[str] = []

    def discovered(self, files: int, problems: Sequence[tuple[Path, str]]) -> None:
        self.log.append(f"discovered {files} {len(problems)}")

    def started(self, total: int, stale_removed: int) -> None:
        self.log.append(f"started {total} {stale_removed}")

    def result(self, result: ItemResult) -> None:
        self.log.append(f"{result.status} {result.plan.key}")


def test_run_batch_writes_run_files(tmp_path: Path) -> None:
    write_images(tmp_path / "in", {"a.png": 10, "sub/b.png": 11, "c.png": 12})
    (tmp_path / "in" / "gone.png").symlink_to(tmp_path / "missing.png")
    events = _Recorder()

    def load() -> FakeSegmenter:
        events.log.append("load")
        return FakeSegmenter(fail_on={12: RuntimeError("boom")})

    out = tmp_path / "out"
    outcome = run_batch(tmp_path / "in", out, load, events=events)
    assert events.log[:3] == ["discovered 3 1", "load", "started 3 0"], "load after discovery"
    assert sorted(events.log[3:]) == ["done a.png", "done sub/b.png", "failed c.png"]
    assert outcome.exit_code == 1 and outcome.coco_path == out / "coco.json"
    run = json.loads((out / "run.json").read_text())
    assert run == outcome.summary
    assert run["schema"] == "segcli.run/2" and run["status"] == "done_with_failures"
    assert run["counts"] == {
        "inputs": 4,  # the broken link too
        "done": 2,
        "skipped": 0,
        "failed": 2,
        "instances": 4,
        "images": 2,
        "videos": 0,
        "frames": 0,
        "total": {"done": 2, "failed": 2, "pending": 0, "instances": 4},
    }
    assert run["settings"] == FAKE_SETTINGS.to_dict() and run["model"]["name"] == "fake"
    assert run["engine"] == {"name": "local", "workers": 1} and run["save"] == ["overlay", "json"]
    assert [Path(f["path"]).name for f in run["failed"]] == ["c.png", "gone.png"]
    assert run["failed"][1]["reason"].endswith("gone.png: broken symbolic link")
    coco = json.loads((out / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "sub/b.png"]
    assert len(coco["annotations"]) == 4
    assert [c["name"] for c in coco["categories"]] == ["cube", "sphere", "cylinder"]


def test_run_batch_without_json_writes_no_coco(tmp_path: Path) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    outcome = run_batch(
        tmp_path / "in", tmp_path / "out", FakeSegmenter, options=BatchOptions(save=("overlay",))
    )
    assert outcome.coco_path is None and not (tmp_path / "out" / "coco.json").exists()
    assert outcome.exit_code == 0 and (tmp_path / "out" / "a.png.overlay.png").is_file()


def test_run_batch_cleans_stale_temp_files_and_skips_its_own_output(tmp_path: Path) -> None:
    write_images(tmp_path / "in", {"a.png": 10, "b.png": 11})
    out = tmp_path / "in" / "results"  # the output inside the input folder
    assert run_batch(tmp_path / "in", out, FakeSegmenter).summary["counts"]["done"] == 2
    (out / temp_name("b.png.json")).write_text("left by a killed run")
    (out / ".a.png.masks.z9x_k2ab.part").mkdir()  # an earlier version's temporary folder
    (out / ".a.png.masks.z9x_k2ab.part" / "000.png").write_bytes(b"")
    events = _Recorder()
    outcome = run_batch(tmp_path / "in", out, FakeSegmenter, events=events)
    assert events.log[0] == "discovered 2 0", "the overlays under results/ are not inputs"
    assert outcome.stale_removed == 2 and events.log[1] == "started 2 2"
    assert outcome.summary["counts"]["skipped"] == 2
    assert not list(out.rglob("*.part"))


def test_run_batch_refuses_to_mix_other_settings_or_weights(tmp_path: Path) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    out = tmp_path / "out"
    run_batch(tmp_path / "in", out, FakeSegmenter)
    before = _files(out)
    other = Settings(**{**FAKE_SETTINGS.to_dict(), "nms_iou": 0.3, "classes": None})
    with pytest.raises(SegcliError, match=r"other settings \(nms_iou 0\.5 -> 0\.3\).*--overwrite"):
        run_batch(tmp_path / "in", out, lambda: FakeSegmenter(settings=other))
    with pytest.raises(SegcliError, match="other weights"):
        run_batch(tmp_path / "in", out, lambda: FakeSegmenter(sha256="0" * 64))
    assert _files(out) == before
    redo = run_batch(
        tmp_path / "in", out, lambda: FakeSegmenter(settings=other), options=BatchOptions(overwrite=True)
    )
    assert redo.summary["counts"]["done"] == 1 and redo.summary["settings"]["nms_iou"] == 0.3


# --------------------------------------------------------------------------- writers
def test_colliding_names_get_distinct_outputs(tmp_path: Path) -> None:
    """Two inputs that would share an output (same name, or names differing in case) never do."""
    sources = [
        *write_images(tmp_path / "x", {"cat.png": 10}),
        *write_images(tmp_path / "y", {"cat.png": 11, "dog.png": 12}),
    ]
    plans = plan_outputs(sources, tmp_path / "out")
    keys = [p.key for p in plans]
    assert keys[2] == "dog.png"
    assert keys[0] != keys[1] and all(
        k.startswith("cat.png~") and len(k) == len("cat.png~") + 8 for k in keys[:2]
    )
    assert plan_outputs(sources, tmp_path / "out") == plans, "the suffix is stable across runs"

    folded = write_images(tmp_path / "z", {"Cat.png": 13, "cat.png": 14, "cow.png": 15})
    folded_keys = [p.key for p in plan_outputs(folded, tmp_path / "o2", root=tmp_path / "z")]
    assert folded_keys[2] == "cow.png" and len({k.casefold() for k in folded_keys}) == 3

    results, _ = _run(plans, FakeSegmenter())
    widths = {
        json.loads(plan.paths(["json"])["json"].read_text())["image"]["width"]: plan.key for plan in plans
    }
    assert sorted(widths) == [10, 11, 12] and {r.status for r in results.values()} == {"done"}


def test_rewriting_masks_replaces_the_folder(tmp_path: Path) -> None:
    plans = _plans(tmp_path, {"a.png": 10})
    masks = plans[0].paths(["masks"])["masks"]
    masks.mkdir(parents=True)
    (masks / "007.png").write_bytes(b"from an older run")
    _run(plans, FakeSegmenter(), ["masks"])
    assert sorted(p.name for p in masks.iterdir()) == ["000-cube.png", "001-sphere.png"]


def test_fake_instances_are_what_the_writers_record(tmp_path: Path) -> None:
    plans = _plans(tmp_path, {"a.png": 10})
    results, _ = _run(plans, FakeSegmenter(), ["json", "idmap"])
    record = results["a.png"].record
    assert record is not None
    assert [(i["label"], i["score"], i["box"], i["area"]) for i in record["instances"]] == [
        ("cube", 0.9, [0.0, 0.0, 5.0, 4.0], 20),
        ("sphere", 0.6, [0.0, 4.0, 10.0, 8.0], 36),
    ]
    assert two_instances((8, 10)).areas.tolist() == [20, 36]


# --------------------------------------------------------------------------- demo
def test_demo_runs_predict_batch_and_compare_through_the_library(tmp_path: Path) -> None:
    from segcli.demo import DEMO_SAVE, SEED_CASE, run_demo
    from segcli.models.blocks.examples import EXAMPLES

    out = tmp_path / "demo"
    batch_dir = out / "batch"
    # An earlier run with other settings, and a temp file left by a killed one.
    batch_dir.mkdir(parents=True)
    (batch_dir / "run.json").write_text(json.dumps({"settings": {"nms_iou": 0.1}, "model": {"sha256": "0"}}))
    (batch_dir / f".{SEED_CASE}.json.k1ll0000.part").write_text("partial")
    compared: list[tuple[Path, Path]] = []

    def compare(seg: object, image: Path, where: Path) -> dict[str, Path]:
        compared.append((image, where))
        return {"figure": where / "figure.png"}

    seg = FakeSegmenter()
    result = run_demo(out, segmenter=seg, compare=compare)
    assert result.inputs == out / "inputs" and sorted(EXAMPLES) == sorted(
        p.name for p in result.inputs.glob("*.png")
    )
    assert sorted(result.predict) == sorted(OUTPUT_KINDS)
    assert all(p.exists() for p in result.predict.values())
    assert result.batch_counts == {
        "inputs": len(EXAMPLES),
        "done": len(EXAMPLES),
        "skipped": 0,
        "failed": 0,
        "instances": 2 * len(EXAMPLES),
        "images": len(EXAMPLES),
        "videos": 0,
        "frames": 0,
        "total": {"done": len(EXAMPLES), "failed": 0, "pending": 0, "instances": 2 * len(EXAMPLES)},
    }
    run = json.loads((batch_dir / "run.json").read_text())
    assert run["settings"] == FAKE_SETTINGS.to_dict() and run["save"] == list(DEMO_SAVE)
    assert not list(out.rglob("*.part")), "the demo's batch step removes stale temp files"
    assert compared == [(out / "inputs" / SEED_CASE, out / "compare")]
    assert result.extra == {"figure": out / "compare" / "figure.png"}
    assert seg.calls == [1] * (1 + len(EXAMPLES)), "predict once, then each example"


@pytest.mark.parametrize("n_inputs", [5, 9])
def test_ctrl_c_while_waiting_for_a_write_loses_no_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_inputs: int
) -> None:
    """The first wait for a write is interrupted: at the end (5 inputs) or in the loop (9)."""
    real = LocalEngine._written
    waits: list[str] = []

    def interrupted_once(plan: OutputPlan, fut: object) -> ItemResult:
        waits.append(plan.key)
        if len(waits) == 1:
            raise KeyboardInterrupt
        return real(plan, fut)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalEngine, "_written", staticmethod(interrupted_once))
    plans = _plans(tmp_path, {f"{i}.png": 10 + i for i in range(n_inputs)})
    results, interrupted = _run(plans, FakeSegmenter())
    assert interrupted and waits[0] == waits[1] == "0.png", "the interrupted wait is retried"
    submitted = min(n_inputs, 2 * 2 + 1 + 1)  # the write queue's bound, plus the one that filled it
    assert sorted(results) == sorted(p.key for p in plans[:submitted])
    assert {r.status for r in results.values()} == {"done"}


def test_ctrl_c_right_after_a_write_is_queued_still_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between handing a write to the write threads and recording its future: the
    write still ends (good work) and is reported, so run.json counts every JSON on disk."""
    from concurrent.futures import ThreadPoolExecutor

    real_submit = ThreadPoolExecutor.submit
    writes: list[object] = []

    def submit(self: ThreadPoolExecutor, fn: object, /, *args: object, **kwargs: object) -> object:
        fut = real_submit(self, fn, *args, **kwargs)  # type: ignore[arg-type]
        if self._thread_name_prefix.startswith("segcli-write"):  # type: ignore[attr-defined]
            writes.append(fut)
            if len(writes) == 2:
                fut.result()  # this write ends (the main thread was preempted here) ...
                raise KeyboardInterrupt  # ... and the signal lands before the engine records it
        return fut

    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit)
    write_images(tmp_path / "in", {f"{i}.png": 10 + i for i in range(8)})
    outcome = run_batch(
        tmp_path / "in", tmp_path / "out", FakeSegmenter, options=BatchOptions(save=("json",))
    )
    on_disk = sorted(p.name for p in (tmp_path / "out").glob("*.png.json"))
    assert outcome.summary["status"] == "interrupted" and on_disk == ["0.png.json", "1.png.json"]
    assert outcome.summary["counts"]["done"] == 2


def test_ctrl_c_while_coco_json_is_written_still_writes_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every image is done; Ctrl-C lands while coco.json is written (seconds for a big folder):
    run.json says so, the interrupt goes on to the caller, and a rerun writes coco.json."""
    import segcli.runs.runfiles

    real = segcli.runs.runfiles.write_coco

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(segcli.runs.runfiles, "write_coco", interrupted)
    write_images(tmp_path / "in", WIDTHS)
    with pytest.raises(KeyboardInterrupt):
        _batch(tmp_path, FakeSegmenter())
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["done"] == len(WIDTHS)
    assert run["coco_error"].startswith("interrupted while writing coco.json: run the same command again")
    assert not (tmp_path / "out" / "coco.json").exists()
    monkeypatch.setattr(segcli.runs.runfiles, "write_coco", real)
    again = _batch(tmp_path, FakeSegmenter())
    assert again.exit_code == 0 and again.summary["counts"]["skipped"] == len(WIDTHS)
    assert "coco_error" not in again.summary and (tmp_path / "out" / "coco.json").is_file()
