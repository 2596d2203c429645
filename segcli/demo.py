"""``segcli demo``: the whole tool, offline, on generated block scenes and the bundled model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from segcli.batch import BatchOptions, run_batch, run_plans
from segcli.engines import Job
from segcli.engines.local import LocalEngine
from segcli.predictor import Segmenter
from segcli.writers import OUTPUT_KINDS, plan_outputs

SEED_CASE = "two-red-cubes.png"


@dataclass
class DemoResult:
    inputs: Path
    predict: dict[str, Path]
    batch_dir: Path
    batch_counts: dict[str, int]
    extra: dict[str, Path] = field(default_factory=dict)


def run_demo(
    out_dir: Path,
    *,
    device: str = "auto",
    compare: Callable[[Segmenter, Path, Path], dict[str, Path]] | None = None,
) -> DemoResult:
    """Write example scenes, then run ``predict``, ``batch`` and (if given) ``compare`` on them."""
    from segcli.blocks.examples import write_examples

    inputs = out_dir / "inputs"
    write_examples(inputs)
    seg = Segmenter("blocks", device=device)

    seed_case = inputs / SEED_CASE
    predict_dir = out_dir / "predict"
    [plan] = plan_outputs([seed_case], predict_dir)
    run_plans([plan], Job.for_segmenter(seg, OUTPUT_KINDS), LocalEngine(seg), overwrite=True)

    batch_dir = out_dir / "batch"
    outcome = run_batch(
        inputs, batch_dir, lambda: seg, options=BatchOptions(save=("overlay", "json"), overwrite=True)
    )

    result = DemoResult(
        inputs=inputs,
        predict=plan.paths(OUTPUT_KINDS),
        batch_dir=batch_dir,
        batch_counts=outcome.summary["counts"],
    )
    if compare is not None:
        result.extra.update(compare(seg, seed_case, out_dir / "compare"))
    return result
