"""Fixtures for the model tests: one thread (the machine's cores are shared) and tiny models."""
from typing import Callable

import pytest
import torch

from lewm.config import preset
from lewm.model import LeWM


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_model() -> Callable[..., LeWM]:
    """Tiny LeWM in eval mode, non-trivial action statistics, non-zero AdaLN modulation (so blocks do something)."""
    def make(**overrides) -> LeWM:
        config = preset("tiny", action_mean=[0.1, -0.2], action_std=[0.5, 2.0], **overrides)
        model = LeWM(config)
        with torch.no_grad():
            for block in model.predictor.transformer.layers:
                block.adaLN_modulation[1].weight.normal_(std=0.1)
                block.adaLN_modulation[1].bias.normal_(std=0.1)
        return model.eval()
    return make


@pytest.fixture
def make_frames() -> Callable[..., torch.Tensor]:
    """Random uint8 frames of shape (*lead, size, size, 3)."""
    def make(*lead: int, size: int = 32) -> torch.Tensor:
        return torch.randint(0, 256, (*lead, size, size, 3), dtype=torch.uint8)
    return make
