"""Who acts in a scene: the scripted expert, a noisy expert, or random exploration near the block.

A policy is a callable state (7,) -> LeWM relative action (2,) with reset(seed)."""
from __future__ import annotations

import math

import numpy as np

from lewm_errors import UserError
from scenes.pusht import ACTION_SCALE


class RandomNearBlock:
    """Random exploration that keeps touching the block: every `hold` env steps pick a fresh
    random point within `reach` units of the T's centre and head for it at a random speed.

    Targets change every model step (hold = 5 env steps), so an action block says something the
    past frames cannot: where the agent goes next. That is what teaches a world model to use actions.
    """

    def __init__(self, seed: int | None = None, hold: int = 5, reach: float = 90.0):
        self.hold, self.reach = hold, reach
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.action = np.zeros(2)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        if self.t % self.hold == 0:
            angle = state[4]
            # The T's centre of gravity is body-local (0, 45).
            cog = state[2:4] + 45.0 * np.array([-math.sin(angle), math.cos(angle)])
            # Kept well inside the arena: the kinematic agent would otherwise crush the block
            # through a wall (it pushes with unbounded force), as in every PushT implementation.
            goal = np.clip(cog + self.rng.uniform(-self.reach, self.reach, size=2), 130, 382)
            speed = self.rng.uniform(0.2, 1.0)
            self.action = np.clip(speed * (goal - state[:2]) / ACTION_SCALE, -1.0, 1.0)
        self.t += 1
        return self.action.copy()


POLICIES = ("expert", "noisy-expert", "random", "manual")


def make_policy(name: str, seed: int | None = None, noise: float = 0.3):
    """A policy by name; "manual" is None (the caller supplies every action)."""
    if name in ("expert", "noisy-expert"):
        from scenes.expert import ExpertPolicy

        return ExpertPolicy(noise=noise if name == "noisy-expert" else 0.0, seed=seed)
    if name == "random":
        return RandomNearBlock(seed=seed)
    if name == "manual":
        return None
    raise UserError(f"unknown policy {name!r}; known policies: {', '.join(POLICIES)}")
