"""``segcli demo``: every command once, offline, on the bundled model."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from segcli.cli.common import OutputOpt
from segcli.cli.console import cli_errors, err_console, examples, out_console
from segcli.cli.group import app
from segcli.cli.options import (
    DeviceOpt,
    HelpWithModelDefaults,
    ModelOptions,
    PrecisionOpt,
)

if TYPE_CHECKING:
    from segcli.runs.engines.base import SegmenterLike


@app.command(cls=HelpWithModelDefaults, epilog=examples("segcli demo", "segcli demo -o /tmp/segcli-demo"))
@cli_errors
def demo(
    output: OutputOpt = Path("segcli-demo"), device: DeviceOpt = "auto", precision: PrecisionOpt = None
) -> None:
    """Run predict, batch and compare offline on generated block scenes.

    Uses the bundled blocks model: no network, no download.
    """
    from segcli.demo import run_demo

    opts = ModelOptions(model="blocks", device=device, precision=precision)
    resolved = opts.check_precision()  # an unsupported --precision: exit 2 before the model loads
    with err_console().status("segmenting the example scenes with the bundled blocks model"):
        result = run_demo(output, device=device, precision=resolved, compare=_demo_compare)
    say = functools.partial(out_console().print, highlight=False, markup=False, soft_wrap=True)
    say(f"segcli demo wrote everything under {output}/")
    say(f"  inputs   {result.inputs}/  (generated block scenes)")
    for kind, path in result.predict.items():
        say(f"  predict  {path}  ({kind})")
    counts = result.batch_counts
    say(
        f"  batch    {result.batch_dir}/  ({counts['done']} images, {counts['instances']} instances; "
        f"run.json, coco.json)"
    )
    for kind, path in result.extra.items():
        say(f"  compare  {path}  ({kind})")
    say(
        f"Start with {result.predict['overlay']}: two red cubes, one partly hiding the other, "
        "each with its own mask."
    )


def _demo_compare(seg: SegmenterLike, image: Path, out_dir: Path) -> dict[str, Path]:
    from segcli.figures.compare import run_compare

    return run_compare(seg, image, out_dir).paths()
