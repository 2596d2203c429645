"""``segcli demo``: the whole tool, offline, on generated block scenes and the bundled model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from segcli.core.settings import Settings
from segcli.io.locks import output_lock
from segcli.outputs.plans import OUTPUT_KINDS, plan_outputs
from segcli.runs.batch import BatchOptions, run_batch, run_plans
from segcli.runs.engines.base import Job, SegmenterLike, SegmenterSpec
from segcli.runs.engines.local import LocalEngine
from segcli.runs.runfiles import RunCounts, write_yolo_dataset

SEED_CASE = "two-red-cubes.png"
DEMO_SAVE = ("overlay", "json")
"""What the demo's batch step writes (its predict step writes every output kind)."""

CompareStep = Callable[[SegmenterLike, Path, Path], dict[str, Path]]


@dataclass
class DemoResult:
    inputs: Path
    predict: dict[str, Path]
    batch_dir: Path
    batch_counts: RunCounts
    extra: dict[str, Path] = field(default_factory=dict)


def run_demo(
    out_dir: Path,
    *,
    device: str = "auto",
    precision: str = "fp32",
    segmenter: SegmenterLike | None = None,
    compare: CompareStep | None = None,
) -> DemoResult:
    """Write example scenes, then run ``predict``, ``batch`` and (if given) ``compare`` on them.

    ``segmenter`` defaults to the bundled blocks model on ``device`` in ``precision``. The batch step is
    :func:`segcli.runs.batch.run_batch` with ``overwrite``: a demo redoes every example, so
    stale temp files are removed and nothing of an earlier run mixes in. ``out_dir`` is locked
    (exclusive) throughout, each step's folder too while it writes.
    """

    with output_lock(out_dir):  # one demo at a time in a folder; batch and predict there refused
        return _run_demo(out_dir, device=device, precision=precision, segmenter=segmenter, compare=compare)


def _run_demo(
    out_dir: Path,
    *,
    device: str,
    precision: str,
    segmenter: SegmenterLike | None,
    compare: CompareStep | None,
) -> DemoResult:
    from segcli.models.blocks.examples import write_examples

    inputs = out_dir / "inputs"
    write_examples(inputs)
    if segmenter is None:
        settings = Settings(precision=precision)
        segmenter = SegmenterSpec("blocks", device=device, settings=settings).build()
    seg = segmenter

    seed_case = inputs / SEED_CASE
    [plan] = plan_outputs([seed_case], out_dir / "predict")
    with output_lock(out_dir / "predict", shared=True):
        run_plans([plan], Job.for_segmenter(seg, OUTPUT_KINDS), LocalEngine(seg), overwrite=True)
        write_yolo_dataset(out_dir / "predict", seg.categories, None)

    batch_dir = out_dir / "batch"
    outcome = run_batch(inputs, batch_dir, lambda: seg, options=BatchOptions(save=DEMO_SAVE, overwrite=True))

    result = DemoResult(
        inputs=inputs,
        predict=plan.paths(OUTPUT_KINDS),
        batch_dir=batch_dir,
        batch_counts=outcome.summary["counts"],
    )
    if compare is not None:
        result.extra.update(compare(seg, seed_case, out_dir / "compare"))
    return result
