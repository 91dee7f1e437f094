"""Per-step learning-rate schedules with linear warm-up."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["WarmupSchedule"]


@dataclass(frozen=True)
class WarmupSchedule:
    """Multiplier of the peak learning rate at optimiser step ``step`` (a LambdaLR lambda; picklable).

    Linear warm-up from 0 over ``warmup_steps``, then ``'cosine'`` decay to ``min_ratio`` at ``total_steps``,
    ``'step'`` decay by ``gamma`` every ``step_size`` steps, or ``'none'`` (constant).
    """

    kind: str
    total_steps: int
    warmup_steps: int = 0
    step_size: int = 1
    gamma: float = 0.1
    min_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.kind == "step":
            return self.gamma ** ((step - self.warmup_steps) // max(1, self.step_size))
        return 1.0
