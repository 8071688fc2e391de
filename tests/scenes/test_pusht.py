"""The simulator against the reference PushT: geometry, physics numbers, determinism, coverage, bad input."""
import math

import numpy as np
import pymunk
import pytest

from lewm_errors import UserError
from scenes.pusht import GOAL_POSE, PushT, coverage, pose_success, t_polygon


def run(seed, actions):
    env = PushT(image_size=32)
    env.reset(seed=seed)
    return np.stack([env.step(a)[4]["state"] for a in actions])


def test_same_seed_and_actions_give_bit_identical_states():
    actions = np.random.default_rng(1).uniform(-1, 1, (80, 2))
    assert np.array_equal(run(7, actions), run(7, actions))
    assert not np.array_equal(run(7, actions), run(8, actions))


def test_geometry_matches_the_spec():
    env = PushT(image_size=32)
    env.reset(seed=0)
    assert env._space.gravity == (0, 0) and env._space.damping == 0
    walls = [s for s in env._space.shapes if isinstance(s, pymunk.Segment)]
    # The references' order and directions (the order shapes were added is the order pymunk lists them).
    assert [(tuple(w.a), tuple(w.b)) for w in walls] == [
        ((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506))]
    assert all(w.radius == 2 for w in walls)
    # Frictionless contacts, as in the references (whose friction = 1 is set on bodies, where pymunk ignores it).
    assert all(s.friction == 0 for s in env._space.shapes)
    agent = [s for s in env.agent.shapes][0]
    assert env.agent.body_type == pymunk.Body.KINEMATIC and agent.radius == 15
    assert env.block.mass == pytest.approx(1.0)
    assert tuple(env.block.center_of_gravity) == pytest.approx((0, 45))
    bar = [(-60, 30), (60, 30), (60, 0), (-60, 0)]
    assert env.block.moment == pytest.approx(2 * pymunk.moment_for_poly(1, bar))
    assert t_polygon(0, 0, 0).area == pytest.approx(120 * 30 + 30 * 90)


def test_pd_controller_moves_the_agent_toward_the_target():
    env = PushT(image_size=32)
    env.reset(options={"state": [100, 100, 400, 400, 0, 0, 0]})
    # First substep by hand: v = 0 + (100 * (target - p) - 20 * 0) * 0.01 = 1.0 * (target - p) per second.
    _, _, _, _, info = env.step([0.5, 0.0])  # target 50 units to the right
    x = info["state"][0]
    assert 100 < x < 150 + 1e-6
    for _ in range(20):
        _, _, _, _, info = env.step([0.0, 0.0])  # target = where it stands: it settles
    assert abs(info["state"][5]) < 1.0


def test_block_stops_when_nothing_pushes_it():
    env = PushT(image_size=32)
    env.reset(options={"state": [100, 100, 300, 300, 1.0, 0, 0]})
    before = env.state[2:5].copy()
    for _ in range(5):
        env.step([0.0, 0.0])
    assert np.allclose(env.state[2:5], before)


def test_coverage_is_one_at_the_goal_and_zero_far_away():
    assert coverage(GOAL_POSE) == pytest.approx(1.0)
    assert coverage((60.0, 60.0, 0.0)) == 0.0
    assert 0.0 < coverage((266.0, 256.0, math.pi / 4)) < 1.0
    state = np.array([256, 256, *GOAL_POSE, 0, 0], dtype=float)
    assert pose_success(state)
    env = PushT(image_size=32)
    _, info = env.reset(options={"state": [50, 50, *GOAL_POSE, 0, 0]})
    assert info["coverage"] == pytest.approx(1.0) and info["success"]


def test_reset_distribution_and_info():
    env = PushT(image_size=48)
    obs, info = env.reset(seed=3)
    s = info["state"]
    assert obs.shape == (48, 48, 3) and obs.dtype == np.uint8
    assert 50 <= s[0] <= 450 and 50 <= s[1] <= 450 and 100 <= s[2] <= 400 and 0 <= s[4] < 2 * math.pi
    assert np.array_equal(info["proprio"], s[[0, 1, 5, 6]])


@pytest.mark.parametrize("bad", [[np.nan, 0.0], [0.1, 0.2, 0.3], [[0.1, 0.2]]])
def test_bad_actions_are_refused_with_a_message(bad):
    env = PushT(image_size=32)
    env.reset(seed=0)
    with pytest.raises(UserError, match="action"):
        env.step(bad)
