"""Running a Segmenter over many files: discovery, a pipelined loop, resume, reports.

The loop overlaps three things: decoding the next images (thread pool), the
network's forward pass (caller's thread) and writing the previous results
(thread pool). Queues are bounded, so memory stays flat however many images.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segcli.errors import SegcliError
from segcli.imageio import DEFAULT_MAX_PIXELS, LoadedImage, atomic_write_bytes, is_image_path, read_image
from segcli.instances import Instances
from segcli.render import OverlayAnnotator
from segcli.writers import OutputPlan, dumps, instances_record, outputs_complete, write_coco, write_outputs

RUN_SCHEMA = "segcli.run/1"


class SegmenterLike(Protocol):
    settings: Any

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]: ...

    def model_info(self) -> dict[str, Any]: ...

    @property
    def categories(self) -> tuple[str, ...]: ...


# --------------------------------------------------------------------------- discovery
@dataclass
class Discovery:
    files: list[Path]
    problems: list[tuple[Path, str]]  # folders that could not be read


def discover(root: Path, *, recursive: bool = True, exclude: Sequence[Path] = ()) -> Discovery:
    """Image files under ``root`` by extension (case-insensitive), sorted by path.

    Hidden files and folders are skipped; symlinked folders are followed once
    (loops are cut); folders in ``exclude`` (e.g. our own output) are never entered.
    """
    excluded = {os.path.realpath(p) for p in exclude}
    seen: set[str] = set()
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def walk(folder: Path) -> None:
        real = os.path.realpath(folder)
        if real in seen or real in excluded:
            return
        seen.add(real)
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
                elif entry.is_file(follow_symlinks=True) and is_image_path(path):
                    files.append(path)
                elif entry.is_symlink() and not path.exists() and is_image_path(path):
                    problems.append((path, "broken symbolic link"))
            except OSError as exc:
                problems.append((path, f"cannot stat ({exc.strerror or exc})"))

    walk(root)
    return Discovery(files=files, problems=problems)


def remove_stale_temp_files(out_dir: Path) -> int:
    """Remove ``.*.part`` files/folders left by a killed run; returns how many."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    for folder, dirs, names in os.walk(out_dir):
        for name in [*names, *dirs]:
            if name.startswith(".") and name.endswith(".part"):
                target = Path(folder) / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
                removed += 1
        dirs[:] = [d for d in dirs if not (d.startswith(".") and d.endswith(".part"))]
    return removed


# --------------------------------------------------------------------------- running
@dataclass
class ItemResult:
    plan: OutputPlan
    status: str  # "done", "skipped", "failed"
    instances: int = 0
    reason: str = ""
    record: dict[str, Any] | None = None
    summary: str = ""


@dataclass
class RunReport:
    results: list[ItemResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def instances(self) -> int:
        return sum(r.instances for r in self.results if r.status == "done")

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == "failed"]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe(instances: Instances) -> str:
    if not len(instances):
        return "no instances"
    names: dict[str, int] = {}
    for name in instances.class_names:
        names[name] = names.get(name, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(names.items(), key=lambda kv: -kv[1]))
    return f"{len(instances)} instances ({parts})"


class Runner:
    """Runs a segmenter over planned inputs, writing outputs as it goes."""

    def __init__(
        self,
        segmenter: SegmenterLike,
        *,
        save: Sequence[str],
        overwrite: bool = False,
        batch_size: int = 1,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        annotator: OverlayAnnotator | None = None,
        record_path: Callable[[OutputPlan], str] = lambda plan: str(plan.source),
        on_result: Callable[[ItemResult], None] | None = None,
        decode_workers: int = 2,
        write_workers: int = 2,
    ) -> None:
        if batch_size < 1:
            raise SegcliError(f"--batch-size must be at least 1, got {batch_size}")
        self.segmenter = segmenter
        self.save = tuple(save)
        self.overwrite = overwrite
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.annotator = annotator or OverlayAnnotator()
        self.record_path = record_path
        self.on_result = on_result
        self.decode_workers = decode_workers
        self.write_workers = write_workers
        self.model_info = segmenter.model_info()
        self.settings = segmenter.settings.to_dict()

    def _read(self, plan: OutputPlan) -> LoadedImage:
        return read_image(plan.source, max_pixels=self.max_pixels)

    def _write(self, plan: OutputPlan, image: LoadedImage, instances: Instances) -> ItemResult:
        record = instances_record(
            instances, image_path=self.record_path(plan), model=self.model_info, settings=self.settings
        )
        write_outputs(plan.paths(self.save), image.pixels, instances, record, self.annotator)
        return ItemResult(plan, "done", len(instances), record=record, summary=_describe(instances))

    def _segment(self, images: list[LoadedImage]) -> list[Instances | BaseException]:
        try:
            return list(self.segmenter([im.pixels for im in images]))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            if len(images) == 1:
                return [exc]
            # One image of the batch may be at fault (e.g. out of memory): retry one by one.
            out: list[Instances | BaseException] = []
            for im in images:
                out.extend(self._segment([im]))
            return out

    def run(self, plans: Sequence[OutputPlan]) -> RunReport:
        report = RunReport()
        start = time.perf_counter()
        todo: list[OutputPlan] = []
        for plan in plans:
            if not self.overwrite and outputs_complete(plan.paths(self.save)):
                self._emit(report, ItemResult(plan, "skipped"))
            else:
                todo.append(plan)
        lookahead = max(2 * self.batch_size, self.decode_workers + 1)
        writes: deque[tuple[OutputPlan, Future[ItemResult]]] = deque()
        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="segcli-decode") as decoder,
            ThreadPoolExecutor(self.write_workers, thread_name_prefix="segcli-write") as writer,
        ):
            reads: deque[tuple[OutputPlan, Future[LoadedImage]]] = deque()
            pending: Iterator[OutputPlan] = iter(todo)
            try:
                while True:
                    while len(reads) < lookahead:
                        nxt = next(pending, None)
                        if nxt is None:
                            break
                        reads.append((nxt, decoder.submit(self._read, nxt)))
                    if not reads:
                        break
                    batch: list[tuple[OutputPlan, LoadedImage]] = []
                    while reads and len(batch) < self.batch_size:
                        plan, fut = reads.popleft()
                        try:
                            batch.append((plan, fut.result()))
                        except SegcliError as exc:
                            self._emit(report, ItemResult(plan, "failed", reason=_one_line(exc)))
                        except Exception as exc:
                            reason = f"{plan.source}: cannot read ({_one_line(exc)})"
                            self._emit(report, ItemResult(plan, "failed", reason=reason))
                    if not batch:
                        continue
                    results = self._segment([im for _, im in batch])
                    for (plan, image), result in zip(batch, results):
                        if isinstance(result, MemoryError) or type(result).__name__ == "OutOfMemoryError":
                            reason = (
                                f"{plan.source}: out of memory in the model ({_one_line(result)}); try a "
                                "smaller --max-size, --batch-size 1 or --device cpu"
                            )
                            self._emit(report, ItemResult(plan, "failed", reason=reason))
                        elif isinstance(result, BaseException):
                            reason = f"{plan.source}: model failed ({_one_line(result)})"
                            self._emit(report, ItemResult(plan, "failed", reason=reason))
                        else:
                            writes.append((plan, writer.submit(self._write, plan, image, result)))
                    while len(writes) > 2 * self.write_workers + self.batch_size:
                        self._finish_write(report, *writes.popleft())
            except KeyboardInterrupt:
                report.interrupted = True
                for _, fut in reads:
                    fut.cancel()
            # Finish the writes already started: that work is good and must not be lost.
            while writes:
                try:
                    self._finish_write(report, *writes.popleft())
                except KeyboardInterrupt:
                    report.interrupted = True
        report.seconds = time.perf_counter() - start
        return report

    def _finish_write(self, report: RunReport, plan: OutputPlan, fut: Future[ItemResult]) -> None:
        try:
            result = fut.result()
        except KeyboardInterrupt:
            raise
        except OSError as exc:
            reason = f"{plan.source}: cannot write outputs ({exc.strerror or _one_line(exc)})"
            result = ItemResult(plan, "failed", reason=reason)
        except Exception as exc:
            result = ItemResult(plan, "failed", reason=f"{plan.source}: {_one_line(exc)}")
        self._emit(report, result)

    def _emit(self, report: RunReport, result: ItemResult) -> None:
        if self.on_result is not None:
            self.on_result(result)
        result.record = None  # the JSON is on disk; keep memory flat over long runs
        report.results.append(result)


# --------------------------------------------------------------------------- run files
def run_summary(
    report: RunReport,
    *,
    input_dir: Path,
    out_dir: Path,
    runner: Runner,
    problems: Sequence[tuple[Path, str]] = (),
    started: datetime,
) -> dict[str, Any]:
    done = report.count("done")
    failed = [{"path": str(r.plan.source), "reason": r.reason} for r in report.failed]
    failed += [{"path": str(p), "reason": f"{p}: {why}"} for p, why in problems]
    return {
        "schema": RUN_SCHEMA,
        "status": "interrupted" if report.interrupted else ("failed" if failed else "complete"),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(input_dir),
        "output": str(out_dir),
        "model": runner.model_info,
        "settings": runner.settings,
        "save": list(runner.save),
        "counts": {
            "inputs": len(report.results),
            "done": done,
            "skipped": report.count("skipped"),
            "failed": len(failed),
            "instances": report.instances,
        },
        "seconds": round(report.seconds, 3),
        "images_per_second": round(done / report.seconds, 3) if report.seconds > 0 else None,
        "failed": failed,
    }


def check_previous_run(out_dir: Path, runner: Runner) -> None:
    """Refuse to mix results of other settings or weights into ``out_dir``."""
    previous = out_dir / "run.json"
    if runner.overwrite or not previous.is_file():
        return
    try:
        old = json.loads(previous.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if old.get("settings") != runner.settings:
        diff = [
            f"{k} {old.get('settings', {}).get(k)!r} -> {v!r}"
            for k, v in runner.settings.items()
            if old.get("settings", {}).get(k) != v
        ]
        raise SegcliError(
            f"{out_dir} holds results made with other settings ({'; '.join(diff)}); "
            "pass --overwrite to redo them, or choose another --output"
        )
    if old.get("model", {}).get("sha256") != runner.model_info.get("sha256"):
        raise SegcliError(
            f"{out_dir} holds results of other weights ({old.get('model', {}).get('weights')}); "
            "pass --overwrite to redo them, or choose another --output"
        )


def write_run_files(
    out_dir: Path,
    summary: dict[str, Any],
    plans: Sequence[OutputPlan],
    runner: Runner,
    input_dir: Path,
) -> Path | None:
    """Write ``run.json`` and, when per-image JSON is saved, ``coco.json``."""
    coco_path = None
    if "json" in runner.save:
        json_paths = ((plan, plan.paths(["json"])["json"]) for plan in plans)
        entries = [
            (plan.source.relative_to(input_dir).as_posix(), path)
            for plan, path in json_paths
            if path.is_file()
        ]
        coco_path = out_dir / "coco.json"
        info = {
            "description": f"segcli {runner.model_info.get('name')} on {input_dir}",
            "date_created": summary["finished"],
        }
        write_coco(coco_path, entries, runner.segmenter.categories, info)
    atomic_write_bytes(out_dir / "run.json", dumps(summary))
    return coco_path
