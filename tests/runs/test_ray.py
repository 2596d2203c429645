"""`segcli batch --engine ray`: same outputs and promises as the local engine, on a local
Ray instance with 2 CPUs (one per session).

One run loads the bundled blocks model at a tiny size in Ray workers (byte-identical to the
local engine, with default resources); every other run uses the torch-free fakes of
:mod:`tests.ray_fakes`, compared with a local-engine run of the same fake, so that a worker
starts (and restarts) without importing torch."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import pytest
from typer.testing import CliRunner

from segcli.cli import app
from segcli.io.files import temp_name
from segcli.outputs.plans import OUTPUT_MARKER, mark_output
from segcli.runs.batch import BatchEvents, BatchOptions, run_batch
from segcli.runs.discovery import read_list
from segcli.runs.engines.base import ItemResult
from segcli.runs.runfiles import LOCK_NAME
from tests.conftest import BATCH_FAST as FAST
from tests.conftest import REPO
from tests.fakes import FAKE_SETTINGS, FakeSegmenter, write_images
from tests.ray_fakes import KILL_WIDTH, MEMORY_ERROR_WIDTH, STALL_WIDTH, FakeSpec, use_fakes_in_cli

pytestmark = pytest.mark.ray
runner = CliRunner()


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs; workers import this repo (the test fakes live here)."""
    import ray  # the test extra installs it: a missing Ray fails here (deselect with -m "not ray")

    # The instance's processes inherit this environment: workers find the test fakes. (A
    # runtime_env would start every worker through one more interpreter, setup_worker.py:
    # the first job took 9.7 s instead of 6.4 s, each later one ~0.6 s more.)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    ray.shutdown()


def _scenes(folder: Path, n: int, size: tuple[int, int] = (96, 72), first: int = 0) -> Path:
    from segcli.models.blocks.scenes import render_scene

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
    """The Ray engine with every CPU reserved by the actor pool: one worker of 2 CPUs (one
    actor to start, importing torchvision once; the default, 2 x 1, is checked by layout)."""
    out = tmp_path_factory.mktemp("ray") / "out"
    with watchdog(180):  # the pitfall: a starved Ray Data job hangs forever
        result = _run(tree, "-o", out, *FAST, *SAVE_ALL, "--engine", "ray", "--cpus-per-worker", "2")
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


@pytest.fixture()
def fake_cli() -> Iterator[None]:
    """``segcli batch`` on fakes: FakeSegmenter in this process, FakeSpec in Ray workers."""
    undo = use_fakes_in_cli()
    yield
    undo()


def _env() -> dict[str, str]:
    """This environment, with this repo first on PYTHONPATH (for ``tests.*``)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


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


def test_default_resources_reserve_every_cpu_and_finish(ray_out: Path, ray_cluster: Any) -> None:
    from segcli.runs.engines.base import Job
    from segcli.runs.engines.ray import RayEngine

    engine = json.loads((ray_out / "run.json").read_text())["engine"]
    assert engine["name"] == "ray" and engine["cluster"]["CPU"] == 2
    assert engine["workers"] * engine["cpus_per_worker"] == 2, "the pool holds every CPU, yet it finished"
    assert engine["gpus_per_worker"] == 0 and engine["rows_per_task"] >= 1
    # the default layout on this cluster reserves every CPU too: a worker per CPU
    job = Job.for_segmenter(FakeSegmenter(), ["json"])
    assert RayEngine(FakeSpec())._layout(ray_cluster, 7, job) == (2, 1.0, 0.0, 1)


# --------------------------------------------------------------------------- resume, bad inputs
def test_resume_bad_files_and_from_list_on_both_engines(
    tmp_path: Path, fake_cli: None, ray_cluster: Any
) -> None:
    """``--from-list`` (nested, a non-ASCII name, bad and missing files) on the local engine
    (the reference), then the Ray engine resumes that output folder with one image's JSON
    deleted and a temp file a killed worker left: it redoes that image alone, fails the bad
    files again with the same reasons (naming the node for a missing one), removes the temp
    file, and refuses other settings."""
    write_images(tmp_path / "data", {"a/scene000.png": 20, "a/szène ü.png": 21, "b/c/scene002.png": 22})
    root = tmp_path / "data" / "a"
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    listing = tmp_path / "lists" / "inputs.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# relative to this file's folder\n"
        "../data/a/scene000.png\n\n"
        f"  {root / 'szène ü.png'}  \n"
        "../data/a/scene000.png\n"  # a repeat counts once
        "../data/b/c/scene002.png\n"
        "../data/a/broken.jpg\n"
        "../data/a/empty.png\n"
        "../data/a/missing.png\n",
        encoding="utf-8",
    )
    assert read_list(listing) == (
        tmp_path / "data",
        [root / n for n in ("scene000.png", "szène ü.png")]
        + [tmp_path / "data" / "b" / "c" / "scene002.png"]
        + [root / n for n in ("broken.jpg", "empty.png", "missing.png")],
    )
    outputs = sorted(
        f"{key}{suffix}"
        for key in ("a/scene000.png", "a/szène ü.png", "b/c/scene002.png")
        for suffix in (".json", ".overlay.png")
    )
    runs = {}
    reference = tmp_path / "out-local"
    out = tmp_path / "out-ray"
    for engine, workers, folder in (("local", (), reference), ("ray", ("--workers", "1"), out)):
        if engine == "ray":  # resume the local engine's folder, one image undone
            shutil.copytree(reference, out)
            (out / "b" / "c" / "scene002.png.json").unlink()
            (out / "b" / "c" / temp_name("scene002.png.overlay.png")).write_text("left by a killed run")
        result = _run("--from-list", listing, "-o", folder, *FAST, "--engine", engine, *workers)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
        assert len(lines) == 3, result.stderr
        runs[engine] = json.loads((folder / "run.json").read_text())
        assert sorted(_snapshot(folder)) == outputs
    assert runs["local"]["counts"] == {**runs["local"]["counts"], "done": 3, "failed": 3}
    assert runs["ray"]["counts"] == {**runs["ray"]["counts"], "done": 1, "skipped": 2, "failed": 3}
    assert runs["ray"]["engine"]["name"] == "ray"
    assert _snapshot(out) == _snapshot(reference) and not list(out.rglob("*.part"))
    reasons = {e: {f["path"]: f["reason"] for f in runs[e]["failed"]} for e in runs}
    missing = str(root / "missing.png")
    for path in (str(root / "broken.jpg"), str(root / "empty.png")):
        assert reasons["ray"][path] == reasons["local"][path]
    assert reasons["local"][missing] == f"{missing}: no such file"
    assert reasons["ray"][missing].startswith(f"{missing}: no such file on node ")
    # (--overwrite on the Ray engine: test_killed_workers_are_replaced_and_...)
    result = _run("--from-list", listing, "-o", out, *FAST, "--engine", "ray", "--nms-iou", "0.3")
    assert result.exit_code == 1
    assert "other settings" in result.stderr and "--overwrite" in result.stderr


def test_usage_errors_exit_2_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.inference.segmenter

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(segcli.inference.segmenter, "Segmenter", refuse)
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
    # the --engine ray cases are checked after Ray imports (without Ray: the last case below);
    # the test extra installs Ray, so none of them is left out
    assert importlib.util.find_spec("ray") is not None, 'needs the ray extra: pip install -e ".[test]"'
    for extra, message in cases.items():
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
    """At run time: a whole local ``batch`` (on a fake segmenter: the model modules are
    covered by the static check below) leaves Ray unimported."""
    write_images(tmp_path / "in", {"a.png": 20, "sub/b.png": 21})
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from segcli.cli import app\n"
        "from tests.ray_fakes import use_fakes_in_cli\n"
        "use_fakes_in_cli()\n"
        f"args = ['batch', {str(tmp_path / 'in')!r}, '-o', {str(tmp_path / 'out')!r}, *{FAST!r}]\n"
        "r = CliRunner().invoke(app, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "out" / "a.png.json").is_file() and (tmp_path / "out" / "sub" / "b.png.json").is_file()


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(absolute module name, whether at module level) of every import in ``path``; an
    import inside a function (or under ``if TYPE_CHECKING``) is not at module level."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield from ((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                yield base, top
                yield from ((f"{base}.{alias.name}", top) for alias in child.names)  # from pkg import mod
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from visit(ast.Module(body=child.body, type_ignores=[]), False)
                yield from visit(ast.Module(body=child.orelse, type_ignores=[]), top)
            else:
                deferred = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from visit(child, top and not deferred)

    yield from visit(ast.parse(path.read_text(encoding="utf-8")), True)


def test_only_the_ray_engine_imports_ray_and_only_when_asked() -> None:
    """Statically, for every module of segcli (the model modules included): only
    ``segcli/runs/engines/ray.py`` (batch) and ``segcli/train/distributed.py`` (train's Ray
    Train engine) import Ray, inside their functions, and only the engine selection
    (``segcli/runs/engines/__init__.py``) imports the batch engine's module."""
    ray_engine = REPO / "segcli" / "runs" / "engines" / "ray.py"
    ray_users = {ray_engine, REPO / "segcli" / "train" / "distributed.py"}
    modules = sorted((REPO / "segcli").rglob("*.py"))
    assert ray_engine in modules and len(modules) > 20
    imports_ray, imports_engine_at_top, imports_engine = [], [], []
    for path in modules:
        for name, top in _imports(path):
            where = path.relative_to(REPO).as_posix()
            if (name == "ray" or name.startswith("ray.")) and (top or path not in ray_users):
                imports_ray.append(f"{where}: {name}")  # the engine imports Ray when it runs
            if name == "segcli.runs.engines.ray":
                (imports_engine_at_top if top else imports_engine).append(where)
    assert imports_ray == []
    # the one place an engine is chosen imports the Ray engine's module (which imports no Ray
    # at module level: checked above); nothing else imports it at all
    assert imports_engine_at_top == ["segcli/runs/engines/__init__.py"]
    assert imports_engine == []


# --------------------------------------------------------------------------- faults
class Results(BatchEvents):
    def __init__(self) -> None:
        self.results: list[ItemResult] = []

    def result(self, result: ItemResult) -> None:
        self.results.append(result)


def _local_fake_run(folder: Path, out: Path, options: BatchOptions | None = None) -> dict[str, bytes]:
    """The reference: the local engine on the same fake; its per-image files."""
    outcome = run_batch(folder, out, lambda: FakeSegmenter(settings=FAKE_SETTINGS), options=options)
    assert outcome.exit_code == 0
    return _snapshot(out)


def test_killed_workers_are_replaced_and_an_image_that_kills_its_worker_fails_alone(
    tree: Path, tmp_path: Path, ray_cluster: Any
) -> None:
    """``--overwrite`` over a complete folder, on one worker (the job can only finish if Ray
    replaces it), with an actor killed from outside mid-image, an image that kills each
    worker segmenting it and one that runs out of memory: every other image is rewritten
    (new files, the local engine's bytes), every image is reported exactly once, and the
    two bad images fail alone."""
    from segcli.runs.engines.ray import MAX_ATTEMPTS, RayEngine

    folder = tmp_path / "in"
    shutil.copytree(tree, folder)
    write_images(folder, {"stall.png": STALL_WIDTH})  # the first worker to meet it hangs: killed below
    save = ("overlay", "json", "masks", "idmap")
    out = tmp_path / "out"
    reference = _local_fake_run(folder, out, BatchOptions(save=save))
    inodes = {key: (out / key).stat().st_ino for key in reference}
    write_images(folder, {"killer.png": KILL_WIDTH, "oom.png": MEMORY_ERROR_WIDTH})
    pids = tmp_path / "pids"
    pids.mkdir()
    spec = FakeSpec(settings=FAKE_SETTINGS, record=str(pids))
    killed: list[int] = []

    def kill_a_worker() -> None:  # kill -9 the actor process hanging on stall.png
        deadline = time.monotonic() + 120
        while not (pids / "stalled").is_file() and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = int((pids / "stalled").read_text())
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    events = Results()
    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        with watchdog(240):
            outcome = run_batch(
                folder,
                out,
                lambda: FakeSegmenter(settings=FAKE_SETTINGS),  # the driver's: no pid file
                options=BatchOptions(save=save, overwrite=True),
                engine=lambda seg: RayEngine(spec, workers=1, rows_per_task=4),
                events=events,
            )
    finally:
        killer.join()
    assert outcome.exit_code == 1 and outcome.summary["status"] == "done_with_failures"
    assert outcome.summary["counts"]["done"] == 8 and outcome.summary["counts"]["skipped"] == 0
    keys = [r.plan.key for r in events.results]
    assert len(keys) == 10 and len(set(keys)) == 10, "every image reported exactly once"
    status = {r.plan.key: (r.status, r.reason) for r in events.results}
    assert sorted(k for k, (s, _) in status.items() if s == "failed") == ["killer.png", "oom.png"]
    assert f"died {MAX_ATTEMPTS} times" in status["killer.png"][1] and "on node" in status["killer.png"][1]
    assert "out of memory in the model" in status["oom.png"][1]
    assert len(killed) == 1, "one worker killed from outside"
    assert len(list(pids.glob("*.pid"))) >= 2 + MAX_ATTEMPTS, "Ray restarted each killed actor"
    assert _snapshot(out) == reference, "none missing, none different, none from the failed images"
    kept = [key for key, inode in inodes.items() if (out / key).stat().st_ino == inode]
    assert kept == [], "every output was written again (a new file renamed into place)"
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_ctrl_c_stops_the_ray_job_and_a_rerun_resumes(
    tmp_path: Path, ray_cluster: Any, request: pytest.FixtureRequest
) -> None:
    """The real CLI (in this process: Ray's driver here is what a shell's Ctrl-C reaches),
    on fakes that take 0.3 s an image in the Ray worker, so it is still busy when the driver
    has stopped. SIGINT comes from outside the run (a thread), as from a terminal."""
    n = 16
    folder = tmp_path / "in"
    write_images(folder, {f"scene{i:03d}.png": 20 + i for i in range(n)})
    out = tmp_path / "out"
    main = threading.main_thread().ident
    assert main is not None

    def ctrl_c() -> None:
        deadline = time.monotonic() + 120
        # run.json is written at the start: wait for an image's JSON, so Ctrl-C lands mid-job
        while not list(out.glob("scene*.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)

    undo = use_fakes_in_cli(delay=0.3)  # for the rerun too (the local engine: no delay)
    request.addfinalizer(undo)
    sender = threading.Thread(target=ctrl_c)
    sender.start()
    try:
        with watchdog(180):
            result = _run(folder, "-o", out, *FAST, "--engine", "ray", "--workers", "1")
    finally:
        sender.join()
    assert result.exit_code == 130, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["counts"]["done"] < n
    assert run["engine"]["name"] == "ray"
    # The job's actors are gone: the cluster's CPUs are free again.
    deadline = time.monotonic() + 60
    while ray_cluster.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray_cluster.available_resources().get("CPU", 0) == 2
    finished = len(list(out.glob("scene*.json")))  # written by workers, reported or not
    assert 1 <= finished < n and not list(out.rglob("*.part"))
    # The rerun skips what the workers finished (skipping is run_batch's, above the engines).
    result = _run(folder, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    rerun = json.loads((out / "run.json").read_text())["counts"]
    assert rerun["skipped"] == finished and rerun["done"] == n - finished, "nothing done is redone"
    assert len(list(out.glob("scene*.json"))) == n and not list(out.rglob("*.part"))


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
    from segcli.runs.engines.ray import RayEngine

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = FakeRay(initialized=False)
    assert RayEngine(FakeSpec())._connect(fake) is True  # type: ignore[arg-type]
    assert fake.calls[0][1]["address"] == "local", "no address, no RAY_ADDRESS: a new local instance"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    fake = FakeRay(initialized=False)
    RayEngine(FakeSpec(), connect_timeout=None)._connect(fake)  # type: ignore[arg-type]
    assert fake.calls[0][1]["address"] == "10.0.0.1:6379"
    fake = FakeRay(initialized=False)
    RayEngine(FakeSpec(), address="head:10001", connect_timeout=None)._connect(fake)  # type: ignore[arg-type]
    assert fake.calls[0][1]["address"] == "head:10001"
    fake = FakeRay(initialized=True)
    assert RayEngine(FakeSpec())._connect(fake) is False and fake.calls == []  # type: ignore[arg-type]


def test_resources_that_do_not_fit_are_refused(ray_cluster: Any) -> None:
    from segcli.core.errors import SegcliError
    from segcli.runs.engines.base import Job
    from segcli.runs.engines.ray import RayEngine

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

    import segcli.runs.engines.ray as ray_engine
    from segcli.outputs.plans import OutputPlan
    from segcli.runs.engines.base import Job

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
    mark_output(tmp_path / "out")  # as run_batch does before any engine runs
    for on in ("init", "shutdown"):
        orphan = tmp_path / "out" / temp_name("a.png.json")
        orphan.write_text("left by a killed worker")
        fake = InterruptingRay(on)
        monkeypatch.setattr(ray_engine, "import_ray", lambda fake=fake: fake)
        engine = Engine(FakeSpec())
        assert engine.run(plans, job, lambda result: None) is True, on
        assert [name for name, _ in fake.calls] == ["init", "shutdown"] + ["shutdown"] * (on == "shutdown")
        assert not orphan.exists(), "the cleanup still ran"
        assert engine.streamed == (on == "shutdown")


# --------------------------------------------------------------------------- sliced inference (--tile)
def test_ray_engine_tiles_like_the_local_engine(tmp_path: Path, ray_cluster: Any) -> None:
    """The Segmenter inside each Ray actor tiles as the local one does: same instances."""
    folder = _scenes(tmp_path / "in", 2, size=(160, 120))
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        extra = ["--engine", "ray", "--cpus-per-worker", "2"] if engine == "ray" else []
        with watchdog(180):
            result = _run(folder, "-o", out, *FAST, "--tile", "64", *extra)
        assert result.exit_code == 0, result.output
        records = {}
        for path in sorted(out.glob("*.json")):
            if path.name.startswith("scene"):
                record = json.loads(path.read_text())
                del record["tiling"]["seconds"]  # the only thing that differs: time
                records[path.name] = record
        runs[engine] = records
    assert len(runs["local"]) == 2 and runs["ray"] == runs["local"]
    assert all(r["tiling"]["tiles"] > 1 for r in runs["ray"].values())
