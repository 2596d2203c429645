"""``segcli demo``: the whole tool, offline, on generated block scenes and the bundled model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from segcli.batch import Runner, discover, run_summary, write_run_files
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
    from datetime import datetime, timezone

    from segcli.blocks.examples import write_examples

    inputs = out_dir / "inputs"
    write_examples(inputs)
    seg = Segmenter("blocks", device=device)

    seed_case = inputs / SEED_CASE
    predict_dir = out_dir / "predict"
    [plan] = plan_outputs([seed_case], predict_dir)
    Runner(seg, save=OUTPUT_KINDS, overwrite=True).run([plan])

    started = datetime.now(timezone.utc)
    batch_dir = out_dir / "batch"
    found = discover(inputs)
    plans = plan_outputs(found.files, batch_dir, root=inputs)
    runner = Runner(seg, save=("overlay", "json"), overwrite=True)
    report = runner.run(plans)
    summary = run_summary(report, input_dir=inputs, out_dir=batch_dir, runner=runner, started=started)
    write_run_files(batch_dir, summary, plans, runner, inputs)

    result = DemoResult(
        inputs=inputs,
        predict=plan.paths(OUTPUT_KINDS),
        batch_dir=batch_dir,
        batch_counts=summary["counts"],
    )
    if compare is not None:
        result.extra.update(compare(seg, seed_case, out_dir / "compare"))
    return result
