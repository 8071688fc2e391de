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
DEFAULT_NOISE = 0.3


def split_policy_name(name: str) -> tuple[str, float | None]:
    """"noisy-expert:0.1" -> ("noisy-expert", 0.1): a noisy expert names its action noise (std, in action units)
    after a colon; the plain name means DEFAULT_NOISE. Other policies take no level (None)."""
    base, colon, level = name.partition(":")
    if base not in POLICIES:
        raise UserError(f"unknown policy {base!r}; known policies: {', '.join(POLICIES)}")
    if not colon:
        return base, DEFAULT_NOISE if base == "noisy-expert" else None
    if base != "noisy-expert":
        raise UserError(f"only noisy-expert takes a noise level (noisy-expert:0.2), not {base!r}")
    try:
        noise = float(level)
    except ValueError:
        noise = float("nan")
    if not 0 <= noise <= 2:  # also refuses NaN
        raise UserError(f"the noise level in {name!r} must be a number from 0 to 2 (the std of the added action noise)")
    return base, noise


def make_policy(name: str, seed: int | None = None):
    """A policy by name ("noisy-expert:0.2" for a noise level); "manual" is None (the caller supplies every
    action)."""
    base, noise = split_policy_name(name)
    if base in ("expert", "noisy-expert"):
        from scenes.expert import ExpertPolicy

        return ExpertPolicy(noise=noise or 0.0, seed=seed)
    if base == "random":
        return RandomNearBlock(seed=seed)
    return None  # manual
