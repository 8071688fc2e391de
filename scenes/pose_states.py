"""Still scenes for reading the state out of a model: states from the reset distribution, and states with the agent
touching the block, each drawn from its own seed (state k of a set starting at seed S is drawn from seed S + k).

A touching state keeps the reset distribution's block pose and puts the agent just outside the T's outline at a
contact point drawn uniformly along the outline (the agent's edge 0 to CONTACT_GAP world px from the block, never
overlapping it, and inside the walls).
"""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.polygon import orient

from scenes.pusht import AGENT_RADIUS, WALL_RADIUS, WALLS, random_state, t_polygon

CONTACT_GAP = 1.0  # world px between the agent's edge and the T's outline, at most
# The agent's centre stays where the whole disc is inside the walls.
AGENT_LOW = min(min(a[0], a[1]) for wall in WALLS for a in wall) + WALL_RADIUS + AGENT_RADIUS
AGENT_HIGH = max(max(a[0], a[1]) for wall in WALLS for a in wall) - WALL_RADIUS - AGENT_RADIUS

# The outline's edges in body coordinates, counter-clockwise (positive area): the outward normal of an edge
# a -> b is (dy, -dx) / |b - a|.
_OUTLINE = np.array(orient(t_polygon(0.0, 0.0, 0.0), 1.0).exterior.coords)
_EDGE_START, _EDGE = _OUTLINE[:-1], np.diff(_OUTLINE, axis=0)
_EDGE_LENGTH = np.hypot(*_EDGE.T)
_EDGE_END = np.cumsum(_EDGE_LENGTH)  # distance along the outline where each edge ends
_NORMAL = np.stack([_EDGE[:, 1], -_EDGE[:, 0]], axis=1) / _EDGE_LENGTH[:, None]


def contact_agent(block_pose, rng: np.random.Generator, tries: int = 50) -> np.ndarray | None:
    """An agent position touching the block at `block_pose` (x, y, angle) from a contact point drawn uniformly
    along the outline; None when `tries` contact points all put the agent into the block or outside the walls."""
    x, y, angle = (float(v) for v in block_pose)
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    outline = t_polygon(x, y, angle)
    for _ in range(tries):
        along = rng.uniform(0, _EDGE_END[-1])
        edge = min(int(np.searchsorted(_EDGE_END, along, side="right")), len(_EDGE) - 1)
        offset = along - (_EDGE_END[edge] - _EDGE_LENGTH[edge])
        point = _EDGE_START[edge] + _EDGE[edge] / _EDGE_LENGTH[edge] * offset
        body = point + _NORMAL[edge] * (AGENT_RADIUS + rng.uniform(0, CONTACT_GAP))
        agent = rotation @ body + (x, y)
        gap = outline.distance(shapely.geometry.Point(agent)) - AGENT_RADIUS  # an inner corner can be too close
        if 0 <= gap <= CONTACT_GAP and np.all((agent >= AGENT_LOW) & (agent <= AGENT_HIGH)):
            return agent
    return None


def touching_state(rng: np.random.Generator) -> np.ndarray:
    """A reset-distribution state with the agent moved to touch the block (a new block pose is drawn, rarely, when
    no contact point fits inside the walls)."""
    while True:
        state = random_state(rng)
        agent = contact_agent(state[2:5], rng)
        if agent is not None:
            state[0:2] = agent
            return state


def pose_states(first_seed: int, count: int, touching: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` states, state k drawn from seed first_seed + k: the first count - touching from the reset
    distribution, the last `touching` with the agent touching the block. Returns states (count, 7) and the seeds."""
    if not 0 <= touching <= count:
        raise ValueError(f"touching must be in 0..{count}, got {touching}")
    seeds = np.arange(first_seed, first_seed + count)
    states = [random_state(np.random.default_rng(seed)) if k < count - touching
              else touching_state(np.random.default_rng(seed)) for k, seed in enumerate(seeds)]
    return np.array(states).reshape(count, 7), seeds


def agent_gap(states: np.ndarray) -> np.ndarray:
    """World px between the agent's edge and the block's outline, per state (negative: the agent overlaps it)."""
    return np.array([t_polygon(*s[2:5]).distance(shapely.geometry.Point(s[0], s[1])) - AGENT_RADIUS
                     for s in np.asarray(states, np.float64)])
