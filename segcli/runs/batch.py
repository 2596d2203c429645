"""One batch run in the library: discover -> lock the output folder -> plan -> stale temp
cleanup -> previous-run check -> ``run.json`` (status "running") -> run (through an engine)
-> ``run.json`` / ``coco.json``.

:func:`run_batch` prints nothing; the CLI and ``segcli demo`` show its events.
The per-input work runs in an engine (``segcli.runs.engines``): today the local
threaded pipeline; the loop that skips complete inputs is :func:`run_plans`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segcli.core.errors import SegcliError, UsageError
from segcli.core.instances import PLACEHOLDER_CLASSES
from segcli.core.signals import uninterrupted
from segcli.io.files import atomic_write_bytes, fsync_dir, is_temp_name
from segcli.io.images import DEFAULT_MAX_PIXELS, is_image_path
from segcli.io.video import is_video_path
from segcli.outputs.formats import yolo_data_yaml
from segcli.outputs.writers import (
    DEFAULT_SAVE,
    OUTPUT_MARKER,
    YOLO_DIR,
    OutputPlan,
    dumps,
    mark_output,
    plan_outputs,
    read_record,
    write_coco,
)
from segcli.runs.engines import Engine, ItemResult, Job, SegmenterLike, Status
from segcli.runs.engines.local import LocalEngine
from segcli.runs.video import VideoOptions, earlier_failure, process_video

if TYPE_CHECKING:
    from pycocotools.coco import COCO

RUN_SCHEMA = "segcli.run/2"
LOCK_NAME = ".segcli.lock"
"""The lock file in an output folder: held (``flock``) by the run writing into it."""


# --------------------------------------------------------------------------- discovery
@dataclass
class Discovery:
    files: list[Path]
    problems: list[tuple[Path, str]]  # folders that could not be read
    outputs: list[Path] = field(default_factory=list)  # segcli output folders, not entered


def discover(
    root: Path, *, recursive: bool = True, exclude: Sequence[Path] = (), videos: bool = True
) -> Discovery:
    """Image (and, with ``videos``, video) files under ``root`` by extension
    (case-insensitive), sorted by path.

    Hidden files and folders are skipped; symlinked folders are followed once
    (loops are cut); folders in ``exclude`` (e.g. our own output) are never entered,
    nor are other segcli output folders (they hold :data:`OUTPUT_MARKER`), which are
    listed in ``outputs``.
    """
    excluded = {os.path.realpath(p) for p in exclude}

    def wanted(path: Path) -> bool:
        return is_image_path(path) or (videos and is_video_path(path))

    seen: set[str] = set()
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    outputs: list[Path] = []

    def walk(folder: Path) -> None:
        real = os.path.realpath(folder)
        if real in seen or real in excluded:
            return
        seen.add(real)
        if folder != root and (folder / OUTPUT_MARKER).is_file():
            outputs.append(folder)
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append((folder, f"cannot list folder ({exc.strerror or exc})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                if entry.is_dir(follow_symlinks=True):
                    if recursive:
                        walk(path)
                elif entry.is_file(follow_symlinks=True) and wanted(path):
                    files.append(path)
                elif entry.is_symlink() and not path.exists() and wanted(path):
                    problems.append((path, "broken symbolic link"))
            except OSError as exc:
                problems.append((path, f"cannot stat ({exc.strerror or exc})"))

    walk(root)
    return Discovery(files=files, problems=problems, outputs=outputs)


def read_list(list_file: Path) -> tuple[Path, list[Path]]:
    """The inputs named in a list file (``--from-list``) and their common root.

    One path per line; blank lines and lines starting with ``#`` are skipped,
    surrounding whitespace is dropped, repeats count once. A relative path is
    relative to the list file's folder. Outputs mirror the paths under the deepest
    folder holding every listed file (the root), as for a folder run on that root.
    Files are not checked here: a missing one fails its own entry when it is read.
    """
    try:
        data = list_file.read_bytes()
    except OSError as exc:
        raise SegcliError(f"cannot read --from-list {list_file} ({exc.strerror or exc})") from None
    base = list_file.parent.absolute()
    files: dict[str, None] = {}
    for raw in data.splitlines():
        line = os.fsdecode(raw.strip())
        if not line or line.startswith("#"):
            continue
        files.setdefault(os.path.normpath(os.path.join(base, os.path.expanduser(line))), None)
    if not files:
        raise SegcliError(f"--from-list {list_file} names no files")
    root = Path(os.path.commonpath([os.path.dirname(f) for f in files]))
    return root, [Path(f) for f in files]


def remove_stale_temp_files(out_dir: Path) -> int:
    """Remove ``.*.part`` files/folders left by a killed run; returns how many."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    for folder, dirs, names in os.walk(out_dir):
        for name in [*names, *dirs]:
            if is_temp_name(name):
                target = Path(folder) / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
                removed += 1
        dirs[:] = [d for d in dirs if not is_temp_name(d)]
    return removed


# --------------------------------------------------------------------------- the lock
@contextmanager
def lock_output(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` (created if missing) for the block.

    Another process holding it makes this raise a one-line :class:`SegcliError` naming its
    pid and host. The lock is ``flock`` on ``.segcli.lock``: released by the kernel when the
    holder exits, however it exits, so a killed run never leaves a stale lock. (On network
    filesystems without ``flock``, and on Windows, no lock is taken.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise SegcliError(f"cannot lock output folder {out_dir} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            who = f"pid {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
            raise SegcliError(
                f"output folder {out_dir} is in use by another segcli run ({who}); "
                "wait for it to finish or choose another --output"
            ) from None
        except OSError:  # no flock on this filesystem
            pass
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only the note is missing
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------- running
@dataclass
class RunReport:
    results: list[ItemResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def instances(self) -> int:
        """Instances found by this run (inputs done now)."""
        return sum(r.instances for r in self.results if r.status == "done")

    @property
    def instances_total(self) -> int:
        """Instances in the outputs of every complete input: done now or before (skipped)."""
        return sum(r.instances for r in self.results if r.status in ("done", "skipped"))

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == "failed"]


def _settings_diff(old: object, new: dict[str, Any]) -> str:
    old_settings = old if isinstance(old, dict) else {}
    return "; ".join(
        f"{k} {old_settings.get(k)!r} -> {v!r}" for k, v in new.items() if old_settings.get(k) != v
    )


def check_record(record: dict[str, Any], job: Job, where: Path) -> None:
    """Refuse a record (per-image JSON or ``run.json``) of other settings or weights than ``job``'s."""
    settings = record.get("settings")
    if isinstance(settings, dict) and "precision" not in settings:
        settings = {**settings, "precision": "fp32"}  # a record from before --precision
    if settings != job.settings:
        diff = _settings_diff(settings, job.settings)
        raise SegcliError(
            f"{where} holds results made with other settings ({diff}); "
            "pass --overwrite to redo them, or choose another --output"
        )
    model = record.get("model")
    if not isinstance(model, dict) or model.get("sha256") != job.model_info.get("sha256"):
        weights = model.get("weights") if isinstance(model, dict) else None
        raise SegcliError(
            f"{where} holds results of other weights ({weights}); "
            "pass --overwrite to redo them, or choose another --output"
        )


def _check_polygons(record: dict[str, Any], job: Job, where: Path) -> None:
    """Refuse a per-image JSON with polygons into a run without them, or the other way round."""
    items = [i for i in record["instances"] if isinstance(i, dict)]
    if not items or "json" not in job.save:
        return  # no instance: the record is the same either way
    was = "polygons" in items[0]
    if was != ("polygons" in job.save):
        raise SegcliError(
            f"{where} holds JSON {'with' if was else 'without'} polygons; pass --overwrite to redo it "
            f"{'without' if was else 'with'} them, or choose another --output"
        )


def partition_plans(
    plans: Sequence[OutputPlan], job: Job, *, overwrite: bool = False
) -> tuple[list[ItemResult], list[OutputPlan]]:
    """Split ``plans`` into complete ones (as ``skipped`` results; a video an earlier run
    found damaged as ``failed``) and those to do.

    Complete means: every output of ``job.save`` exists and the per-image JSON parses as a
    whole ``segcli.instances/1`` record (an empty or truncated one is redone). Any per-image
    JSON found, saved or not, must hold ``job``'s settings and weights: otherwise this raises
    (results of two settings never mix in one folder, whatever stopped the earlier run).
    With ``overwrite`` everything is to do.
    """
    if overwrite:
        return [], list(plans)
    skipped: list[ItemResult] = []
    todo: list[OutputPlan] = []
    for plan in plans:
        paths = plan.paths(job.save)
        if plan.is_video:  # a video's JSON is its own record (segcli.runs.video)
            if all(path.exists() for path in paths.values()):
                earlier = earlier_failure(paths["json"])
                if earlier is not None:
                    reason = f"{earlier} (found by an earlier run; --overwrite tries again)"
                    skipped.append(ItemResult(plan, "failed", reason=reason))
                else:
                    skipped.append(ItemResult(plan, "skipped"))
            else:
                todo.append(plan)
            continue
        json_path = plan.paths(["json"])["json"]
        record = read_record(json_path) if json_path.is_file() else None
        if record is not None:
            check_record(record, job, json_path)
            _check_polygons(record, job, json_path)
        complete = all(p.exists() for p in paths.values()) and ("json" not in paths or record is not None)
        if complete:
            instances = len(record["instances"]) if record is not None else 0
            skipped.append(ItemResult(plan, "skipped", instances))
        else:
            todo.append(plan)
    return skipped, todo


def run_plans(
    plans: Sequence[OutputPlan],
    job: Job,
    engine: Engine,
    *,
    overwrite: bool = False,
    on_result: Callable[[ItemResult], None] | None = None,
    segmenter: SegmenterLike | None = None,
    video: VideoOptions | None = None,
    on_video_frame: Callable[[OutputPlan, int, int | None], None] | None = None,
) -> RunReport:
    """Skip plans whose outputs are complete (unless ``overwrite``; see :func:`partition_plans`),
    run the rest: images through ``engine``, then videos one by one through :func:`run_videos`
    on ``segmenter`` (the driver's; needed only when there are videos). ``on_result`` sees
    every result (with its JSON record, if written) once. A video an earlier run found
    damaged stays failed."""
    skipped, todo = partition_plans(plans, job, overwrite=overwrite)
    return run_partitioned(
        skipped,
        todo,
        job,
        engine,
        on_result=on_result,
        segmenter=segmenter,
        video=video,
        on_video_frame=on_video_frame,
    )


def run_partitioned(
    skipped: Sequence[ItemResult],
    todo: Sequence[OutputPlan],
    job: Job,
    engine: Engine,
    *,
    on_result: Callable[[ItemResult], None] | None = None,
    segmenter: SegmenterLike | None = None,
    video: VideoOptions | None = None,
    on_video_frame: Callable[[OutputPlan, int, int | None], None] | None = None,
) -> RunReport:
    """Report ``skipped``, run ``todo`` (the second half of :func:`run_plans`)."""
    report = RunReport()
    start = time.perf_counter()

    def emit(result: ItemResult) -> None:
        if on_result is not None:
            on_result(result)
        result.record = None  # the JSON is on disk; keep memory flat over long runs
        report.results.append(result)

    for result in skipped:
        emit(result)
    videos = [plan for plan in todo if plan.is_video]
    todo = [plan for plan in todo if not plan.is_video]
    report.interrupted = engine.run(todo, job, emit)
    if videos and not report.interrupted:
        if segmenter is None:
            raise SegcliError("videos are segmented in this process: run_plans needs segmenter=")
        report.interrupted = run_videos(videos, job, segmenter, video or VideoOptions(), emit, on_video_frame)
    report.seconds = time.perf_counter() - start
    return report


def run_videos(
    plans: Sequence[OutputPlan],
    job: Job,
    segmenter: SegmenterLike,
    options: VideoOptions,
    emit: Callable[[ItemResult], None],
    on_frame: Callable[[OutputPlan, int, int | None], None] | None = None,
) -> bool:
    """Segment the videos one after another (each one a pipelined stream); True if interrupted.

    Ctrl-C stops at once: the video being processed leaves no output (it is redone next
    time); videos finished before are complete.
    """
    for plan in plans:

        def frame_done(done: int, total: int | None, plan: OutputPlan = plan) -> None:
            if on_frame is not None:
                on_frame(plan, done, total)

        try:
            emit(process_video(segmenter, plan, job, options, on_frame=frame_done))
        except KeyboardInterrupt:
            return True
    return False


# --------------------------------------------------------------------------- run files
def run_status(total_done: int, failed: int, pending: int, interrupted: bool) -> str:
    """``interrupted``; ``complete`` (every input done); ``failed`` (none done, some failed);
    otherwise ``done_with_failures``."""
    if interrupted:
        return "interrupted"
    if not failed and not pending:
        return "complete"
    return "failed" if not total_done else "done_with_failures"


def status_title(summary: dict[str, Any]) -> str:
    """A run's status in words: "complete", "done with 1 failure", "failed", "interrupted"."""
    status = summary["status"]
    if status == "done_with_failures":
        n = summary["counts"]["total"]["failed"]
        return f"done with {n} failure{'s' if n != 1 else ''}"
    return str(status)


def run_summary(
    report: RunReport,
    *,
    job: Job,
    input_dir: Path,
    out_dir: Path,
    engine: dict[str, Any],
    problems: Sequence[tuple[Path, str]] = (),
    started: datetime,
    inputs: int | None = None,
    video: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``segcli.run/2`` record of a run; ``video`` (the video settings) is recorded when
    the run had videos.

    ``counts``: ``inputs`` is every input found (planned ones plus those discovery could not
    read), reached or not; ``done``/``skipped``/``failed``/``instances`` are this run's;
    ``total`` is the state of the output folder after it: ``done`` (complete outputs, now or
    from an earlier run), ``failed``, ``pending`` (never reached: an interrupted run) and
    ``instances`` (in every complete input's JSON). ``inputs`` defaults to the inputs reported.
    """
    done = report.count("done")
    skipped = report.count("skipped")
    failed = [{"path": str(r.plan.source), "reason": r.reason} for r in report.failed]
    failed += [{"path": str(p), "reason": f"{p}: {why}"} for p, why in problems]
    n_inputs = (len(report.results) if inputs is None else inputs) + len(problems)
    pending = max(n_inputs - done - skipped - len(failed), 0)
    return {
        "schema": RUN_SCHEMA,
        "status": run_status(done + skipped, len(failed), pending, report.interrupted),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_run_identity(job, input_dir, out_dir),
        **({"video": video} if video is not None else {}),
        "engine": engine,
        "counts": {
            "inputs": n_inputs,
            "done": done,
            "skipped": skipped,
            "failed": len(failed),
            "instances": report.instances,
            "total": {
                "done": done + skipped,
                "failed": len(failed),
                "pending": pending,
                "instances": report.instances_total,
            },
        },
        "seconds": round(report.seconds, 3),
        "images_per_second": round(done / report.seconds, 3) if report.seconds > 0 else None,
        "failed": failed,
    }


def _run_identity(job: Job, input_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The fields of ``run.json`` that say what a run is (read back by
    :func:`check_previous_run`), the same in the start record and the final summary."""
    return {
        "input": str(input_dir),
        "output": str(out_dir),
        "model": job.model_info,
        "settings": job.settings,
        "save": list(job.save),
        "batch_size": job.batch_size,
    }


def start_record(
    *, job: Job, input_dir: Path, out_dir: Path, engine: dict[str, Any], started: datetime, inputs: int
) -> dict[str, Any]:
    """What ``run.json`` holds while a run is under way (status ``running``): the settings and
    weights guard of :func:`check_previous_run` holds even if the run never ends cleanly."""
    return {
        "schema": RUN_SCHEMA,
        "status": "running",
        "started": started.isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **_run_identity(job, input_dir, out_dir),
        "engine": engine,
        "counts": {"inputs": inputs},
    }


def check_previous_run(out_dir: Path, job: Job, video: dict[str, Any] | None = None) -> None:
    """Refuse to mix results of other settings or weights (or video settings) into ``out_dir``.

    Reads ``run.json``, written at the start of every run (so this holds after a kill or a
    power cut too); an unreadable one proves nothing, and :func:`partition_plans` checks
    each per-image JSON instead.
    """
    previous = out_dir / "run.json"
    if not previous.is_file():
        return
    try:
        old = json.loads(previous.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    check_record(old, job, out_dir)
    if video is not None and isinstance(old.get("video"), dict) and old["video"] != video:
        diff = [f"{k} {old['video'].get(k)!r} -> {v!r}" for k, v in video.items() if old["video"].get(k) != v]
        raise SegcliError(
            f"{out_dir} holds videos made with other video settings ({'; '.join(diff)}); "
            "pass --overwrite to redo them, or choose another --output"
        )
    was = "polygons" in old.get("save", ())
    if was != ("polygons" in job.save) and "json" in job.save:
        raise SegcliError(
            f"{out_dir} holds JSON {'with' if was else 'without'} polygons; pass --overwrite to redo it "
            f"{'without' if was else 'with'} them, or choose another --output"
        )


def write_run_json(out_dir: Path, record: dict[str, Any]) -> None:
    """Write ``run.json`` durably; a failure is one line (:class:`SegcliError`)."""
    try:
        atomic_write_bytes(out_dir / "run.json", dumps(record))
        fsync_dir(out_dir)
    except OSError as exc:
        raise SegcliError(f"cannot write {out_dir / 'run.json'} ({exc.strerror or exc})") from None


def write_run_files(
    out_dir: Path,
    summary: dict[str, Any],
    plans: Sequence[OutputPlan],
    job: Job,
    categories: Sequence[str],
    input_dir: Path,
    ground_truth: COCO | None = None,
) -> Path | None:
    """Write ``coco.json`` and ``coco-results.json`` (when per-image JSON is saved; image and
    category ids from ``ground_truth`` when given), YOLO-seg's ``yolo/data.yaml`` and
    ``yolo/images`` link (with YOLO-seg labels), then ``run.json``.

    ``run.json`` is written even if the others cannot be (a full disk): then the summary
    says why under ``coco_error`` and this raises a one-line :class:`SegcliError` after.
    Ctrl-C (or SIGTERM) while they are written (seconds for a big folder) stops them, still
    writes ``run.json`` (saying so under ``coco_error``; a rerun writes them) and is raised
    again after: every image's own files are already complete.
    """
    from segcli.outputs.exports import write_coco_results

    coco_path = None
    coco_error = None
    interrupted = False
    if "json" in job.save:
        json_paths = ((plan, plan.paths(["json"])["json"]) for plan in plans if not plan.is_video)
        entries = [
            (plan.source.relative_to(input_dir).as_posix(), path)
            for plan, path in json_paths
            if path.is_file()
        ]
        coco_path = out_dir / "coco.json"
        info = {
            "description": f"segcli {job.model_info.get('name')} on {input_dir}",
            "date_created": summary["finished"],
            "segcli": {"model": job.model_info, "settings": job.settings},
        }
        try:
            write_coco(coco_path, entries, categories, info)
            write_coco_results(out_dir / "coco-results.json", entries, categories, ground_truth)
        except OSError as exc:
            coco_error = f"cannot write {coco_path} ({exc.strerror or exc})"
        except SegcliError as exc:
            coco_error = str(exc)
        except KeyboardInterrupt:
            interrupted = True
            coco_error = f"interrupted while writing {coco_path.name}: run the same command again to write it"
        if coco_error is not None:
            summary["coco_error"] = coco_error
            coco_path = None
    if "yolo" in job.save and coco_error is None:
        try:
            write_yolo_dataset(out_dir, categories, input_dir)
        except OSError as exc:
            coco_error = f"cannot write {out_dir / YOLO_DIR} ({exc.strerror or exc})"
            summary["coco_error"] = coco_error
        except KeyboardInterrupt:
            interrupted = True
            coco_error = f"interrupted while writing {out_dir / YOLO_DIR}: run the same command again"
            summary["coco_error"] = coco_error
    # run.json is small, and must say how the run ended: an interrupt writes it again
    interrupted = uninterrupted(lambda: write_run_json(out_dir, summary)) or interrupted
    if interrupted:
        raise KeyboardInterrupt
    if coco_error is not None:
        raise SegcliError(coco_error)
    return coco_path


def write_yolo_dataset(out_dir: Path, categories: Sequence[str], input_dir: Path | None) -> Path:
    """``<out>/yolo/data.yaml`` (class names) and, for a folder run, ``<out>/yolo/images``: a
    link to the input folder, so that Ultralytics finds each label at its image's path with
    ``images`` -> ``labels``. Returns the data.yaml path."""
    root = out_dir / YOLO_DIR
    root.mkdir(parents=True, exist_ok=True)
    names = [c for c in categories if c not in PLACEHOLDER_CLASSES]
    data = yolo_data_yaml(names, path=str(root.absolute()), train="images", val="images")
    atomic_write_bytes(root / "data.yaml", data.encode("utf-8"))
    link = root / "images"
    if input_dir is not None and not link.exists() and not link.is_symlink():
        with contextlib.suppress(OSError):  # no symlinks here (e.g. Windows without rights)
            link.symlink_to(input_dir.absolute(), target_is_directory=True)
    return root / "data.yaml"


# --------------------------------------------------------------------------- one batch run
@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs, apart from the model (those are the segmenter's settings)."""

    save: tuple[str, ...] = DEFAULT_SAVE
    overwrite: bool = False
    recursive: bool = True
    batch_size: int = 1
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    videos: bool = True  # pick up video files too
    video: VideoOptions = field(default_factory=VideoOptions)
    coco_ids_from: Path | None = None  # a COCO ground truth: coco-results.json uses its ids


@dataclass
class BatchOutcome:
    """What a batch run did: the report, the ``run.json`` content and the files written."""

    report: RunReport
    summary: dict[str, Any]
    output: Path
    coco_path: Path | None
    problems: list[tuple[Path, str]]
    stale_removed: int

    @property
    def exit_code(self) -> int:
        """0 all good, 1 some input failed, 130 interrupted (the CLI's exit codes)."""
        if self.report.interrupted:
            return 130
        return 1 if self.summary["counts"]["total"]["failed"] else 0


class BatchEvents:
    """Hooks a caller may override to show progress; the defaults do nothing."""

    def discovered(self, files: int, problems: Sequence[tuple[Path, str]]) -> None:
        """Inputs found (before the model loads); ``problems`` are unreadable folders/links."""

    def skipped_outputs(self, folders: Sequence[Path]) -> None:
        """Folders under the input that hold an earlier segcli output (not entered)."""

    def started(self, total: int, stale_removed: int) -> None:
        """The engine is about to run ``total`` planned inputs."""

    def result(self, result: ItemResult) -> None:
        """One input finished (done, skipped or failed); ``result.record`` is its JSON."""

    def video_frame(self, plan: OutputPlan, done: int, total: int | None) -> None:
        """``done`` frames of the video ``plan`` are segmented (of about ``total``)."""


def check_folders(folder: Path, output: Path) -> None:
    """Usage errors of a batch's two folders, before anything is read or written."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder: use segcli predict for single images")
    if os.path.realpath(output) == os.path.realpath(folder):
        raise UsageError(f"--output {output} is the input folder itself; choose another output folder")
    if (folder / OUTPUT_MARKER).is_file():
        raise UsageError(
            f"{folder} is a segcli output folder (it holds {OUTPUT_MARKER}); segmenting it would "
            f"segment overlays. Remove {folder / OUTPUT_MARKER} to do it anyway"
        )


def run_batch(
    folder: Path,
    output: Path,
    load: Callable[[], SegmenterLike],
    *,
    options: BatchOptions | None = None,
    engine: Callable[[SegmenterLike], Engine] | None = None,
    events: BatchEvents | None = None,
    files: Sequence[Path] | None = None,
) -> BatchOutcome:
    """Segment every image under ``folder`` into ``output``; resumable; prints nothing.

    ``files``: these inputs instead of discovering ``folder`` (``--from-list``, see
    :func:`read_list`); every one must lie under ``folder``, which keys the outputs.

    ``load`` returns the segmenter; it is called after discovery, so that a bad folder
    is reported before any model loads (pass ``lambda: seg`` for a loaded one). The
    segmenter's ``model_info``/``settings`` identify the run. ``engine`` builds the
    engine from it (default: the local threaded engine on that segmenter). ``files``
    (paths under ``folder``) replaces discovery: exactly those inputs, in that order.
    With ``options.coco_ids_from``, the ground truth is read and every input matched
    to one of its images by file name before the model loads.
    """
    opts = options or BatchOptions()
    events = events or BatchEvents()
    started = datetime.now(timezone.utc)
    check_folders(folder, output)
    if files is None:
        found = discover(folder, recursive=opts.recursive, exclude=[output], videos=opts.videos)
    else:
        found = Discovery(files=list(files), problems=[])
    events.discovered(len(found.files), found.problems)
    if found.outputs:
        events.skipped_outputs(found.outputs)
    if files is None and not found.files and not found.problems:
        hint = "; subfolders were not searched (--no-recursive)" if not opts.recursive else ""
        raise SegcliError(f"no images found in {folder}{hint}")
    ground_truth = None
    if opts.coco_ids_from is not None:
        from segcli.datasets.groundtruth import load_ground_truth, match_images

        ground_truth = load_ground_truth(opts.coco_ids_from)
        names = [f.relative_to(folder).as_posix() for f in found.files]
        match_images(ground_truth.dataset["images"], names, source="input")
    mark_output(output)
    with lock_output(output):
        seg = load()
        eng = engine(seg) if engine is not None else LocalEngine(seg)
        job = Job.for_segmenter(seg, opts.save, batch_size=opts.batch_size, max_pixels=opts.max_pixels)
        plans = plan_outputs(found.files, output, root=folder)
        video = opts.video.to_dict() if any(plan.is_video for plan in plans) else None
        removed = remove_stale_temp_files(output)  # under the lock: no other run's temp files
        if not opts.overwrite:
            check_previous_run(output, job, video)
        skipped, todo = partition_plans(plans, job, overwrite=opts.overwrite)
        n_inputs = len(plans) + len(found.problems)
        write_run_json(
            output,
            start_record(
                job=job,
                input_dir=folder,
                out_dir=output,
                engine=eng.describe(),
                started=started,
                inputs=n_inputs,
            ),
        )
        events.started(len(plans), removed)
        report = run_partitioned(
            skipped,
            todo,
            job,
            eng,
            on_result=events.result,
            segmenter=seg,
            video=opts.video,
            on_video_frame=events.video_frame,
        )
        summary = run_summary(
            report,
            job=job,
            input_dir=folder,
            out_dir=output,
            engine=eng.describe(),
            problems=found.problems,
            started=started,
            inputs=len(plans),
            video=video,
        )
        coco_path = write_run_files(output, summary, plans, job, seg.categories, folder, ground_truth)
    return BatchOutcome(
        report=report,
        summary=summary,
        output=output,
        coco_path=coco_path,
        problems=list(found.problems),
        stale_removed=removed,
    )
