"""The frozen-encoder trainers' shared step start: the learning rate of the schedule, until the time budget ends."""
import torch

from lewm.training.predictor_tuning import TuneSettings
from lewm.training.schedule import begin_step


def test_begin_step_sets_the_schedules_rate_until_the_budget_is_spent():
    settings = TuneSettings(lr=1e-3, warmup=10, steps=1000, time_budget_minutes=1.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    lines = []
    assert begin_step(optimizer, settings, 5, 30.0, lines.append)
    assert optimizer.param_groups[0]["lr"] == settings.lr_at(5, 30.0) == 1e-3 * 6 / 10
    assert lines == []
    assert not begin_step(optimizer, settings, 400, 61.0, lines.append)
    assert optimizer.param_groups[0]["lr"] == 1e-3 * 6 / 10  # left as it was
    assert lines == ["time budget of 1.0 min reached at step 400"]
