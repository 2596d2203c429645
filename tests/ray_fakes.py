"""Segmenters for Ray actors without a model, and without torch (an actor that imports torch
pays seconds on every start and restart).

Ray pickles a spec by reference, so each actor imports this module: keep it torch-free
(``python -c "import tests.ray_fakes, sys; print('torch' in sys.modules)"`` prints False).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segcli.core.instances import Instances
from segcli.core.settings import Settings
from tests.fakes import FAKE_SETTINGS, FakeSegmenter

KILL_WIDTH = 13
"""An image this many pixels wide kills the worker process segmenting it (as the OOM killer does)."""
MEMORY_ERROR_WIDTH = 17
"""An image this many pixels wide raises MemoryError in the fake model."""
STALL_WIDTH = 19
"""With ``record``: the first worker to segment an image this wide hangs on it (until a test
kills it); the workers after it do not."""


@dataclass(frozen=True)
class FakeSpec:
    """Builds a :class:`WorkerFake` inside a Ray actor (picklable, like ``SegmenterSpec``).

    ``record``: a folder where each building process leaves ``PID.pid``, and the one that
    hangs on :data:`STALL_WIDTH` leaves ``stalled`` (holding its pid). ``delay``: seconds per
    forward call. The driver's segmenter is ``FakeSegmenter(settings=spec.settings)``: same
    model info and settings as the workers'.
    """

    settings: Settings = FAKE_SETTINGS
    delay: float = 0.0
    record: str | None = None

    def build(self, *, progress: bool = False) -> WorkerFake:
        stalled = None
        if self.record is not None:
            Path(self.record, f"{os.getpid()}.pid").write_text("")
            stalled = Path(self.record, "stalled")
        return WorkerFake(settings=self.settings, delay=self.delay, stalled=stalled)


class WorkerFake(FakeSegmenter):
    """:class:`tests.fakes.FakeSegmenter` (same outputs, so a local run with it is the
    reference), slowed by ``delay`` seconds a call; an image :data:`KILL_WIDTH` wide SIGKILLs
    the process, one :data:`MEMORY_ERROR_WIDTH` wide raises MemoryError, and one
    :data:`STALL_WIDTH` wide hangs the first process to meet it (it leaves the mark ``stalled``)."""

    def __init__(self, *, settings: Settings, delay: float = 0.0, stalled: Path | None = None) -> None:
        super().__init__(
            settings=settings, fail_on={MEMORY_ERROR_WIDTH: MemoryError("fake allocation failed")}
        )
        self.delay = delay
        self.stalled = stalled

    def __call__(self, images: Sequence[np.ndarray]) -> list[Instances]:
        if any(int(image.shape[1]) == KILL_WIDTH for image in images):
            os.kill(os.getpid(), signal.SIGKILL)
        stall = any(int(image.shape[1]) == STALL_WIDTH for image in images)
        if stall and self.stalled is not None and not self.stalled.exists():
            part = self.stalled.with_name(f".{self.stalled.name}.part")
            part.write_text(str(os.getpid()))
            part.rename(self.stalled)  # whole when seen: it names this process
            time.sleep(600)
        time.sleep(self.delay)
        return super().__call__(images)


def use_fakes_in_cli(delay: float = 0.0) -> Callable[[], None]:
    """Make ``segcli batch`` run fakes: :class:`FakeSegmenter` in this process (the driver,
    and the local engine) and :class:`FakeSpec` in Ray workers, both with the settings the
    options give on :data:`FAKE_SETTINGS`. The fakes run the precision asked for on any
    device (the real check resolves ``--device``, which imports torch: seconds).
    Returns a function that undoes it."""
    import segcli.cli.runtime
    from segcli.cli.options import ModelOptions

    def load(opts: ModelOptions, *, quiet: bool = False) -> FakeSegmenter:
        return FakeSegmenter(settings=opts.settings().with_defaults(FAKE_SETTINGS))

    def spec(opts: ModelOptions) -> FakeSpec:
        return FakeSpec(settings=opts.settings().with_defaults(FAKE_SETTINGS), delay=delay)

    def check_precision(opts: ModelOptions) -> str:
        return opts.requested_precision()

    patches: list[tuple[object, str, object]] = [
        (segcli.cli.runtime, "DEFAULT", segcli.cli.runtime.Runtime(load_segmenter=load)),
        (ModelOptions, "spec", spec),
        (ModelOptions, "check_precision", check_precision),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)

    def undo() -> None:
        for owner, name, value in saved:
            setattr(owner, name, value)

    return undo
