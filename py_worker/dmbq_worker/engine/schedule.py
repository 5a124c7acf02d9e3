"""Learning-rate schedules, stepped once per epoch: a pure function of the epoch, so resuming needs only the epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dmbq_worker.errors import invalid

SCHEDULE_KINDS = ("cosine", "step", "constant")


@dataclass(frozen=True)
class LrSchedule:
    kind: str
    epochs: int
    base_lr: float
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.1
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise invalid("schedule.kind", f"unknown schedule '{self.kind}'; known: {', '.join(SCHEDULE_KINDS)}")
        if self.epochs <= 0:
            raise invalid("schedule.epochs", f"must be > 0, got {self.epochs}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise invalid("schedule.warmup_epochs", f"must be < schedule.epochs ({self.epochs}), got {self.warmup_epochs}")
        if list(self.milestones) != sorted(self.milestones):
            raise invalid("schedule.milestones", f"must be ascending, got {list(self.milestones)}")
        if not (self.gamma > 0):
            raise invalid("schedule.gamma", f"must be > 0, got {self.gamma}")

    def lr_at(self, epoch: int) -> float:
        """The LR used throughout epoch `epoch` (0-based). Past the schedule's end it stays at its last value."""
        if epoch < self.warmup_epochs:
            return self.base_lr * (epoch + 1) / (self.warmup_epochs + 1)
        e = min(epoch, self.epochs - 1)
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            return self.base_lr * self.gamma ** sum(1 for m in self.milestones if e >= m)
        span = max(1, self.epochs - self.warmup_epochs)
        t = (e - self.warmup_epochs) / span
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * t))

    def to_state(self) -> dict[str, object]:
        return {
            "kind": self.kind, "epochs": self.epochs, "base_lr": self.base_lr, "milestones": list(self.milestones),
            "gamma": self.gamma, "warmup_epochs": self.warmup_epochs,
        }
