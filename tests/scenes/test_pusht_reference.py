"""Physics parity with the reference PushT (gym-pusht 0.1.8 on pymunk 6).

The fixture was made by tools/make_pusht_reference.py from the reference implementation itself: contact-rich
episodes (the agent pushing the block, the block pressed against walls). Replaying the same start states and
targets through our PushT must give the same block pose at every step.
"""
from pathlib import Path

import numpy as np
import pytest

from scenes.pusht import ACTION_SCALE, PushT, angle_difference

FIXTURE = Path(__file__).parent / "data" / "pusht_reference.npz"


@pytest.fixture(scope="module")
def reference():
    return np.load(FIXTURE)


def test_fixture_is_contact_rich(reference):
    # Every episode pushes the block and presses it against a wall, or the parity below would prove little.
    assert reference["pushes"].sum(1).min() >= 20
    assert reference["walls"].sum(1).min() >= 10
    assert reference["states"].shape[1] == 61


def test_block_follows_the_reference_path(reference):
    env = PushT(image_size=64)
    for states, targets in zip(reference["states"], reference["targets"]):
        env.reset(options={"state": states[0]})
        np.testing.assert_allclose(env.state[:5], states[0][:5], atol=1e-9)
        for t, target in enumerate(targets, start=1):
            action = (target - env.state[:2]) / ACTION_SCALE
            env.step(action)
            got = env.state
            np.testing.assert_allclose(got[:2], states[t][:2], atol=0.01, err_msg=f"agent, step {t}")
            np.testing.assert_allclose(got[2:4], states[t][2:4], atol=0.01, err_msg=f"block xy, step {t}")
            assert angle_difference(got[4], states[t][4]) < 1e-4, f"block angle, step {t}"
