"""``python -m tests.fake_cli batch ...``: the real CLI in a real process on a FakeSegmenter.

For tests that need a process of their own (signals, pipes, two runs at once) without
loading a model. Environment:

- ``SEGCLI_FAKE_DELAY``: seconds each forward call sleeps (default 0.2);
- ``SEGCLI_FAKE_STALL_AFTER=N``: forward calls after the first N sleep until the process is
  stopped (at most 10 minutes), so a test can signal a run that has done exactly N calls
  and is still running, whatever the machine's load;
- ``SEGCLI_FAKE_STALLED=PATH``: the file created when that stall begins (the main thread is
  then in the forward call, where a real run spends its time).

A fake runs no model, so the process never imports torch (seconds of the start-up): the
precision check keeps only its torch-free part (the ``--precision`` / ``--half`` values).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import segcli.cli.root
from segcli.cli.options import ModelOptions
from segcli.cli.runtime import Runtime
from segcli.core.instances import Instances
from tests.fakes import FAKE_SETTINGS, FakeSegmenter

STALL_S = 600.0
REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "tests.fake_cli"]
"""The command line that starts this module; the CLI's own arguments follow."""


def environment(*, stall_after: int | None = None, stalled: Path | None = None) -> dict[str, str]:
    """The environment for :data:`COMMAND`: this repo importable, no delay per forward call,
    and the ``SEGCLI_FAKE_STALL_AFTER`` / ``SEGCLI_FAKE_STALLED`` given."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEGCLI_FAKE_DELAY": "0"}
    if stall_after is not None:
        env["SEGCLI_FAKE_STALL_AFTER"] = str(stall_after)
    if stalled is not None:
        env["SEGCLI_FAKE_STALLED"] = str(stalled)
    return env


class SlowFake(FakeSegmenter):
    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        stall_after = os.environ.get("SEGCLI_FAKE_STALL_AFTER")
        if stall_after is not None and len(self.calls) >= int(stall_after):
            stalled = os.environ.get("SEGCLI_FAKE_STALLED")
            if stalled:
                Path(stalled).touch()
            time.sleep(STALL_S)
        time.sleep(float(os.environ.get("SEGCLI_FAKE_DELAY", "0.2")))
        return super().__call__(images)


def _load(opts: ModelOptions, *, quiet: bool = False) -> FakeSegmenter:
    return SlowFake(settings=opts.settings().with_defaults(FAKE_SETTINGS))


def _check_precision(opts: ModelOptions) -> str:
    return opts.requested_precision()  # no device or native-support check: those import torch


if __name__ == "__main__":
    ModelOptions.check_precision = _check_precision  # type: ignore[method-assign]
    segcli.cli.root.main(runtime=Runtime(load_segmenter=_load))
