"""The move_block perturbation: the T's centroid jumps and the T turns about that centroid, the agent untouched."""
import math

import numpy as np
import pytest
import shapely.affinity

from scenes.artifacts import Perturbation
from scenes.catalog import get_scene
from scenes.episode import play_episode
from scenes.pusht import angle_difference, block_centroid, moved_block_pose, t_polygon


def test_a_turn_keeps_the_centroid_and_moves_the_origin():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pose = np.array([*rng.uniform(100, 400, 2), rng.uniform(0, 2 * math.pi)])
        shift, turn = rng.uniform(-100, 100, 2), rng.uniform(-math.pi, math.pi)
        turned = moved_block_pose(pose, turn=turn)
        np.testing.assert_allclose(block_centroid(turned), block_centroid(pose), atol=1e-9)
        assert turned[2] - pose[2] == pytest.approx(turn)
        assert np.hypot(*(turned[:2] - pose[:2])) == pytest.approx(2 * 40.714 * abs(math.sin(turn / 2)), abs=1e-3)
        # the same outline as the old one turned about its centroid
        expected = shapely.affinity.rotate(t_polygon(*pose), turn, origin=t_polygon(*pose).centroid,
                                           use_radians=True)
        assert t_polygon(*turned).symmetric_difference(expected).area < 1e-6
        moved = moved_block_pose(pose, shift, turn)
        np.testing.assert_allclose(block_centroid(moved), block_centroid(pose) + shift, atol=1e-9)
        assert moved[2] == pytest.approx(turned[2])


def test_block_centroid_is_the_outline_centroid():
    pose = np.array([[200.0, 250.0, 0.3], [120.0, 380.0, 4.0]])
    np.testing.assert_allclose(block_centroid(pose), [t_polygon(*p).centroid.coords[0] for p in pose], atol=1e-9)


@pytest.mark.parametrize("value", [(0.0, 0.0, 1.2), (80.0, -40.0, 0.0), (-60.0, 30.0, -0.9)])
def test_move_block_changes_the_block_alone_from_its_step(value):
    start = np.array([60.0, 60.0, 300.0, 300.0, 0.5, 0.0, 0.0])  # the agent far from the block
    actions = np.tile([[0.3, 0.0]], (8, 1))
    clean_scene = get_scene("expert")
    moved_scene = get_scene("expert")
    moved_scene.perturbations = [Perturbation("move_block", 4, value)]
    clean = play_episode(clean_scene, 32, steps=8, state=start, actions=actions)
    moved = play_episode(moved_scene, 32, steps=8, state=start, actions=actions)
    assert np.array_equal(clean.frames[:4], moved.frames[:4]) and np.array_equal(clean.states[:4], moved.states[:4])
    assert all(not np.array_equal(a, b) for a, b in zip(clean.frames[4:], moved.frames[4:]))
    np.testing.assert_array_equal(moved.states[:, [0, 1, 5, 6]], clean.states[:, [0, 1, 5, 6]])  # the agent's path
    np.testing.assert_allclose(block_centroid(moved.states[4, 2:5]), block_centroid(clean.states[3, 2:5]) + value[:2],
                               atol=1e-9)
    assert angle_difference(moved.states[4, 4], clean.states[3, 4] + value[2]) < 1e-9
