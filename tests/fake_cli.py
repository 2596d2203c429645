"""``python -m tests.fake_cli batch ...``: the real CLI in a real process on a slow FakeSegmenter.

For tests that need a process of their own (signals, two runs at once) without loading a
model. ``SEGCLI_FAKE_DELAY`` seconds per forward call (default 0.2).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

import segcli.cli
from segcli.instances import Instances
from segcli.options import ModelOptions
from tests.fakes import FAKE_SETTINGS, FakeSegmenter


class SlowFake(FakeSegmenter):
    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        time.sleep(float(os.environ.get("SEGCLI_FAKE_DELAY", "0.2")))
        return super().__call__(images)


def _load(opts: ModelOptions, *, quiet: bool = False) -> FakeSegmenter:
    return SlowFake(settings=opts.settings().with_defaults(FAKE_SETTINGS))


if __name__ == "__main__":
    segcli.cli.load_segmenter = _load  # type: ignore[assignment]
    segcli.cli.main()
