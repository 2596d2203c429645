"""`segcli batch --engine ray`: same outputs and promises as the local engine, on a local
Ray instance with 2 CPUs (one per session) and the bundled blocks model at a tiny size."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.batch import LOCK_NAME, BatchEvents, BatchOptions, read_list, run_batch
from segcli.cli import app
from segcli.engines import ItemResult, SegmenterSpec
from segcli.instances import Instances
from segcli.settings import Settings
from segcli.writers import OUTPUT_MARKER
from tests.conftest import BATCH_FAST as FAST
from tests.conftest import REPO

pytestmark = pytest.mark.ray
runner = CliRunner()
TINY = Settings(score_threshold=0.0, max_detections=4, min_size=64, max_size=96)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs; workers import this repo (the test fakes live here)."""
    ray = pytest.importorskip("ray", reason='needs the ray extra: pip install -e ".[test,ray]"')
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield ray
    ray.shutdown()


def _scenes(folder: Path, n: int, size: tuple[int, int] = (96, 72), first: int = 0) -> Path:
    from segcli.blocks.scenes import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + n):
        image = render_scene(5000 + i, size=size).image
        cv2.imwrite(str(folder / f"scene{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nested block scenes, one with a non-ASCII name and a JPEG."""
    root = tmp_path_factory.mktemp("tree") / "in"
    _scenes(root, 3)
    _scenes(root / "sub" / "deeper", 3, first=3)
    (root / "scene000.png").rename(root / "szène ü.png")
    image = cv2.imread(str(root / "scene001.png"))
    cv2.imwrite(str(root / "sub" / "photo.jpg"), image)
    return root


SAVE_ALL = ["--save", "overlay,json,masks,idmap"]


RUN_FILES = ("run.json", "coco.json", "coco-results.json", OUTPUT_MARKER, LOCK_NAME)
"""Files of the whole run (compared on their own; the lock holds the pid), not of one image."""


def _snapshot(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not (p.parent == out and p.name in RUN_FILES)
    }


def _coco(out: Path) -> dict[str, Any]:
    coco = json.loads((out / "coco.json").read_text())
    coco.pop("info")  # holds the date
    return coco


def _run(*args: str | Path) -> Any:
    return runner.invoke(app, ["batch", *map(str, args)])


@pytest.fixture(scope="module")
def local_out(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = _run(tree, "-o", out, *FAST, *SAVE_ALL)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def ray_out(tree: Path, tmp_path_factory: pytest.TempPathFactory, ray_cluster: Any) -> Path:
    """The Ray engine with default resources (every CPU reserved by the actor pool)."""
    out = tmp_path_factory.mktemp("ray") / "out"
    with watchdog(180):  # the pitfall: a starved Ray Data job hangs forever
        result = _run(tree, "-o", out, *FAST, *SAVE_ALL, "--engine", "ray")
    assert result.exit_code == 0, result.output
    return out


class watchdog:
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def expire(signum: int, frame: object) -> None:
            raise TimeoutError(f"still running after {self.seconds} s: the Ray job hangs")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


# --------------------------------------------------------------------------- same outputs
def test_same_outputs_as_the_local_engine(local_out: Path, ray_out: Path) -> None:
    local, ray = _snapshot(local_out), _snapshot(ray_out)
    assert sorted(ray) == sorted(local)
    assert any(k.endswith(".masks/000-cube.png") for k in ray), sorted(ray)
    assert any(k.endswith(".idmap.png") for k in ray) and any(k.endswith(".idmap.preview.png") for k in ray)
    markers = [(out / OUTPUT_MARKER).read_bytes() for out in (local_out, ray_out)]
    assert markers[0] == markers[1] and all((out / LOCK_NAME).is_file() for out in (local_out, ray_out))
    assert [k for k in ray if ray[k] != local[k]] == [], "byte-identical JSON, overlays, masks, id maps"
    assert _coco(ray_out) == _coco(local_out)
    results = [out / "coco-results.json" for out in (local_out, ray_out)]
    assert all(p.is_file() for p in results)
    assert results[0].read_bytes() == results[1].read_bytes()
    runs = [json.loads((out / "run.json").read_text()) for out in (local_out, ray_out)]
    for key in ("status", "counts", "settings", "model", "save", "failed"):
        assert runs[0][key] == runs[1][key], key
    assert runs[0]["counts"]["done"] == 7


def test_default_resources_reserve_every_cpu_and_finish(ray_out: Path) -> None:
    engine = json.loads((ray_out / "run.json").read_text())["engine"]
    assert engine["name"] == "ray" and engine["cluster"]["CPU"] == 2
    assert engine["workers"] * engine["cpus_per_worker"] == 2, "the pool holds every CPU, yet it finished"
    assert engine["gpus_per_worker"] == 0 and engine["rows_per_task"] >= 1


def test_resume_overwrite_and_settings_refusal(tree: Path, ray_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import shutil

    shutil.copytree(ray_out, out)
    before = _snapshot(out)
    (out / "sub" / "photo.jpg.json").unlink()  # one incomplete input
    (out / "sub" / ".photo.jpg.overlay.jpg.x1.part").write_text("left by a killed run")
    result = _run(tree, "-o", out, *FAST, *SAVE_ALL, "--engine", "ray", "--workers", "1")
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["done"] == 1 and run["counts"]["skipped"] == 6
    assert _snapshot(out) == before and not list(out.rglob("*.part"))

    result = _run(tree, "-o", out, *FAST, *SAVE_ALL, "--engine", "ray", "--overwrite", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["counts"]["done"] == 7
    assert _snapshot(out) == before

    result = _run(tree, "-o", out, *FAST, *SAVE_ALL, "--engine", "ray", "--nms-iou", "0.3")
    assert result.exit_code == 1
    assert "other settings" in result.stderr and "--overwrite" in result.stderr


# --------------------------------------------------------------------------- bad inputs
def test_bad_files_and_from_list_on_both_engines(tmp_path: Path, ray_cluster: Any) -> None:
    root = _scenes(tmp_path / "data" / "a", 2)
    _scenes(tmp_path / "data" / "b" / "c", 1, first=2)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    listing = tmp_path / "lists" / "inputs.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# relative to this file's folder\n"
        "../data/a/scene000.png\n\n"
        f"  {root / 'scene001.png'}  \n"
        "../data/a/scene000.png\n"  # a repeat counts once
        "../data/b/c/scene002.png\n"
        "../data/a/broken.jpg\n"
        "../data/a/empty.png\n"
        "../data/a/missing.png\n"
    )
    assert read_list(listing) == (
        tmp_path / "data",
        [root / n for n in ("scene000.png", "scene001.png")]
        + [tmp_path / "data" / "b" / "c" / "scene002.png"]
        + [root / n for n in ("broken.jpg", "empty.png", "missing.png")],
    )
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"out-{engine}"
        result = _run("--from-list", listing, "-o", out, *FAST, "--engine", engine)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
        assert len(lines) == 3, result.stderr
        runs[engine] = json.loads((out / "run.json").read_text())
        assert runs[engine]["counts"] == {**runs[engine]["counts"], "done": 3, "failed": 3}
        assert sorted(_snapshot(out)) == [
            "a/scene000.png.json",
            "a/scene000.png.overlay.png",
            "a/scene001.png.json",
            "a/scene001.png.overlay.png",
            "b/c/scene002.png.json",
            "b/c/scene002.png.overlay.png",
        ]
    assert _snapshot(tmp_path / "out-ray") == _snapshot(tmp_path / "out-local")
    reasons = {e: {f["path"]: f["reason"] for f in runs[e]["failed"]} for e in runs}
    missing = str(root / "missing.png")
    for path in (str(root / "broken.jpg"), str(root / "empty.png")):
        assert reasons["ray"][path] == reasons["local"][path]
    assert reasons["local"][missing] == f"{missing}: no such file"
    assert reasons["ray"][missing].startswith(f"{missing}: no such file on node ")


def test_usage_errors_exit_2_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.predictor

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(segcli.predictor, "Segmenter", refuse)
    folder = _scenes(tmp_path / "in", 1)
    listing = tmp_path / "list.txt"
    listing.write_text("# nothing\n")
    cases = {
        ("--workers", "2"): "--workers needs --engine ray",
        ("--from-list", str(listing)): "give a FOLDER or --from-list FILE",
        ("--engine", "spark"): "unknown --engine 'spark'",
        ("--engine", "ray", "--workers", "0"): "--workers must be at least 1",
        ("--engine", "ray", "--cpus-per-worker", "0"): "--cpus-per-worker must be above 0",
    }
    ray_installed = importlib.util.find_spec("ray") is not None
    for extra, message in cases.items():
        if "ray" in extra and not ray_installed:
            continue  # checked after Ray imports; without Ray see the last case below
        result = _run(folder, "-o", tmp_path / "out", *FAST, *extra)
        assert result.exit_code == 2 and message in result.stderr, (extra, result.stderr)
    result = _run("--from-list", listing, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 2 and "names no files" in result.stderr
    # Ray not installed: one line saying how to install it.
    monkeypatch.setitem(sys.modules, "ray", None)
    result = _run(folder, "-o", tmp_path / "out", *FAST, "--engine", "ray")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().count("\n") == 0 and 'pip install "segcli[ray]"' in result.stderr


def test_nothing_imports_ray_without_engine_ray(tmp_path: Path) -> None:
    folder = _scenes(tmp_path / "in", 1)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from segcli.cli import app\n"
        f"args = ['batch', {str(folder)!r}, '-o', {str(tmp_path / 'out')!r}, *{FAST!r}]\n"
        "r = CliRunner().invoke(app, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "out" / "scene000.png.json").is_file()


# --------------------------------------------------------------------------- faults
@dataclass(frozen=True)
class PidSpec:
    """The real blocks segmenter, slowed down, recording each worker's pid (picklable)."""

    folder: str
    delay: float = 0.4

    def build(self, *, progress: bool = False) -> Any:
        segmenter = SegmenterSpec("blocks", device="cpu", settings=TINY).build()
        Path(self.folder, f"{os.getpid()}.pid").write_text("")
        return SlowSegmenter(segmenter, self.delay, Path(self.folder, f"{os.getpid()}.busy"))


class SlowSegmenter:
    """Marks its process busy (a ``PID.busy`` file) while it segments."""

    def __init__(self, inner: Any, delay: float, busy: Path) -> None:
        self.inner, self.delay, self.busy = inner, delay, busy
        self.settings = inner.settings
        self.categories = inner.categories

    def model_info(self) -> dict[str, Any]:
        return self.inner.model_info()

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        self.busy.write_text("")
        time.sleep(self.delay)
        out = self.inner(images)
        self.busy.unlink()
        return out


class Results(BatchEvents):
    def __init__(self, on_first: Any = None) -> None:
        self.results: list[ItemResult] = []
        self.on_first = on_first

    def result(self, result: ItemResult) -> None:
        self.results.append(result)
        if len(self.results) == 1 and self.on_first is not None:
            self.on_first()


def test_a_killed_worker_is_replaced_and_every_image_is_done_once(
    tree: Path, local_out: Path, tmp_path: Path, ray_cluster: Any
) -> None:
    from segcli.engines.ray import RayEngine

    pids = tmp_path / "pids"
    pids.mkdir()
    spec = PidSpec(str(pids))
    killed: list[int] = []

    def kill_a_worker() -> None:  # kill -9 an actor process in the middle of an image
        deadline = time.monotonic() + 60
        while not list(pids.glob("*.busy")) and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = int(sorted(pids.glob("*.busy"))[0].stem)
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    events = Results(on_first=kill_a_worker)
    out = tmp_path / "out"
    with watchdog(240):
        outcome = run_batch(
            tree,
            out,
            SegmenterSpec("blocks", device="cpu", settings=TINY).build,  # the driver's: no pid file
            options=BatchOptions(save=("overlay", "json", "masks", "idmap")),
            engine=lambda seg: RayEngine(spec, workers=2, rows_per_task=1),
            events=events,
        )
    assert outcome.exit_code == 0 and outcome.summary["status"] == "complete"
    keys = [r.plan.key for r in events.results]
    assert len(keys) == 7 and len(set(keys)) == 7, "every image reported exactly once"
    assert all(r.status == "done" for r in events.results)
    assert len(killed) == 1 and len(list(pids.glob("*.pid"))) >= 3, "Ray restarted the killed actor"
    assert _snapshot(out) == _snapshot(local_out), "none missing, none different"
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


@dataclass(frozen=True)
class FakeSpec:
    """A segmenter without a model: an image 13 pixels wide kills its worker process (as the
    OOM killer does), one 17 pixels wide raises MemoryError in the model."""

    def build(self, *, progress: bool = False) -> Any:
        return FakeSegmenter()


class FakeSegmenter:
    settings = TINY
    categories = ("__background__", "thing")

    def model_info(self) -> dict[str, Any]:
        return {"name": "fake", "architecture": "none", "weights": "none", "sha256": "0" * 64}

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        out = []
        for image in images:
            h, w = image.shape[:2]
            if w == 13:
                os.kill(os.getpid(), signal.SIGKILL)
            if w == 17:
                raise MemoryError("fake allocation of 12 GB failed")
            out.append(Instances((h, w), np.zeros((0, 4)), [], [], (), (), np.zeros((0, 4))))
        return out


def test_an_image_that_kills_its_worker_fails_alone(tmp_path: Path, ray_cluster: Any) -> None:
    from segcli.engines.ray import MAX_ATTEMPTS, RayEngine

    folder = tmp_path / "in"
    folder.mkdir()
    for i, width in enumerate([20, 21, 13, 22, 17, 23, 24, 25]):
        cv2.imwrite(str(folder / f"img{i}.png"), np.full((10, width, 3), 100, np.uint8))
    events = Results()
    with watchdog(240):
        outcome = run_batch(
            folder,
            tmp_path / "out",
            FakeSegmenter,
            engine=lambda seg: RayEngine(FakeSpec(), workers=1, rows_per_task=4),
            events=events,
        )
    assert outcome.exit_code == 1 and outcome.summary["status"] == "done_with_failures"
    status = {r.plan.key: (r.status, r.reason) for r in events.results}
    assert len(events.results) == 8 == len(status)
    assert sorted(k for k, (s, _) in status.items() if s == "failed") == ["img2.png", "img4.png"]
    assert f"died {MAX_ATTEMPTS} times" in status["img2.png"][1] and "on node" in status["img2.png"][1]
    assert "out of memory in the model" in status["img4.png"][1]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".part")]


def test_ctrl_c_stops_the_ray_job_and_a_rerun_resumes(tmp_path: Path, ray_cluster: Any) -> None:
    folder = _scenes(tmp_path / "in", 40, size=(64, 48))
    out = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "segcli", "batch", str(folder), "-o", str(out), *FAST]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [*cmd, "--engine", "ray", "--ray-address", address, "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    # run.json is written at the start: wait for an image's JSON, so Ctrl-C lands mid-job
    while not list(out.glob("scene*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["counts"]["done"] < 40
    finished = len(list(out.glob("scene*.json")))  # written by workers, reported or not
    assert 1 <= finished < 40 and not list(out.rglob("*.part"))
    # The job's actors are gone: the cluster's CPUs are free again.
    deadline = time.monotonic() + 60
    while ray_cluster.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_cluster.available_resources().get("CPU", 0) == 2
    result = _run(folder, "-o", out, *FAST, "--engine", "ray", "--workers", "1")
    assert result.exit_code == 0, result.output
    rerun = json.loads((out / "run.json").read_text())["counts"]
    assert rerun["skipped"] == finished and rerun["done"] == 40 - finished, "nothing done is redone"
    assert len(list(out.glob("scene*.json"))) == 40 and not list(out.rglob("*.part"))


# --------------------------------------------------------------------------- connecting
class FakeRay(SimpleNamespace):
    def __init__(self, initialized: bool) -> None:
        super().__init__(calls=[], initialized=initialized)

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **options: Any) -> None:
        self.calls.append(("init", options))

    def shutdown(self) -> None:
        self.calls.append(("shutdown", {}))


def test_address_choice_and_only_what_was_started_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    from segcli.engines.ray import RayEngine

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = FakeRay(initialized=False)
    assert RayEngine(FakeSpec())._connect(fake) is True  # type: ignore[arg-type]
    assert fake.calls[0][1]["address"] == "local", "no address, no RAY_ADDRESS: a new local instance"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    fake = FakeRay(initialized=False)
    RayEngine(FakeSpec())._connect(fake)  # type: ignore[arg-type]
    assert fake.calls[0][1]["address"] == "10.0.0.1:6379"
    fake = FakeRay(initialized=False)
    RayEngine(FakeSpec(), address="ray://head:10001")._connect(fake)  # type: ignore[arg-type]
    assert fake.calls[0][1]["address"] == "ray://head:10001"
    fake = FakeRay(initialized=True)
    assert RayEngine(FakeSpec())._connect(fake) is False and fake.calls == []  # type: ignore[arg-type]


def test_resources_that_do_not_fit_are_refused(ray_cluster: Any) -> None:
    from segcli.engines import Job
    from segcli.engines.ray import RayEngine
    from segcli.errors import SegcliError

    job = Job.for_segmenter(FakeSegmenter(), ["json"])
    with pytest.raises(SegcliError, match="needs 3 CPUs; the Ray cluster has 2"):
        RayEngine(FakeSpec(), workers=3)._layout(ray_cluster, 10, job)
    with pytest.raises(SegcliError, match="the Ray cluster has no GPUs"):
        RayEngine(FakeSpec(), gpus_per_worker=1)._layout(ray_cluster, 10, job)
    assert RayEngine(FakeSpec(), cpus_per_worker=0.5)._layout(ray_cluster, 100, job) == (4, 0.5, 0.0, 4)


class InterruptingRay(FakeRay):
    """Ctrl-C during ``ray.init`` (``on="init"``) or during the first ``ray.shutdown``."""

    def __init__(self, on: str) -> None:
        super().__init__(initialized=False)
        self.on = on

    def init(self, **options: Any) -> None:
        super().init(**options)
        if self.on == "init":
            raise KeyboardInterrupt
        self.initialized = True

    def shutdown(self) -> None:
        super().shutdown()
        self.initialized = False
        if self.on == "shutdown" and len(self.calls) == 2:
            raise KeyboardInterrupt


def test_ctrl_c_anywhere_in_the_engine_returns_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt while connecting or shutting down ends as ``run`` returning True (so
    run_batch writes run.json "interrupted"), never as an escaping KeyboardInterrupt."""
    import contextlib

    import segcli.engines.ray as ray_engine
    from segcli.engines import Job
    from segcli.writers import OutputPlan

    class Engine(ray_engine.RayEngine):
        """Streams nothing: no cluster is needed for the connect and shutdown paths."""

        streamed = False

        def _layout(self, ray: Any, todo: int, job: Job) -> tuple[int, float, float, int]:
            return 1, 1.0, 0.0, 1

        def _stream(self, ray: Any, *args: Any) -> bool:
            self.streamed = True
            return False

    monkeypatch.setattr(ray_engine, "quiet_ray_data", lambda ray: contextlib.nullcontext())
    job = Job.for_segmenter(FakeSegmenter(), ["json"])
    plans = [OutputPlan(source=tmp_path / "a.png", key="a.png", base=tmp_path / "out" / "a.png")]
    (tmp_path / "out").mkdir()
    for on in ("init", "shutdown"):
        orphan = tmp_path / "out" / ".a.png.json.x1.part"
        orphan.write_text("left by a killed worker")
        fake = InterruptingRay(on)
        monkeypatch.setattr(ray_engine, "import_ray", lambda fake=fake: fake)
        engine = Engine(FakeSpec())
        assert engine.run(plans, job, lambda result: None) is True, on
        assert [name for name, _ in fake.calls] == ["init", "shutdown"] + ["shutdown"] * (on == "shutdown")
        assert not orphan.exists(), "the cleanup still ran"
        assert engine.streamed == (on == "shutdown")
