"""Values that pass parsing and used to crash later: every one is a usage error (exit 2, one
line) before any model loads, or is handled where it lands (names with any character in
plots and overlays, an engine failing after run.json says "running")."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import segcli.cli.runtime
import segcli.draw.plots
import segcli.runs.engines.ray as ray_engine
from segcli.cli import app
from segcli.core.errors import SegcliError
from segcli.evaluation.evaluate import evaluate, write_eval
from segcli.io.video import FrameSelection
from segcli.runs.batch import run_batch
from segcli.runs.engines.base import process_plans
from segcli.runs.engines.ray import RayEngine, check_reachable, parse_address
from tests.conftest import REPO
from tests.fakes import FakeSegmenter, write_images
from tests.ray_fakes import FakeSpec

runner = CliRunner()
RAY = importlib.util.find_spec("ray") is not None
GT_PATH = REPO / "examples" / "blocks" / "ground-truth.json"


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(segcli.cli.runtime, "DEFAULT", segcli.cli.runtime.Runtime(load_segmenter=refuse))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


MODEL_VALUES = {
    ("--end", "inf"): "--end must be between 0 and 1e+09 seconds",
    ("--end", "nan"): "Invalid value for '--end'",  # Typer's own check (a boxed message)
    ("--start", "1e308"): "--start must be between",
    ("--start", "inf"): "--start must be between",
    ("--start", "nan"): "Invalid value for '--start'",
    ("--start", "5", "--end", "1e12"): "--end must be between",
    ("--max-detections", "1001"): "--max-detections must be at most 1,000",
    ("--max-detections", str(10**12)): "--max-detections must be at most",
    ("--proposals", "1000000"): "--proposals must be at most 5,000",
    ("--min-size", "5000"): "--min-size must be at most 4,096",
    ("--max-size", "100000"): "--max-size must be at most 4,096",
    ("--model", "blocks", "--min-size", "900"): "--min-size (900) must not exceed --max-size (640)",
    ("--score-threshold", "nan"): "--score-threshold must be in [0, 1]",
}


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("command", ["predict", "batch"])
@pytest.mark.parametrize("values", sorted(MODEL_VALUES))
def test_absurd_values_are_usage_errors_before_any_model_loads(
    tmp_path: Path, command: str, values: tuple[str, ...]
) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    target = tmp_path / "in" / ("a.png" if command == "predict" else "")
    result = runner.invoke(app, [command, str(target), "-o", str(tmp_path / "out"), *values])
    assert result.exit_code == 2, (values, result.output)
    said = MODEL_VALUES[values]
    assert said in result.stderr, result.stderr
    assert said.startswith("Invalid value") or result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "out" / "run.json").exists()


def test_the_library_refuses_the_same_values() -> None:
    for kwargs in ({"end": float("inf")}, {"start": 1e308}, {"start": float("nan")}, {"end": -1.0}):
        with pytest.raises(SegcliError):
            FrameSelection(**kwargs)  # type: ignore[arg-type]
    assert FrameSelection(start=1e9 - 1, end=1e9).end == 1e9


RAY_VALUES = {
    ("--cpus-per-worker", "nan"): "--cpus-per-worker must be a finite number, got nan",
    ("--cpus-per-worker", "inf"): "--cpus-per-worker must be a finite number, got inf",
    ("--gpus-per-worker", "nan"): "--gpus-per-worker must be a finite number, got nan",
    ("--gpus-per-worker", "-1"): "--gpus-per-worker must be 0 or more, got -1",
    ("--ray-address", "s3://bucket/photos"): "'s3://bucket/photos' is not a Ray address",
    ("--ray-address", "http://head:8265"): "that is the dashboard's address",
    ("--ray-address", "head"): "'head' is not a Ray address",
    ("--ray-address", ":6379"): "':6379' is not a Ray address",
    ("--ray-address", "head:0"): "'head:0' is not a Ray address",
    ("--ray-address", "head:99999"): "'head:99999' is not a Ray address",
    ("--ray-address", "head:6379/x"): "is not a Ray address",
    ("--ray-address", "CLOSED"): "nothing listens there",
    ("--ray-address", "no-such-host.invalid:6379"): "unknown host",
}


@pytest.mark.skipif(not RAY, reason="Ray is not installed")
@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("values", sorted(RAY_VALUES))
def test_ray_values_are_usage_errors_at_once(tmp_path: Path, values: tuple[str, ...]) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    args = [v.replace("CLOSED", f"127.0.0.1:{_closed_port()}") for v in values]
    started = time.monotonic()
    result = runner.invoke(
        app, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--engine", "ray", *args]
    )
    assert result.exit_code == 2, (values, result.output)
    assert RAY_VALUES[values] in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.skipif(not RAY, reason="Ray is not installed")
@pytest.mark.usefixtures("no_model")
def test_a_bad_ray_address_variable_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "in", {"a.png": 10})
    for value, said in (
        ("s3://x/y", "RAY_ADDRESS 's3://x/y' is not a Ray address"),
        ("gcs", "is not a Ray address"),
    ):
        monkeypatch.setenv("RAY_ADDRESS", value)
        result = runner.invoke(
            app, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--engine", "ray"]
        )
        assert result.exit_code == 2 and said in result.stderr, result.output


def test_addresses_and_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_address("10.0.0.1:6379") == ("10.0.0.1", 6379)
    assert parse_address("[::1]:6379") == ("::1", 6379)
    assert parse_address("local") is None and parse_address("auto") is None
    for bad in ("s3://b/k", "gs://b", "file:///tmp/x", "10.0.0.1", "10.0.0.1:x", "", "::1:"):
        with pytest.raises(SegcliError, match="is not a Ray address"):
            parse_address(bad)

    def black_hole(address: Any, timeout: float) -> None:
        raise TimeoutError

    monkeypatch.setattr(socket, "create_connection", black_hole)
    with pytest.raises(SegcliError, match=r"no answer within 0.5 s"):
        check_reachable("10.255.255.1:6379", timeout=0.5)
    with pytest.raises(SegcliError, match="above 0 seconds"):
        RayEngine(FakeSpec(), connect_timeout=float("nan"))


@pytest.mark.skipif(not RAY, reason="Ray is not installed")
@pytest.mark.usefixtures("no_model")
def test_sigterm_while_the_address_is_tried_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_images(tmp_path / "in", {"a.png": 10})

    def slow(address: Any, timeout: float) -> None:
        time.sleep(timeout)  # a black hole: the probe waits its whole timeout
        raise TimeoutError

    monkeypatch.setattr(socket, "create_connection", slow)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        result = runner.invoke(
            app,
            [
                "batch",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "out"),
                "--engine",
                "ray",
                "--ray-address",
                "10.255.255.1:6379",
            ],
        )
    finally:
        timer.cancel()
    assert result.exit_code == 143, result.output
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("error", [SegcliError("the Ray job failed: gone"), RuntimeError("a bug")])
def test_an_engine_that_fails_leaves_run_json_failed_not_running(tmp_path: Path, error: Exception) -> None:
    write_images(tmp_path / "in", {"a.png": 10, "b.png": 11, "c.png": 12})

    class Engine:
        """An engine that does one image, then fails itself (a lost cluster, a bug)."""

        name = "failing"

        def describe(self) -> dict[str, Any]:
            return {"name": self.name}

        def run(self, plans: Any, job: Any, emit: Any) -> bool:
            for result in process_plans(FakeSegmenter(), plans[:1], job):
                emit(result)
            raise error

    with pytest.raises(type(error)):
        run_batch(tmp_path / "in", tmp_path / "out", FakeSegmenter, engine=lambda seg: Engine())
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "failed" and str(error) in run["error"]
    assert run["counts"]["done"] == 1 and run["counts"]["total"]["pending"] == 2


@pytest.mark.skipif(not RAY, reason="Ray is not installed")
def test_ray_refusing_to_connect_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def is_initialized(self) -> bool:
            return False

        def init(self, **options: Any) -> None:
            raise ValueError("Ray Client requires pip package `ray[client]`.")

        def shutdown(self) -> None:
            pass

    monkeypatch.setattr(ray_engine, "import_ray", lambda: Refusing())
    write_images(tmp_path / "in", {"a.png": 10})
    with pytest.raises(SegcliError, match="cannot connect to the Ray cluster at local"):
        run_batch(tmp_path / "in", tmp_path / "out", FakeSegmenter, engine=lambda seg: RayEngine(FakeSpec()))
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


NAMES = [
    "two\nlines",
    "tab\there",
    "nul\x00byte",
    "\udcff\udcfe not utf-8",
    "\u202eright to left",
    "日本語",
    "x" * 400,
    "",
]


def test_any_category_name_gives_plots_and_eval_json(tmp_path: Path) -> None:
    gt = json.loads(GT_PATH.read_text())
    for cat, name in zip(gt["categories"], NAMES):
        cat["name"] = name
    gt["categories"] += [{"id": 10 + k, "name": n} for k, n in enumerate(NAMES[3:])]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]
    (tmp_path / "r.json").write_text(json.dumps(results))
    result = evaluate(gt_path, tmp_path / "r.json")
    eval_path, plots = write_eval(result, tmp_path / "eval")
    record = json.loads(eval_path.read_text())
    assert [c["name"] for c in record["per_class"]][:3] == NAMES[:3]
    assert len(plots) == len(gt["categories"]) and all(p.is_file() for p in plots)


def test_a_plot_that_fails_still_leaves_eval_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> np.ndarray:
        raise ValueError("a font that cannot draw this")

    monkeypatch.setattr(segcli.draw.plots, "pr_curve_image", broken)
    gt = json.loads(GT_PATH.read_text())
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]
    (tmp_path / "r.json").write_text(json.dumps(results))
    result = evaluate(GT_PATH, tmp_path / "r.json")
    eval_path, plots = write_eval(result, tmp_path / "eval")
    record = json.loads(eval_path.read_text())
    assert plots == [] and all("pr_curve" not in c for c in record["per_class"])
    assert sum("no precision-recall plot" in w for w in record["warnings"]) == 3


def test_any_class_name_is_drawn_on_overlays_and_figures() -> None:
    """In a process of its own: OpenCV crashed (a segfault) on a name that is not UTF-8."""
    code = f"""
import dataclasses
import numpy as np
from segcli.draw.annotators import OverlayAnnotator
from segcli.figures.compare.figure import compose_figure, count_lines
from tests.factories import make_instances
image = np.zeros((60, 80, 3), np.uint8)
for name in {NAMES!r}:
    inst = dataclasses.replace(make_instances(("cube", 0.9, (10, 10, 40, 40))), class_names=(name,))
    OverlayAnnotator().annotate(image, inst)
    compose_figure([(name, image)], footer=[name])
print("drawn")
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0 and done.stdout.strip() == "drawn", done.stderr[-2000:]


@pytest.mark.parametrize("damaged", ["a.png.json", "run.json", "both"])
def test_output_files_nested_too_deeply_are_redone_not_a_crash(tmp_path: Path, damaged: str) -> None:
    """A per-image JSON or run.json of ``[[[[...]]]]``: Python's parser raises RecursionError,
    which used to stop the resume with "unexpected RecursionError"."""
    write_images(tmp_path / "in", {"a.png": 10, "b.png": 11})
    out = tmp_path / "out"
    assert run_batch(tmp_path / "in", out, FakeSegmenter).exit_code == 0
    deep = "[" * 100_000 + "]" * 100_000
    for name in ("a.png.json", "run.json") if damaged == "both" else (damaged,):
        (out / name).write_text(deep)
    outcome = run_batch(tmp_path / "in", out, FakeSegmenter)
    counts = outcome.summary["counts"]
    assert outcome.exit_code == 0 and counts["done"] == (0 if damaged == "run.json" else 1)
    assert json.loads((out / "a.png.json").read_text())["image"]["path"].endswith("a.png")
