"""The files a run keeps beside its outputs: the lock, ``run.json`` (written when the run starts
and when it ends), stale temp cleanup, the run's tally and summary, the YOLO dataset file."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from segcli.core.categories import PLACEHOLDER_CLASSES
from segcli.core.errors import SegcliError
from segcli.core.signals import uninterrupted
from segcli.io.files import (
    NAME_MAX,
    atomic_write_bytes,
    fsync_dir,
    is_segcli_temp,
    legacy_temp_target,
    make_folders,
    truncate_name,
)
from segcli.io.locks import LOCK_NAME as LOCK_NAME  # re-exported: its old home
from segcli.io.locks import output_lock
from segcli.outputs.formats import yolo_data_yaml
from segcli.outputs.plans import EXTRA_SUFFIXES, OUTPUT_KINDS, OUTPUT_MARKER, YOLO_DIR, OutputPlan
from segcli.outputs.records import dumps
from segcli.outputs.writers import write_coco
from segcli.runs.engines.base import ItemResult, Job, Status

if TYPE_CHECKING:
    from pycocotools.coco import COCO


RUN_SCHEMA = "segcli.run/2"


ATTEMPT_SUFFIX = ".attempt.part"
"""The Ray engine's attempt mark beside an input's outputs: ``.<output base name>.attempt.part``."""
TOP_LEVEL_FILES = frozenset({"run.json", "coco.json", "coco-results.json", "eval.json", OUTPUT_MARKER})
"""Files segcli writes at the top of an output folder (besides the inputs' outputs)."""
_LEGACY_ROOM = NAME_MAX - len(".part") - 8 - 2
"""Earlier versions cut a target name to this many bytes in its temporary name."""
_PR_CURVE = re.compile(r"\d{3}-.+\.png", re.DOTALL)


def _owned_names(
    out_dir: Path, plans: Sequence[OutputPlan]
) -> tuple[dict[Path, set[str]], dict[Path, set[str]]]:
    """Per folder: the names segcli writes there for ``plans`` (every output kind, so that a
    run with another ``--save`` before is covered), and the output bases (attempt marks)."""
    names: dict[Path, set[str]] = {out_dir: set(TOP_LEVEL_FILES), out_dir / YOLO_DIR: {"data.yaml"}}
    bases: dict[Path, set[str]] = {}
    for plan in plans:
        paths = list(plan.paths(OUTPUT_KINDS).values())
        if not plan.is_video:
            paths.append(plan.base.with_name(plan.base.name + EXTRA_SUFFIXES[0]))  # the id map preview
        for path in paths:
            names.setdefault(path.parent, set()).add(path.name)
        bases.setdefault(plan.base.parent, set()).add(plan.base.name)
    return names, bases


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def remove_stale_temp_files(
    out_dir: Path, plans: Sequence[OutputPlan] = (), *, input_root: Path | None = None
) -> int:
    """Remove the temporary files and folders a killed run left in ``out_dir``; returns how many.

    Only what segcli provably made, only where it writes, never inside the input tree:

    - folders: ``out_dir`` (which holds the output marker), the folders the outputs of
      ``plans`` go to (``yolo/``, ``labelme/`` and ``pr/`` included); never a folder outside
      ``out_dir`` (a link), inside another segcli output folder (it has its own lock), one
      that holds an input of ``plans``, or inside ``input_root`` (unless ``out_dir`` itself
      lies in it, as ``photos/out`` does);
    - names: this version's temporary names (:func:`segcli.io.files.is_segcli_temp`, which
      checks their hash digits); an earlier version's ``.<name>.XXXXXXXX.part`` only where
      ``<name>`` is an output segcli writes in that folder; the Ray engine's attempt marks
      ``.<base>.attempt.part`` of a planned input.

    A user's ``.thesis.docx.part`` (or any other file) is never touched. Call it under the
    output folder's exclusive lock: then no other segcli process is writing there.
    """
    if not (out_dir / OUTPUT_MARKER).is_file():
        return 0  # not a folder segcli owns
    out_real = os.path.realpath(out_dir)
    protect = os.path.realpath(input_root) if input_root is not None else None
    if protect is not None and _inside(out_real, protect):
        protect = None  # the output folder lies in the input tree, which never enters it
    names, bases = _owned_names(out_dir, plans)
    folders = dict.fromkeys([*names, *bases, out_dir / "pr"])
    holding_inputs = set()  # folders an input lies in, by identity: never cleaned, whatever the tree
    for parent in {os.path.dirname(os.path.abspath(plan.source)) for plan in plans}:
        try:
            st = os.stat(parent)
        except OSError:
            continue
        holding_inputs.add((st.st_dev, st.st_ino))
    foreign: dict[Path, bool] = {}

    def in_foreign_output(folder: Path) -> bool:
        """Whether ``folder`` (below ``out_dir``) lies in another segcli output folder (a loop,
        not recursion: output trees may be thousands of folders deep)."""
        chain: list[Path] = []
        answer = False
        while folder != out_dir and len(folder.parts) > len(out_dir.parts):
            if folder in foreign:
                answer = foreign[folder]
                break
            chain.append(folder)
            folder = folder.parent
        for below in reversed(chain):  # from the top down: a marker above marks all below
            answer = answer or (below / OUTPUT_MARKER).exists()
            foreign[below] = answer
        return foreign[chain[0]] if chain else answer

    removed = 0
    for folder in folders:
        real = os.path.realpath(folder)
        if not _inside(real, out_real) or (protect is not None and _inside(real, protect)):
            continue
        if in_foreign_output(folder):
            continue
        try:
            st = os.stat(folder)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in holding_inputs:
            continue
        owned = names.get(folder, set())
        legacy = owned | {truncate_name(n, _LEGACY_ROOM) for n in owned}
        marks = {f".{b}{ATTEMPT_SUFFIX}" for b in bases.get(folder, ())}
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            target = legacy_temp_target(name)
            ours = (
                is_segcli_temp(name)
                or name in marks
                or (
                    target is not None
                    and (target in legacy or (folder.name == "pr" and bool(_PR_CURVE.fullmatch(target))))
                )
            )
            if not ours:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError:
                continue
            removed += 1
    return removed


# --------------------------------------------------------------------------- the lock
lock_output = output_lock
"""The output-folder lock (:func:`segcli.io.locks.output_lock`); a run holds it exclusive."""


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


# --------------------------------------------------------------------------- run files
def run_status(total_done: int, failed: int, pending: int, interrupted: bool) -> str:
    """``interrupted``; ``complete`` (every input done); ``failed`` (none done, some failed);
    otherwise ``done_with_failures``."""
    if interrupted:
        return "interrupted"
    if not failed and not pending:
        return "complete"
    return "failed" if not total_done else "done_with_failures"


def status_title(summary: RunSummary) -> str:
    """A run's status in words: "complete", "done with 1 failure", "failed", "interrupted"."""
    status = summary["status"]
    if status == "done_with_failures":
        n = summary["counts"]["total"]["failed"]
        return f"done with {n} failure{'s' if n != 1 else ''}"
    return str(status)


class RunTotals(TypedDict):
    """The output folder's state after a run (earlier runs' complete inputs included)."""

    done: int
    failed: int
    pending: int
    instances: int


class RunCounts(TypedDict):
    """``run.json``'s ``counts``: this run's work, and ``total``, the folder's."""

    inputs: int
    done: int
    skipped: int
    failed: int
    instances: int
    images: int
    videos: int
    frames: int
    total: RunTotals


class FailedInput(TypedDict):
    path: str
    reason: str


class _RunSummaryFields(TypedDict):
    schema: str
    status: str
    started: str
    finished: str
    input: str
    output: str
    model: dict[str, Any]
    settings: dict[str, Any]
    save: list[str]
    batch_size: int
    engine: dict[str, Any]
    counts: RunCounts
    seconds: float
    images_per_second: float | None
    frames_per_second: float | None
    failed: list[FailedInput]


class RunSummary(_RunSummaryFields, total=False):
    """``run.json`` once a run has ended (schema ``segcli.run/2``), as :func:`run_summary` makes
    it; read by the CLI's summary table, ``segcli eval`` and ``segcli demo``. ``video`` is there
    when the run had videos, ``coco_error`` when coco.json could not be written, ``error``
    when the engine itself failed (status ``failed``)."""

    video: dict[str, Any]
    coco_error: str
    error: str


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 3) if count and seconds > 0 else None


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
) -> RunSummary:
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
    videos = sum(1 for r in report.results if r.status == "done" and r.plan.is_video)
    frames = sum(r.frames for r in report.results)
    failed: list[FailedInput] = [{"path": str(r.plan.source), "reason": r.reason} for r in report.failed]
    failed += [{"path": str(p), "reason": f"{p}: {why}"} for p, why in problems]
    n_inputs = (len(report.results) if inputs is None else inputs) + len(problems)
    pending = max(n_inputs - done - skipped - len(failed), 0)
    summary = {  # built as a literal: run.json's keys in this order
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
            "images": done - videos,
            "videos": videos,
            "frames": frames,
            "total": {
                "done": done + skipped,
                "failed": len(failed),
                "pending": pending,
                "instances": report.instances_total,
            },
        },
        "seconds": round(report.seconds, 3),
        # both over the run's whole time: a run of images and videos shares it between them
        "images_per_second": _rate(done - videos, report.seconds),
        "frames_per_second": _rate(frames, report.seconds),
        "failed": failed,
    }
    return cast(RunSummary, summary)


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


def write_run_json(out_dir: Path, record: Mapping[str, object]) -> None:
    """Write ``run.json`` durably; a failure is one line (:class:`SegcliError`)."""
    try:
        atomic_write_bytes(out_dir / "run.json", dumps(record))
        fsync_dir(out_dir)
    except OSError as exc:
        raise SegcliError(f"cannot write {out_dir / 'run.json'} ({exc.strerror or exc})") from None


def write_run_files(
    out_dir: Path,
    summary: RunSummary,
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
    make_folders(root)
    names = [c for c in categories if c not in PLACEHOLDER_CLASSES]
    data = yolo_data_yaml(names, path=str(root.absolute()), train="images", val="images")
    atomic_write_bytes(root / "data.yaml", data.encode("utf-8"))
    link = root / "images"
    if input_dir is not None and not link.exists() and not link.is_symlink():
        with contextlib.suppress(OSError):  # no symlinks here (e.g. Windows without rights)
            link.symlink_to(input_dir.absolute(), target_is_directory=True)
    return root / "data.yaml"
