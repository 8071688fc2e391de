"""The scripted expert (scenes/expert.py): it solves PushT, deterministically, with in-range actions."""
import numpy as np
import pytest

from scenes.expert import ExpertPolicy
from scenes.pusht import PushT


def _rollout(seed, policy, steps=300):
    env = PushT(image_size=64)
    env.render = lambda: None  # frames are not needed here
    _, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    start, best, actions = info["coverage"], info["coverage"], []
    for _ in range(steps):
        a = policy(info["state"])
        actions.append(a)
        _, _, _, _, info = env.step(a)
        best = max(best, info["coverage"])
        if best > 0.95 and len(actions) >= 50:
            break
    return start, best, np.array(actions)


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_expert_raises_coverage(seed):
    start, best, _ = _rollout(seed, ExpertPolicy())
    assert best > 0.8 and best > start


def test_expert_is_deterministic():
    _, _, a1 = _rollout(5, ExpertPolicy(noise=0.1, seed=1), steps=60)
    _, _, a2 = _rollout(5, ExpertPolicy(noise=0.1, seed=1), steps=60)
    np.testing.assert_array_equal(a1, a2)


def test_actions_finite_and_in_range():
    _, _, actions = _rollout(11, ExpertPolicy(), steps=100)
    assert actions.dtype == np.float64 and actions.shape[1] == 2
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0)


def test_noise_changes_actions_but_stays_in_range():
    state = np.array([100.0, 100.0, 300.0, 300.0, 1.0, 0.0, 0.0])
    clean = ExpertPolicy()(state)
    noisy = ExpertPolicy(noise=0.5, seed=0)
    outs = np.array([noisy(state) for _ in range(50)])
    assert not np.allclose(outs, clean)
    assert np.all(np.isfinite(outs)) and np.all(np.abs(outs) <= 1.0)
    assert outs.shape == (50, 2) and outs.dtype == np.float64


def test_reset_reseeds_noise():
    state = np.array([100.0, 100.0, 300.0, 300.0, 1.0, 0.0, 0.0])
    p = ExpertPolicy(noise=0.2, seed=3)
    first = [p(state) for _ in range(5)]
    p.reset(seed=3)
    again = [p(state) for _ in range(5)]
    np.testing.assert_array_equal(first, again)
