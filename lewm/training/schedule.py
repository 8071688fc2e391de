"""The learning-rate schedule of the trainers on a frozen encoder (decoder, ensemble, predictor tuning), and the
checks of the settings they share."""
from __future__ import annotations

import math

from lewm_errors import UserError


def warmup_cosine(lr: float, step: int, warmup: int, steps: int, elapsed_s: float = 0.0,
                  budget_minutes: float | None = None, floor: float = 0.05) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to floor x lr over whichever ends first: the steps
    after the warm-up, or the time budget (elapsed_s = training wall time so far)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    if budget_minutes:
        progress = max(progress, elapsed_s / (60 * budget_minutes))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def check_budget_and_held_out(trainer: str, time_budget_minutes: float | None, val_fraction: float) -> None:
    """UserError unless the time budget (if any) is positive and the held-out share lies in (0, 1)."""
    if time_budget_minutes is not None and time_budget_minutes <= 0:
        raise UserError(f"the {trainer}'s time budget must be positive (minutes)")
    if not 0 < val_fraction < 1:
        raise UserError(f"the held-out share must be between 0 and 1, got {val_fraction}")


def begin_step(optimizer, settings, step: int, elapsed_s: float, log) -> bool:
    """At the top of a training step: False (and a log line) once settings.time_budget_minutes of training wall time
    have passed; else the step's learning rate, settings.lr_at(step, elapsed_s), set on every group, and True."""
    if settings.time_budget_minutes and elapsed_s > 60 * settings.time_budget_minutes:
        log(f"time budget of {settings.time_budget_minutes} min reached at step {step}")
        return False
    for group in optimizer.param_groups:
        group["lr"] = settings.lr_at(step, elapsed_s)
    return True
