"""One batch run in the library: discover -> lock the output folder -> plan -> stale temp
cleanup -> previous-run check -> ``run.json`` (status "running") -> run (through an engine)
-> ``run.json`` / ``coco.json``.

:func:`run_batch` prints nothing; the CLI and ``segcli demo`` show its events.
The per-input work runs in an engine (``segcli.runs.engines``); the loop that skips complete
inputs is :func:`run_plans`. Discovery, run files and resume checks are their own modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from segcli.core.errors import SegcliError, first_line
from segcli.core.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from segcli.core.signals import stop_requested, uninterrupted
from segcli.io.images import DEFAULT_MAX_PIXELS
from segcli.outputs.plans import DEFAULT_SAVE, OutputPlan, mark_output, plan_outputs
from segcli.runs.discovery import Discovery, check_folders, discover
from segcli.runs.engines.base import Engine, ItemResult, Job, SegmenterLike
from segcli.runs.engines.local import LocalEngine
from segcli.runs.resume import check_previous_run, partition_plans
from segcli.runs.runfiles import (
    RunReport,
    RunSummary,
    lock_output,
    remove_stale_temp_files,
    run_summary,
    start_record,
    write_run_files,
    write_run_json,
)
from segcli.runs.video import VideoOptions, process_video

if TYPE_CHECKING:
    pass


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
    time); videos finished before are complete. Any other error a video raises fails that
    video alone.
    """
    for plan in plans:

        def frame_done(done: int, total: int | None, plan: OutputPlan = plan) -> None:
            if on_frame is not None:
                on_frame(plan, done, total)

        try:
            result = process_video(segmenter, plan, job, options, on_frame=frame_done)
        except KeyboardInterrupt:
            return True
        except Exception as exc:  # whatever a hostile clip raises fails that clip, never the run
            reason = f"{plan.source}: {type(exc).__name__}: {first_line(exc)}"
            result = ItemResult(plan, "failed", reason=reason)
        if result.status == "failed" and stop_requested():
            return True  # FFmpeg reported the signal as the file's error: it is the stop, redo it
        try:
            emit(result)
        except KeyboardInterrupt:
            return True
    return False


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
    draw_tiles: bool = False  # overlays draw the tile grid (--debug with --tile)


@dataclass
class BatchOutcome:
    """What a batch run did: the report, the ``run.json`` content and the files written."""

    report: RunReport
    summary: RunSummary
    output: Path
    coco_path: Path | None
    problems: list[tuple[Path, str]]
    stale_removed: int

    @property
    def exit_code(self) -> int:
        """The CLI's exit code (:mod:`segcli.core.exits`): all good, some input failed, interrupted."""
        if self.report.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.summary["counts"]["total"]["failed"] else EXIT_OK


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
        job = Job.for_segmenter(
            seg, opts.save, batch_size=opts.batch_size, max_pixels=opts.max_pixels, draw_tiles=opts.draw_tiles
        )
        plans = plan_outputs(found.files, output, root=folder)
        video = opts.video.to_dict() if any(plan.is_video for plan in plans) else None
        removed = remove_stale_temp_files(output, plans, input_root=folder)  # under the lock: none in use
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
        seen: list[ItemResult] = []

        def on_result(result: ItemResult) -> None:
            events.result(result)
            seen.append(result)

        def summarize(report: RunReport) -> RunSummary:
            """run.json's summary of ``report`` (the same whether the run ended or the engine failed)."""
            return run_summary(
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

        try:
            report = run_partitioned(
                skipped,
                todo,
                job,
                eng,
                on_result=on_result,
                segmenter=seg,
                video=opts.video,
                on_video_frame=events.video_frame,
            )
        except Exception as exc:  # the engine itself failed: run.json must not stay "running"
            summary = summarize(RunReport(results=seen))
            summary["status"] = "failed"
            summary["error"] = (
                str(exc) if isinstance(exc, SegcliError) else f"{type(exc).__name__}: {first_line(exc)}"
            )
            uninterrupted(lambda: write_run_json(output, summary))
            raise
        summary = summarize(report)
        coco_path = write_run_files(output, summary, plans, job, seg.categories, folder, ground_truth)
    return BatchOutcome(
        report=report,
        summary=summary,
        output=output,
        coco_path=coco_path,
        problems=list(found.problems),
        stale_removed=removed,
    )
