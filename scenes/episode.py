"""Playing a scene: the env, its policy, its artifacts and perturbations, one env step at a time.

ScenePlayer is what the monitor drives live (adding artifacts, overriding actions) and what
play_episode runs to completion for the probes and data collection. Each Step holds the frame the
model sees (artifacts drawn in) and the clean frame (what the frame would be without them).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from scenes.artifacts import Artifact
from scenes.catalog import Scene
from scenes.policies import make_policy
from scenes.pusht import PushT, check_action, moved_block_pose, random_state
from scenes.render import draw_state


@dataclass
class Step:
    env_step: int
    frame: np.ndarray  # (H, W, 3) uint8, artifacts drawn in
    clean_frame: np.ndarray  # the same without artifacts
    state: np.ndarray  # (7,)
    info: dict
    artifact_active: bool


class ScenePlayer:
    def __init__(self, scene: Scene, image_size: int):
        self.scene = scene
        self.image_size = image_size
        self.env = PushT(image_size)
        self.artifacts: list[Artifact] = copy.deepcopy(list(scene.artifacts))  # edits never reach the scene
        self.policy = make_policy(scene.policy, seed=scene.seed)
        self.current: Step | None = None

    def reset(self, seed: int | None = None, state: np.ndarray | None = None) -> Step:
        """Start the episode from `state`, or from the reset distribution seeded by `seed` (default: the scene's)."""
        seed = self.scene.seed if seed is None else seed
        if state is None:
            state = random_state(np.random.default_rng(seed))
        self.env.block_color = None
        clean, info = self.env.reset(seed=seed, options={"state": state})
        if self.policy is not None:
            self.policy.reset(seed)
        self.env_step = 0
        return self._observe(clean, info)

    def policy_action(self) -> np.ndarray:
        """What the scene's policy would do now (zeros in a manual scene)."""
        if self.policy is None:
            return np.zeros(2)
        return np.asarray(self.policy(self.current.state), dtype=np.float64)

    def step(self, action=None) -> tuple[np.ndarray, Step]:
        """Advance one env step with `action` (default: the policy's). Returns (action taken, new step)."""
        action = self.policy_action() if action is None else check_action(action)
        # Rounded to float32, the precision datasets store: a replay of the recorded actions is exact.
        action = np.clip(action, -1.0, 1.0).astype(np.float32).astype(np.float64)
        self._apply_perturbations(self.env_step + 1)
        clean, _, _, _, info = self.env.step(action)
        self.env_step += 1
        return action, self._observe(clean, info)

    def set_state(self, state: np.ndarray) -> Step:
        """Put the world in `state` now (a teleport) and observe it, without advancing time."""
        self.env.set_state(state)
        return self._observe(self.env.render(), self.env.info())

    def _apply_perturbations(self, env_step: int) -> None:
        for p in self.scene.perturbations:
            if p.step != env_step:
                continue
            state = self.env.state
            if p.kind == "teleport_block":
                state[2:5] = p.value
                self.env.set_state(state)
            elif p.kind == "teleport_agent":
                state[0:2], state[5:7] = p.value, 0.0
                self.env.set_state(state)
            elif p.kind == "recolor_block":
                self.env.block_color = tuple(int(c) for c in p.value)
            elif p.kind == "move_block":
                self.env.place_block(moved_block_pose(state[2:5], p.value[:2], p.value[2]))

    def _observe(self, clean: np.ndarray, info: dict) -> Step:
        active = [a for a in self.artifacts if a.active(self.env_step)]
        frame = clean
        if active:
            frame = clean.copy()
            for a in active:
                a.draw(frame, self.env_step)
        self.current = Step(self.env_step, frame, clean, info["state"], info, bool(active))
        return self.current

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """A frame of an arbitrary state with this player's look (used for replays)."""
        return draw_state(state, self.image_size, block_color=self.env.block_color)


@dataclass
class Episode:
    """A played episode, row t pairing frame t with the action taken after it (the last is NaN)."""

    frames: np.ndarray | None  # (T, H, W, 3) uint8, with artifacts; None when played without drawing
    clean_frames: np.ndarray | None  # (T, H, W, 3) uint8
    actions: np.ndarray  # (T, 2)
    states: np.ndarray  # (T, 7)
    coverage: np.ndarray  # (T,)
    artifact_active: np.ndarray  # (T,) bool


def play_episode(scene: Scene, image_size: int | None, steps: int | None = None, seed: int | None = None,
                 state: np.ndarray | None = None, actions: np.ndarray | None = None) -> Episode:
    """Run a (non-manual) scene for `steps` env steps: steps + 1 frames.

    state: the start state (default: the reset distribution seeded by `seed`); actions: raw actions to replay,
    row t taken after frame t, instead of the policy's (a recorded episode replays bit for bit); image_size None
    plays without drawing (frames None)."""
    steps = scene.steps if steps is None else steps
    player = ScenePlayer(scene, image_size)
    rows = [player.reset(seed, state)]
    taken = []
    for t in range(steps):
        action, step = player.step(None if actions is None else actions[t])
        taken.append(action)
        rows.append(step)
    taken.append(np.full(2, np.nan))
    return Episode(
        frames=None if image_size is None else np.stack([r.frame for r in rows]),
        clean_frames=None if image_size is None else np.stack([r.clean_frame for r in rows]),
        actions=np.asarray(taken, np.float32),
        states=np.stack([r.state for r in rows]),  # float64: a replay from row 0 is exact
        coverage=np.array([r.info["coverage"] for r in rows], np.float32),
        artifact_active=np.array([r.artifact_active for r in rows]),
    )
