"""Segmenting a video: decode, segment, track, draw, encode and write, as one pipelined stream.

Three stages overlap: a thread decodes frames ahead; the caller's thread runs the
segmenter on batches of frames and the tracker over its results; a second thread
draws the overlay, encodes it and writes the JSONL records. The queues between them
hold a few frames, so memory stays flat however long the clip.

Outputs of ``clip.mp4`` (see :func:`video_output_paths`):

- ``clip.mp4.overlay.mp4``: the processed frames with their instances drawn, each track
  in its own colour, H.264 at the clip's timing, audio copied;
- ``clip.mp4.jsonl``: one ``segcli.instances/1`` record per processed frame, plus
  ``frame``, ``time_s`` and per instance ``track_id``;
- ``clip.mp4.json``: the ``segcli.video/1`` summary, written last: its presence marks
  the video complete (also a damaged one: its ``status`` says ``failed``).

Every file is written under a temporary name and renamed when the video is finished,
so a killed run never leaves a half-written output under a final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from segcli.core.errors import SegcliError, first_line
from segcli.core.instances import Instances
from segcli.core.jsonio import parse_json
from segcli.core.settings import DEFAULT_MAX_PIXELS
from segcli.draw.annotators import Annotator, Color, OverlayAnnotator, instance_color
from segcli.io.files import atomic_write_bytes, make_temp
from segcli.io.video import (
    ENCODER_BYTES_PER_PIXEL,
    AudioSource,
    DecodedFrame,
    FrameSelection,
    VideoDecodeError,
    VideoInfo,
    VideoWriter,
    probe_video,
    read_frames,
)
from segcli.outputs.plans import OutputPlan, video_paths
from segcli.outputs.records import dumps, instances_record
from segcli.runs.engines.base import ItemResult, Job
from segcli.runs.engines.local import BYTES_PER_PIXEL, DECODE_BUDGET_BYTES
from segcli.runs.track import UNTRACKED, Tracker, TrackerConfig, TrackLog

VIDEO_SCHEMA = "segcli.video/1"


video_output_paths = video_paths
"""Output paths of a video (see :func:`segcli.outputs.plans.video_paths`)."""


@dataclass(frozen=True)
class VideoOptions:
    """How to run a video: which frames, tracking, batching, queue depth."""

    selection: FrameSelection = field(default_factory=FrameSelection)
    track: bool = True
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    batch_size: int = 1
    queue_frames: int = 4  # frames each queue holds (decode -> model, model -> writer); >= 2 batches
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # frames larger than this: the video fails
    memory_budget: int = DECODE_BUDGET_BYTES
    """Bytes for frames in flight (BYTES_PER_PIXEL per pixel, decoded until written), as for
    images; one frame is always allowed, however large."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SegcliError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.queue_frames < 1:
            raise SegcliError(f"queue_frames must be at least 1, got {self.queue_frames}")

    def to_dict(self) -> dict[str, Any]:
        return {**self.selection.to_dict(), "track": self.track}


@dataclass
class VideoResult:
    """How one video went. ``status``: ``done`` or ``failed`` (``failed_frame`` where damage stopped it)."""

    source: Path
    status: str
    processed: int = 0
    instances: int = 0
    tracks: int = 0
    reason: str = ""
    failed_frame: int | None = None
    seconds: float = 0.0
    summary: dict[str, Any] | None = None


# --------------------------------------------------------------------------- drawing
def track_labels(instances: Instances, ids: np.ndarray | None) -> Instances:
    """A copy whose class names carry the track id (``cube #3``), for drawing only."""
    if ids is None or not len(instances):
        return instances
    names = tuple(
        name if tid == UNTRACKED else f"{name} #{tid}"
        for name, tid in zip(instances.class_names, ids.tolist())
    )
    return dataclasses.replace(instances, class_names=names, _areas=None)


UNTRACKED_COLOR: Color = (160, 160, 160)
"""Overlay colour of an instance that belongs to no track."""


def track_colors(ids: np.ndarray) -> list[Color]:
    """One colour per instance: its track's (the same in every frame), grey when untracked."""
    return [UNTRACKED_COLOR if tid == UNTRACKED else instance_color(int(tid)) for tid in ids.tolist()]


def draw_frame(
    annotator: Annotator, image: np.ndarray, instances: Instances, ids: np.ndarray | None
) -> np.ndarray:
    """The overlay of one frame: with tracks, each instance in its track's colour and labelled
    with its id (``cube #3 0.97``); without, coloured by index as for images."""
    if ids is None:
        return annotator.annotate(image, instances)
    return annotator.annotate(image, track_labels(instances, ids), track_colors(ids))


# --------------------------------------------------------------------------- records
def frame_record(
    instances: Instances,
    ids: np.ndarray | None,
    frame: DecodedFrame,
    *,
    video_path: str,
    model: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The JSONL record of one frame: ``segcli.instances/1`` plus ``frame``, ``time_s``, ``track_id``."""
    record = instances_record(instances, image_path=video_path, model=model, settings=settings)
    for i, item in enumerate(record["instances"]):
        item["track_id"] = None if ids is None or ids[i] == UNTRACKED else int(ids[i])
    return {"schema": record.pop("schema"), "frame": frame.index, "time_s": round(frame.time_s, 6), **record}


class _ByteBudget:
    """Bytes held by frames in flight; :meth:`acquire` waits while others hold too much."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.waiting = False
        self._cond = threading.Condition()

    def acquire(self, n: int, stop: threading.Event) -> bool:
        """Hold ``n`` bytes once they fit (or nothing else is held); False if ``stop`` is set first."""
        with self._cond:
            while self.held and self.held + n > self.limit:
                if stop.is_set():
                    return False
                self.waiting = True
                self._cond.wait(0.1)
            self.waiting = False
            self.held += n
            return True

    def adjust(self, n: int) -> None:
        """Hold ``n`` bytes more (or fewer), at once."""
        with self._cond:
            self.held += n
            self._cond.notify_all()

    def release(self, n: int) -> None:
        self.adjust(-n)


class _Outputs:
    """The temp files of one video, renamed into place by :meth:`commit` (summary last)."""

    def __init__(
        self,
        paths: dict[str, Path],
        info: VideoInfo,
        fps: float,
        audio: AudioSource | None,
        memory_budget: int = DECODE_BUDGET_BYTES,
    ) -> None:
        self.paths = paths
        self.overlay: VideoWriter | None = None
        self.jsonl: IO[bytes] | None = None
        self._jsonl_tmp: Path | None = None
        try:
            if "overlay" in paths:
                self.overlay = VideoWriter(
                    paths["overlay"],
                    width=info.width,
                    height=info.height,
                    fps=fps,
                    audio=audio,
                    low_memory=ENCODER_BYTES_PER_PIXEL * info.width * info.height > memory_budget,
                )
            if "jsonl" in paths:
                self._jsonl_tmp = make_temp(paths["jsonl"])
                self.jsonl = open(self._jsonl_tmp, "wb")  # noqa: SIM115 (closed by commit/abort)
        except BaseException:
            self.abort()
            raise

    def commit(self, summary: dict[str, Any]) -> None:
        try:
            summary_path = self.paths.get("json")
            if summary_path is not None:  # old outputs must never look complete with new ones
                summary_path.unlink(missing_ok=True)
            if self.overlay is not None:
                self.overlay.commit()
            if self.jsonl is not None and self._jsonl_tmp is not None:
                self.jsonl.close()
                os.replace(self._jsonl_tmp, self.paths["jsonl"])
            if summary_path is not None:
                atomic_write_bytes(summary_path, dumps(summary))
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self.overlay is not None:
            self.overlay.abort()
        if self.jsonl is not None:
            with contextlib.suppress(OSError):
                self.jsonl.close()
        if self._jsonl_tmp is not None:
            self._jsonl_tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- running
def expected_frames(info: VideoInfo, sel: FrameSelection) -> int | None:
    """About how many frames ``sel`` takes from the clip (for progress bars), None if unknown."""
    if info.frames <= 0:
        return None
    first = min(round((sel.start or 0.0) * info.fps), info.frames)
    last = info.frames if sel.end is None else min(round(sel.end * info.fps), info.frames)
    count = -(-max(last - first, 0) // sel.stride)
    return min(count, sel.max_frames) if sel.max_frames is not None else count


_END = object()


def _put(q: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set (never blocks forever on a stopped consumer)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    """The next item, or ``_END`` once ``stop`` is set (never blocks forever on a stopped producer)."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def segment_video(
    segmenter: Any,
    source: Path,
    outputs: dict[str, Path],
    *,
    options: VideoOptions | None = None,
    record_path: str | None = None,
    annotator: Annotator | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Segment (and track) the frames of ``source``; write ``outputs`` (see :func:`video_output_paths`).

    ``segmenter`` is a :class:`segcli.inference.segmenter.Segmenter` (any callable over a batch of RGB
    arrays returning ``list[Instances]`` with ``settings`` and ``model_info()``).
    ``on_frame(processed, expected)`` is called after each segmented batch (``expected``:
    the frames the selection should give, from the declared frame count; None if unknown).
    A clip that cannot be opened fails with no output; damaged data ends the clip where it
    is found: the frames before it are written and the result (and summary) say ``failed``
    with that frame's number. A model error fails the video and removes its partial outputs;
    KeyboardInterrupt removes them too and propagates.
    """
    opts = options or VideoOptions()
    started = time.perf_counter()
    try:
        info = probe_video(source, max_pixels=opts.max_pixels)
    except SegcliError as exc:
        return VideoResult(source, "failed", reason=first_line(exc))
    model_info = segmenter.model_info()
    seg_settings = segmenter.settings.to_dict()
    settings = {**seg_settings, **opts.to_dict()}
    video_path = record_path if record_path is not None else str(source)
    sel = opts.selection
    audio = AudioSource(source, start=sel.start or 0.0, end=sel.end) if info.audio else None
    try:
        outs = _Outputs(outputs, info, info.fps / sel.stride, audio, opts.memory_budget)
    except (OSError, SegcliError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        return VideoResult(source, "failed", reason=f"{source}: cannot write outputs ({why})")
    except Exception as exc:  # PyAV refusing the output (an FFmpegError is an OSError too)
        return VideoResult(source, "failed", reason=f"{source}: cannot write outputs ({first_line(exc)})")
    annot = annotator or OverlayAnnotator()
    tracker = Tracker(opts.tracker) if opts.track else None
    log = TrackLog()

    expected = expected_frames(info, sel)
    stop = threading.Event()
    depth = max(opts.queue_frames, 2 * opts.batch_size)
    frames_q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    results_q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    decode_error: list[BaseException] = []
    write_error: list[BaseException] = []
    counts = {"written": 0, "instances": 0}

    last_index = [-1]
    budget = _ByteBudget(opts.memory_budget)
    declared = BYTES_PER_PIXEL * info.width * info.height

    def decode() -> None:
        try:
            frames = read_frames(source, sel, max_pixels=opts.max_pixels)
            while budget.acquire(declared, stop):  # before the frame is decoded
                frame = next(frames, None)
                if frame is None:
                    budget.release(declared)
                    break
                cost = BYTES_PER_PIXEL * frame.pixels.shape[0] * frame.pixels.shape[1]
                budget.adjust(cost - declared)
                last_index[0] = frame.index
                if not _put(frames_q, (frame, cost), stop):
                    return
        except BaseException as exc:
            decode_error.append(exc)
        _put(frames_q, _END, stop)

    def write() -> None:
        try:
            while True:
                item = _get(results_q, stop)
                if item is _END:
                    return
                frame, cost, instances, ids = item
                if outs.overlay is not None:
                    outs.overlay.write(draw_frame(annot, frame.pixels, instances, ids), frame.time_s)
                record = frame_record(
                    instances, ids, frame, video_path=video_path, model=model_info, settings=seg_settings
                )
                if outs.jsonl is not None:
                    outs.jsonl.write(dumps(record))
                if ids is not None:
                    log.add(frame.index, instances, ids)
                counts["written"] += 1
                counts["instances"] += len(instances)
                del frame, instances, item
                budget.release(cost)
        except BaseException as exc:
            write_error.append(exc)
            stop.set()

    decoder = threading.Thread(target=decode, name="segcli-video-decode", daemon=True)
    writer = threading.Thread(target=write, name="segcli-video-write", daemon=True)
    decoder.start()
    writer.start()
    processed = 0
    model_error: BaseException | None = None
    try:
        ended = False
        while not ended and not stop.is_set():
            batch: list[tuple[DecodedFrame, int]] = []
            while len(batch) < opts.batch_size:
                if batch and budget.waiting and frames_q.empty():
                    break  # the budget holds no more frames: a smaller batch, not a deadlock
                try:
                    item = frames_q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        ended = True
                        break
                    continue
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            if not batch:
                break
            try:
                results = segmenter([f.pixels for f, _ in batch])
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                model_error = exc
                break
            for (frame, cost), instances in zip(batch, results):
                ids = tracker.update(instances) if tracker is not None else None
                if not _put(results_q, (frame, cost, instances, ids), stop):
                    break
            processed += len(batch)
            if on_frame is not None:
                on_frame(processed, expected)
    except BaseException:
        stop.set()
        writer.join()
        decoder.join(timeout=5)
        outs.abort()
        raise
    if model_error is not None:
        stop.set()
    _put(results_q, _END, stop)
    writer.join()
    stop.set()  # releases the decoder if it is still reading ahead
    decoder.join(timeout=5)

    seconds = time.perf_counter() - started
    if model_error is not None or write_error:
        outs.abort()
        if model_error is not None:
            where = processed
            reason = f"{source}: model failed at frame {where} ({first_line(model_error)})"
        else:
            err = write_error[0]
            why = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
            reason = f"{source}: cannot write outputs ({why})"
        return VideoResult(source, "failed", processed=processed, reason=reason, seconds=seconds)

    damage = next((e for e in decode_error if isinstance(e, VideoDecodeError)), None)
    other = next((e for e in decode_error if not isinstance(e, VideoDecodeError)), None)
    if other is not None:
        damage = VideoDecodeError(f"{source}: {first_line(other)}", last_index[0] + 1)
    if not counts["written"]:  # nothing worth keeping: no outputs, so a later run tries again
        outs.abort()
        if damage is None:
            reason = f"{source}: no frames to process"
            if sel.start is not None or sel.end is not None:
                reason += (
                    f" between --start {sel.start or 0} and --end {sel.end if sel.end is not None else 'end'}"
                )
            return VideoResult(source, "failed", reason=reason, seconds=seconds)
        return VideoResult(source, "failed", reason=str(damage), failed_frame=damage.frame, seconds=seconds)
    status = "failed" if damage is not None else "complete"
    summary = {
        "schema": VIDEO_SCHEMA,
        "status": status,
        "error": str(damage) if damage is not None else None,
        "failed_frame": damage.frame if damage is not None else None,
        "video": {"path": video_path, **info.to_dict()},
        "fps": round(info.fps, 6),
        "frames": info.frames,
        "processed": counts["written"],
        "settings": settings,
        "tracker": dataclasses.asdict(opts.tracker) if opts.track else None,
        "model": model_info,
        "outputs": {kind: path.name for kind, path in outputs.items() if kind != "json"},
        "overlay": (
            {
                "codec": outs.overlay.codec,
                "width": outs.overlay.encoded_size[0],
                "height": outs.overlay.encoded_size[1],
                "frames": outs.overlay.frames,
                "audio": outs.overlay.audio_note or ("copied" if info.audio else None),
                "shortened_pauses": outs.overlay.shortened_gaps,
                "low_memory": outs.overlay.low_memory,
            }
            if outs.overlay is not None
            else None
        ),
        "instances": counts["instances"],
        "tracks": log.entries() if opts.track else None,
        "seconds": round(seconds, 3),
        "frames_per_second": round(counts["written"] / seconds, 3) if seconds > 0 else None,
    }
    try:
        outs.commit(summary)
    except Exception as exc:  # the muxer refusing the file at its end, a full disk: this video only
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        reason = f"{source}: cannot write outputs ({why})"
        return VideoResult(source, "failed", processed=counts["written"], reason=reason, seconds=seconds)
    return VideoResult(
        source,
        "failed" if damage is not None else "done",
        processed=counts["written"],
        instances=counts["instances"],
        tracks=len(log),
        reason=str(damage) if damage is not None else "",
        failed_frame=damage.frame if damage is not None else None,
        seconds=seconds,
        summary=summary,
    )


# --------------------------------------------------------------------------- batch stage
def describe_video(result: VideoResult) -> str:
    """One line about a finished video, e.g. ``30 frames, 3 tracks, 90 instances``."""
    parts = [f"{result.processed} frames"]
    if result.summary is not None and result.summary.get("tracks") is not None:
        parts.append(f"{result.tracks} tracks")
    parts.append(f"{result.instances} instances")
    return ", ".join(parts)


def process_video(
    segmenter: Any,
    plan: OutputPlan,
    job: Job,
    options: VideoOptions,
    *,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> ItemResult:
    """The batch stage of one video: segment it into ``plan``'s outputs; one ``ItemResult``.

    Any engine may call it with its own segmenter (the video is one unit of work).
    ``record`` is the ``segcli.video/1`` summary when one was written.
    """
    opts = dataclasses.replace(options, batch_size=job.batch_size, max_pixels=job.max_pixels)
    result = segment_video(
        segmenter,
        plan.source,
        video_output_paths(plan.base, job.save),
        options=opts,
        record_path=str(plan.source),
        on_frame=on_frame,
    )
    if result.status == "done":
        return ItemResult(
            plan,
            "done",
            result.instances,
            summary=describe_video(result),
            record=result.summary,
            frames=result.processed,
        )
    return ItemResult(
        plan, "failed", result.instances, reason=result.reason, record=result.summary, frames=result.processed
    )


def earlier_failure(summary_path: Path) -> str | None:
    """The error an earlier run recorded in a video's summary (a damaged clip), else None."""
    try:
        summary = parse_json(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if summary.get("schema") == VIDEO_SCHEMA and summary.get("status") == "failed":
        return str(summary.get("error") or "failed")
    return None
