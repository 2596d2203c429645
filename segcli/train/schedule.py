"""The learning-rate schedule: warm-up, then a decay that ends with the run.

Where the run is, ``progress`` in [0, 1], is the larger of two fractions: steps done of the
steps planned (``--epochs``) and seconds spent of the budget (``--time``). With a wall-clock
budget the decay therefore fits itself to the budget whatever the machine's speed: the
learning rate reaches its floor as the clock runs out, and the step time measured so far
decides when the last step starts (see :func:`segcli.train.loop.run_train`).

- ``cosine`` (default): ``floor + (1 - floor) * (1 + cos(pi * progress)) / 2``, floor 2 %.
- ``linear``: from the peak down to the floor.
- ``step``: x0.1 every 3 epochs (torchvision's tutorial: ``StepLR(step_size=3, gamma=0.1)``).
- ``constant``.

Warm-up multiplies the first ``warmup`` steps by a ramp from 1 % to 100 % (``warmup`` < 1: that
fraction of the run's progress instead of a step count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("cosine", "linear", "step", "constant")
FLOOR = 0.02
STEP_EPOCHS, STEP_GAMMA = 3, 0.1


@dataclass(frozen=True)
class Schedule:
    peak: float
    kind: str = "cosine"
    warmup: float = 0.05  # < 1: a fraction of the progress; >= 1: steps
    floor: float = FLOOR

    def factor(self, progress: float, step: int, epoch: int) -> float:
        """The multiplier of the peak learning rate at this point of the run."""
        p = min(1.0, max(0.0, progress))
        if self.kind == "cosine":
            decay = self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * p))
        elif self.kind == "linear":
            decay = self.floor + (1 - self.floor) * (1 - p)
        elif self.kind == "step":
            decay = STEP_GAMMA ** (epoch // STEP_EPOCHS)
        else:
            decay = 1.0
        if self.warmup >= 1:
            ramp = min(1.0, (step + 1) / self.warmup)
        elif self.warmup > 0:
            ramp = min(1.0, p / self.warmup)
        else:
            ramp = 1.0
        return decay * (0.01 + 0.99 * ramp)

    def lr(self, progress: float, step: int, epoch: int) -> float:
        return self.peak * self.factor(progress, step, epoch)
