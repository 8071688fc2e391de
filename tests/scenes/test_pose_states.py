"""The pose probe's still scenes: reset-distribution states reproducible by seed, and touching states whose agent
really touches the block (never overlapping it, inside the walls, all around the outline)."""
import numpy as np
import pytest
import shapely

from scenes.pose_states import AGENT_HIGH, AGENT_LOW, CONTACT_GAP, agent_gap, pose_states
from scenes.pusht import random_state, t_polygon
from scenes.render import draw_state


def test_reset_states_are_the_reset_distribution_by_seed():
    states, seeds = pose_states(500, 40, 0)
    assert seeds.tolist() == list(range(500, 540))
    np.testing.assert_array_equal(states, [random_state(np.random.default_rng(s)) for s in seeds])
    assert np.all((states[:, 0:2] >= 50) & (states[:, 0:2] <= 450))
    assert np.all((states[:, 2:4] >= 100) & (states[:, 2:4] <= 400))


def test_touching_states_touch_and_never_overlap():
    states, _ = pose_states(1_000_000, 400, 300)
    reset, touching = states[:100], states[100:]
    gaps = agent_gap(touching)
    assert gaps.min() >= 0 and gaps.max() <= CONTACT_GAP
    assert np.all((touching[:, 0:2] >= AGENT_LOW) & (touching[:, 0:2] <= AGENT_HIGH))
    assert np.all((touching[:, 2:4] >= 100) & (touching[:, 2:4] <= 400))
    # the contact points go all around the T: every one of its 8 edges is touched
    touched_edges = set()
    for s in touching:
        outline = np.array(t_polygon(*s[2:5]).exterior.coords)
        point = shapely.geometry.Point(s[0], s[1])
        distances = [shapely.geometry.LineString(outline[i:i + 2]).distance(point) for i in range(len(outline) - 1)]
        touched_edges.add(int(np.argmin(distances)))
    assert touched_edges == set(range(8))
    # the angle still spans the whole circle
    assert np.histogram(touching[:, 4], bins=4, range=(0, 2 * np.pi))[0].min() > 40
    # and the reset distribution does let the agent overlap the block, which touching states never do
    assert (agent_gap(reset) < 0).any()


def test_touching_frames_show_the_agent_against_the_block():
    """In the drawn frame, the agent's blue disc and the block's grey meet: within a few pixels of each other."""
    states, _ = pose_states(7, 6, 6)
    for state in states:
        frame = draw_state(state, 512).astype(int)
        blue = (frame[..., 2] > 200) & (frame[..., 0] < 150)
        grey = ((np.abs(frame[..., 0] - 119) < 30) & (np.abs(frame[..., 2] - 153) < 35)
                & (frame[..., 1] < 190) & ~blue)  # the block, not the green goal
        ys, xs = np.nonzero(blue)
        gy, gx = np.nonzero(grey)
        nearest = np.min(np.hypot(ys[:, None] - gy[None, ::7], xs[:, None] - gx[None, ::7]))
        assert nearest <= 4, state
        assert np.hypot(*(np.array([xs.mean(), ys.mean()]) - state[:2])) < 2  # the disc is where the state says


def test_touching_count_must_fit():
    with pytest.raises(ValueError):
        pose_states(0, 4, 5)
