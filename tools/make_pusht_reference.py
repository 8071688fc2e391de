"""Make the PushT physics parity fixture from the reference implementation itself.

Runs gym-pusht 0.1.8 (the environment the released PushT data and checkpoints come from) on pymunk 6, in a
side virtual environment, since the project runs pymunk 7 and gym-pusht pins neither:

    python -m venv .venv-ref
    .venv-ref/bin/pip install "pymunk<7" pygame shapely gymnasium opencv-python-headless numpy
    .venv-ref/bin/pip install gym-pusht==0.1.8 --no-deps
    .venv-ref/bin/python tools/make_pusht_reference.py --out tests/scenes/data/pusht_reference.npz

Each episode starts with the block near a wall and the agent on the far side of it; the agent then drives at the block
(absolute targets, always within 99 units of the agent so that they are LeWM relative actions in [-1, 1], and inside the
reference's action box [0, 512]^2), which pushes the block and presses it against the wall. The fixture holds, per
episode, the state the reference reads back after its reset, every absolute target, and the state after every step;
tests/scenes/test_pusht_reference.py replays them through scenes.pusht.PushT.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

MAX_OFFSET = 99.0  # a target at most this far from the agent on each axis: relative action within [-1, 1]


def read_state(env) -> np.ndarray:
    """The LeWM 7-vector: agent xy, block xy, block angle mod 2 pi, agent velocity."""
    a, b, v = env.agent.position, env.block.position, env.agent.velocity
    return np.array([a.x, a.y, b.x, b.y, env.block.angle % (2 * math.pi), v.x, v.y])


def touching(shape_a, shapes_b) -> bool:
    return any(shape_a.shapes_collide(s).points for s in shapes_b)


def start_state(rng: np.random.Generator) -> np.ndarray:
    """Block 70-110 units from a random wall, the agent 90-140 units further in, any block angle."""
    side = rng.integers(4)
    along = rng.uniform(150, 360)
    depth = rng.uniform(70, 110)
    back = depth + rng.uniform(90, 140)
    block = [(depth, along), (along, depth), (512 - depth, along), (along, 512 - depth)][side]
    agent = [(back, along), (along, back), (512 - back, along), (along, 512 - back)][side]
    agent = np.array(agent) + rng.uniform(-20, 20, 2)
    return np.array([agent[0], agent[1], block[0], block[1], rng.uniform(-math.pi, math.pi)])


def play_episode(env, rng: np.random.Generator, steps: int):
    env.reset(seed=0, options={"reset_to_state": start_state(rng)})
    states, targets, pushes, walls = [read_state(env)], [], [], []
    block_shapes = env._block_shapes
    wall_shapes = [s for s in env.space.shapes if s.body is env.space.static_body]
    agent_shape = next(iter(env.agent.shapes))
    for _ in range(steps):
        agent = np.array(env.agent.position)
        aim = np.array(env.block.local_to_world(env.block.center_of_gravity)) + rng.normal(0, 25, 2)
        target = np.clip(agent + np.clip(aim - agent, -MAX_OFFSET, MAX_OFFSET), 0, 512)  # the action box
        env.step(target)
        targets.append(target)
        states.append(read_state(env))
        pushes.append(touching(agent_shape, block_shapes))
        walls.append(any(touching(w, block_shapes) for w in wall_shapes))
    return np.array(states), np.array(targets), np.array(pushes), np.array(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the .npz fixture to write")
    parser.add_argument("--episodes", type=int, default=6, help="episodes to play")
    parser.add_argument("--steps", type=int, default=60, help="env steps per episode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start states and targets")
    args = parser.parse_args()

    import gym_pusht.envs.pusht as reference
    import pymunk

    env = reference.PushTEnv(obs_type="state")
    rng = np.random.default_rng(args.seed)
    episodes = [play_episode(env, rng, args.steps) for _ in range(args.episodes)]
    states, targets, pushes, walls = (np.stack(x) for x in zip(*episodes))
    np.savez_compressed(args.out, states=states, targets=targets, pushes=pushes, walls=walls,
                        reference=f"gym-pusht 0.1.8, pymunk {pymunk.version}")
    print(f"wrote {args.out}: {args.episodes} episodes x {args.steps} steps; "
          f"steps pushing the block {pushes.sum(1).tolist()}, block on a wall {walls.sum(1).tolist()}")


if __name__ == "__main__":
    main()
