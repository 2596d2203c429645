"""The engine contract: a picklable :class:`Job`, one :class:`ItemResult` per input, the
:class:`Engine` protocol, and the three stages of every input (read -> segment -> write)
that every engine calls, so their outputs are byte-identical."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.core.instances import Instances
from segcli.core.settings import Settings
from segcli.io.images import DEFAULT_MAX_PIXELS, LoadedImage, read_image
from segcli.outputs.plans import OutputPlan
from segcli.outputs.records import instances_record
from segcli.outputs.writers import write_outputs

if TYPE_CHECKING:
    from segcli.inference.segmenter import Segmenter

Status = Literal["done", "skipped", "failed"]


class SegmenterLike(Protocol):
    """What engines need of a segmenter (``segcli.inference.segmenter.Segmenter`` or a test fake)."""

    settings: Settings

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]: ...

    def model_info(self) -> dict[str, Any]: ...

    @property
    def categories(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class SegmenterSpec:
    """How to build a :class:`~segcli.inference.segmenter.Segmenter`: picklable, so that a worker
    process (a Ray actor) can build its own copy of the model."""

    model: str | None = None  # None: what the weights checkpoint names, else coco
    weights: str | None = None
    device: str = "auto"
    settings: Settings = field(default_factory=Settings)  # settings.precision: --precision
    tile_batch_size: int = 1
    """Tiles per forward pass with ``settings.tile`` (``--batch-size``)."""

    def build(self, *, progress: bool = False) -> Segmenter:
        from segcli.inference.segmenter import Segmenter

        return Segmenter(
            self.model,
            weights=self.weights,
            device=self.device,
            settings=self.settings,
            progress=progress,
            tile_batch_size=self.tile_batch_size,
        )


@dataclass(frozen=True)
class Job:
    """Everything an engine needs for each input besides the segmenter (picklable)."""

    save: tuple[str, ...]
    model_info: dict[str, Any]
    settings: dict[str, Any]
    batch_size: int = 1
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    categories: tuple[str, ...] = ()  # the model's class list (numbers YOLO-seg classes)
    tiled: bool = False
    """The segmenter slices images (``--tile``): large images are read into a memory map."""
    draw_tiles: bool = False
    """Overlays also draw the tile grid (``--debug`` with ``--tile``)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")

    @classmethod
    def for_segmenter(
        cls,
        segmenter: SegmenterLike,
        save: Sequence[str],
        *,
        batch_size: int = 1,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        draw_tiles: bool = False,
    ) -> Job:
        """The job of a run with ``segmenter``: its model info and (complete) settings."""
        tiled = getattr(segmenter.settings, "tile", None) is not None
        return cls(
            save=tuple(save),
            model_info=segmenter.model_info(),
            settings=segmenter.settings.to_dict(),
            batch_size=batch_size,
            max_pixels=max_pixels,
            categories=tuple(segmenter.categories),
            tiled=tiled,
            draw_tiles=draw_tiles and tiled,
        )


@dataclass
class ItemResult:
    """The outcome of one input: small and picklable (engines send it to the driver)."""

    plan: OutputPlan
    status: Status
    instances: int = 0
    reason: str = ""
    summary: str = ""
    record: dict[str, Any] | None = None  # the JSON written; dropped once reported
    frames: int = 0  # frames segmented (a video); 0 for an image


Emit = Callable[[ItemResult], None]


class Engine(Protocol):
    """Runs the three stages of every plan it is given; the seam between a run and its workers.

    The contract, for every engine:

    - **Input.** ``plans`` are exactly the inputs to do (complete ones were already
      skipped by :func:`segcli.runs.batch.run_plans`); ``job`` is the same for all of them.
    - **Work.** Each plan goes through :func:`read_input`, :func:`segment_images` and
      :func:`write_result` (or :func:`process_plans`, which chains them), so that the
      files written do not depend on the engine. Failures become results through
      :func:`read_failure`, :func:`model_failure` and :func:`write_failure`; a failing
      input never stops the run, and ``run`` raises only for a fault of the engine itself.
    - **Reporting.** ``emit`` is called exactly once per finished plan, in any order,
      and always from the thread that called ``run`` (callers update progress bars in
      it without locks). A ``done`` result's ``record`` is the JSON just written.
    - **Interrupt.** On KeyboardInterrupt the engine starts no new input, finishes and
      reports the writes already started (good work is never lost), and returns True;
      inputs it never finished are not reported. Otherwise it returns False.
    - **Memory.** Decoded images in flight are bounded by bytes, not only by count (a file
      may declare 144 MP in 17 KB): see ``LocalEngine``'s ``decode_budget``. Batching never
      changes results (the segmenter runs only same-size inputs together).
    - **No run files.** ``run.json`` (its start record too), ``coco.json``, the output-folder
      lock, the settings check, the verification of complete outputs and stale temp-file
      cleanup belong to :func:`segcli.runs.batch.run_batch`, above the engine. SIGTERM reaches
      the engine as KeyboardInterrupt (the CLI's :func:`segcli.core.signals.stop_on_sigterm`).
    """

    name: str

    def run(self, plans: Sequence[OutputPlan], job: Job, emit: Emit) -> bool:
        """Process ``plans`` as above; return True if interrupted."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records under ``engine``: at least ``name``, e.g. workers, resources."""
        ...


# --------------------------------------------------------------------------- stages
def read_input(plan: OutputPlan, job: Job) -> LoadedImage:
    """Decode one input; with tiling, a large image into a memory map (:mod:`segcli.io.large`)."""
    if job.tiled:
        from segcli.io.large import read_image_mapped

        return read_image_mapped(plan.source, max_pixels=job.max_pixels)
    return read_image(plan.source, max_pixels=job.max_pixels)


def read_failure(plan: OutputPlan, exc: BaseException) -> ItemResult:
    if isinstance(exc, SegcliError):  # whole: one line, unless the path itself holds a newline
        return ItemResult(plan, "failed", reason=str(exc))
    return ItemResult(plan, "failed", reason=f"{plan.source}: cannot read ({first_line(exc)})")


def segment_images(segmenter: SegmenterLike, images: Sequence[np.ndarray]) -> list[Instances | BaseException]:
    """Segment a batch: one ``Instances`` or the exception per image, in order.

    If the batch fails, it is retried image by image so that one bad image fails alone.
    KeyboardInterrupt and SystemExit propagate.
    """
    try:
        results: list[Instances | BaseException] = list(segmenter(list(images)))
        if len(results) != len(images):
            raise RuntimeError(f"the segmenter returned {len(results)} results for {len(images)} images")
        return results
    except Exception as exc:
        if len(images) == 1:
            return [exc]
        return [outcome for image in images for outcome in segment_images(segmenter, [image])]


def model_failure(plan: OutputPlan, exc: BaseException) -> ItemResult:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        reason = (
            f"{plan.source}: out of memory in the model ({first_line(exc)}); try a smaller "
            "--max-size, --batch-size 1 or --device cpu"
        )
    else:
        reason = f"{plan.source}: model failed ({first_line(exc)})"
    return ItemResult(plan, "failed", reason=reason)


def describe_instances(instances: Instances) -> str:
    if not len(instances):
        return "no instances"
    names: dict[str, int] = {}
    for name in instances.class_names:
        names[name] = names.get(name, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(names.items(), key=lambda kv: -kv[1]))
    return f"{len(instances)} instances ({parts})"


def write_result(plan: OutputPlan, image: LoadedImage, instances: Instances, job: Job) -> ItemResult:
    """Write one input's outputs (JSON last: the completion mark)."""
    record = instances_record(
        instances,
        image_path=str(plan.source),
        model=job.model_info,
        settings=job.settings,
        polygons="polygons" in job.save,
    )
    grid = record.get("tiling", {}).get("grid") if job.draw_tiles else None
    write_outputs(
        plan.paths(job.save), image.pixels, instances, record, categories=job.categories, tile_grid=grid
    )
    return ItemResult(plan, "done", len(instances), record=record, summary=describe_instances(instances))


def write_failure(plan: OutputPlan, exc: BaseException) -> ItemResult:
    if isinstance(exc, OSError):
        return ItemResult(
            plan, "failed", reason=f"{plan.source}: cannot write outputs ({exc.strerror or first_line(exc)})"
        )
    return ItemResult(plan, "failed", reason=f"{plan.source}: {first_line(exc)}")


def process_plans(segmenter: SegmenterLike, plans: Sequence[OutputPlan], job: Job) -> list[ItemResult]:
    """Read, segment and write ``plans`` one after another (no threads): the unit of work
    of a worker process. Returns one result per plan, in order; records are dropped."""
    results: dict[int, ItemResult] = {}
    loaded: list[tuple[int, LoadedImage]] = []
    for i, plan in enumerate(plans):
        try:
            loaded.append((i, read_input(plan, job)))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            results[i] = read_failure(plan, exc)
    for start in range(0, len(loaded), job.batch_size):
        chunk = loaded[start : start + job.batch_size]
        outcomes = segment_images(segmenter, [im.pixels for _, im in chunk])
        for (i, image), outcome in zip(chunk, outcomes):
            plan = plans[i]
            if isinstance(outcome, BaseException):
                results[i] = model_failure(plan, outcome)
                continue
            try:
                results[i] = write_result(plan, image, outcome, job)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                results[i] = write_failure(plan, exc)
            results[i].record = None
    return [results[i] for i in range(len(plans))]


__all__ = [
    "Engine",
    "ItemResult",
    "Job",
    "SegmenterLike",
    "SegmenterSpec",
    "Status",
    "process_plans",
]
