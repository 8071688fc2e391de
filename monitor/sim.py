"""What the model watches: a live PushT scene (expert or manual) or a replay, one env step at a time.

The Simulator owns the ScenePlayer, the mode, the user's artifacts and the manual-control target, and knows
nothing about drawing or the model. Each env step it offers `current` (frame, state, env step) and `decide()`
the action taken after it; `advance(action)` moves on. The app submits (frame, action) to the worker between
the two. Replays (monitor/replay.py) plug in as a source of frames and actions instead of the physics.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from scenes.artifacts import ARTIFACT_KINDS, REFERENCE_SIZE, Artifact, sliding_square
from scenes.catalog import Scene
from scenes.episode import ScenePlayer
from scenes.policies import make_policy
from scenes.pusht import ACTION_SCALE, WORLD_SIZE
from scenes.render import draw_state

MODES = ("expert", "manual", "plan", "replay")  # plan: the app drives (monitor/plan_mode.py)
KEY_PUSH = 60.0  # world units: how far ahead of the agent a held arrow key puts the target
ARTIFACT_SIZES = {"square": 20.0, "disc": 24.0, "noise": 40.0, "occluder": 30.0}


def artifact_at(artifact: Artifact, env_step: int) -> dict:
    """What was drawn at env_step, as a static artifact (enough to redraw the frame exactly in a replay)."""
    x, y = artifact.center(env_step)
    return {"kind": artifact.kind, "size": artifact.size, "color": list(artifact.color),
            "opacity": artifact.opacity, "x": x, "y": y, "seed": artifact.seed}


def static_artifact(d: dict) -> Artifact:
    return Artifact(kind=d["kind"], size=d["size"], color=tuple(d["color"]), opacity=d["opacity"],
                    start=(d["x"], d["y"]), seed=d.get("seed", 0))


@dataclass
class View:
    """The step the model is shown now."""

    env_step: int
    frame: np.ndarray
    state: np.ndarray
    artifacts: list  # artifact_at(...) dicts of those drawn in the frame
    block_color: tuple | None = None
    coverage: float = float("nan")
    recorded_action: np.ndarray | None = None  # replays: the action the recording took after this frame
    dropped: bool = False  # session replays: the recording dropped this frame (the replay drops it too)
    active_stream: str | None = None  # session replays: the action stream the recording had active here
    extra: dict = field(default_factory=dict)


class Simulator:
    def __init__(self, scene: Scene, image_size: int, mode: str = "expert", seed: int | None = None,
                 replay=None, frameskip: int = 5):
        self.scene = scene
        self.image_size = image_size
        self.frameskip = frameskip  # the model's: the sliding square crosses in 10 model steps
        self.player = ScenePlayer(scene, image_size)
        self.replay = replay  # a monitor.replay source, or None
        self.mode = "replay" if replay is not None and mode == "replay" else mode
        self.seed = scene.seed if seed is None else seed
        self.mouse_target: np.ndarray | None = None  # world units
        self.keys_held: set[tuple[int, int]] = set()
        self.selected: Artifact | None = None
        self.kind_index = 0
        self.color_index = 0
        self.rng = np.random.default_rng(self.seed + 7919)
        self._episode_start = True
        self._events: list[str] = []  # what the user did to the world since the last frame (teleports)
        self.reset(self.seed)

    # ---------------------------------------------------------------- episode
    def reset(self, seed: int | None = None) -> None:
        self.seed = self.seed if seed is None else seed
        # Copies: live edits (drag, recolour) change the objects, and must not reach the next episode. A replay's
        # frames already hold what the recording drew, so the scene's own artifacts are not added to them.
        self.player.artifacts = [] if self.mode == "replay" else copy.deepcopy(list(self.scene.artifacts))
        self.selected = None
        if self.mode == "replay":
            self.replay.reset()
        else:
            self._ensure_policy()
            self.player.reset(self.seed)
        self.mouse_target = None
        self._episode_start = True

    @property
    def episode_start(self) -> bool:
        """Whether the current frame starts an episode (in a session replay: where the recording's did)."""
        if self.mode == "replay":
            return self.replay.episode_start
        return self._episode_start

    def _ensure_policy(self) -> None:
        if self.player.policy is None and self.mode == "expert":
            self.player.policy = make_policy("expert", seed=self.seed)
            if self.player.current is not None:
                self.player.policy.reset(self.seed)

    def set_mode(self, mode: str) -> None:
        if mode == "replay" and self.replay is None:
            return
        was_replay = self.mode == "replay"
        self.mode = mode
        if mode == "replay" or was_replay:
            self.reset()  # a different source of frames: a new episode (from the replay's start)
        elif mode == "expert":
            self._ensure_policy()

    @property
    def env_step(self) -> int:
        return self.replay.env_step if self.mode == "replay" else self.player.env_step

    @property
    def finished(self) -> bool:
        return self.mode == "replay" and self.replay.finished

    @property
    def current(self) -> View:
        if self.mode == "replay":
            view = self.replay.current(self.image_size)
            extra = [a for a in self.player.artifacts if a.active(view.env_step)]
            if extra:  # the user's artifacts are drawn over a replay too
                frame = view.frame.copy()
                for a in extra:
                    a.draw(frame, view.env_step)
                view.frame = frame
                view.artifacts = view.artifacts + [artifact_at(a, view.env_step) for a in extra]
            return view
        step = self.player.current
        active = [a for a in self.player.artifacts if a.active(step.env_step)]
        frame = step.clean_frame
        if active:  # drawn now, so artifacts placed or moved since the step are in the frame the model sees
            frame = frame.copy()
            for a in active:
                a.draw(frame, step.env_step)
        drawn = [artifact_at(a, step.env_step) for a in active]
        color = self.player.env.block_color
        return View(step.env_step, frame, step.state, drawn, None if color is None else tuple(color),
                    float(step.info.get("coverage", float("nan"))))

    # ---------------------------------------------------------------- actions
    def decide(self) -> np.ndarray | None:
        """The raw action to take after the current frame."""
        if self.mode == "replay":
            return self.replay.action()
        if self.mode == "expert":
            self._ensure_policy()
            return np.clip(self.player.policy_action(), -1.0, 1.0).astype(np.float32).astype(np.float64)
        agent = np.asarray(self.player.current.state[:2], np.float64)
        target = self.mouse_target
        if self.keys_held:
            push = np.sum([d for d in self.keys_held], axis=0).astype(np.float64)
            target = agent + KEY_PUSH * push / max(np.linalg.norm(push), 1e-9) if np.any(push) else agent
        if target is None:
            return np.zeros(2)
        # The absolute target (mouse) -> the relative LeWM action, at the edge.
        action = np.clip((np.asarray(target) - agent) / ACTION_SCALE, -1.0, 1.0)
        return action.astype(np.float32).astype(np.float64)

    def advance(self, action) -> None:
        if self.mode == "replay":
            self.replay.advance()
        else:
            self.player.step(action)
        self._episode_start = False

    # ---------------------------------------------------------------- artifacts
    @property
    def artifacts(self) -> list[Artifact]:
        return self.player.artifacts

    @property
    def kind(self) -> str:
        return ARTIFACT_KINDS[self.kind_index]

    @property
    def color(self) -> tuple:
        from monitor.controls import COLORS

        return COLORS[self.color_index]

    @property
    def color_name(self) -> str:
        from monitor.controls import COLOR_NAMES

        return COLOR_NAMES[self.color_index]

    def cycle_kind(self) -> None:
        """The next artifact's kind: the next of ARTIFACT_KINDS."""
        self.kind_index = (self.kind_index + 1) % len(ARTIFACT_KINDS)

    def cycle_color(self) -> None:
        """The next artifact's colour, and the selected artifact's."""
        from monitor.controls import COLORS

        self.color_index = (self.color_index + 1) % len(COLORS)
        if self.selected is not None:
            self.selected.color = self.color

    def push(self, direction: tuple[int, int]) -> None:
        """An arrow key held: the agent is pushed that way, and an expert or planner hands it over."""
        if self.mode in ("expert", "plan"):
            self.set_mode("manual")
        self.keys_held.add(direction)

    def release(self, direction: tuple[int, int]) -> None:
        self.keys_held.discard(direction)

    def nudge_selected(self, dx: int, dy: int) -> None:
        """Shift + arrow: the selected artifact moves 4 reference pixels that way."""
        if self.selected is not None:
            x, y = self.selected.center(self.env_step)
            self.move_artifact(self.selected, x + 4 * dx, y + 4 * dy)

    def remove_selected(self) -> None:
        if self.selected is not None:
            self.remove_artifact(self.selected)

    def clear_artifacts(self) -> None:
        self.artifacts.clear()
        self.selected = None

    def artifact_under(self, x: float, y: float) -> Artifact | None:
        """The topmost artifact active now under reference-pixel point (x, y)."""
        for a in reversed(self.player.artifacts):
            if a.active(self.env_step) and a.contains(x, y, self.env_step):
                return a
        return None

    def place_artifact(self, x: float, y: float) -> Artifact:
        step = self.env_step
        a = Artifact(kind=self.kind, size=ARTIFACT_SIZES[self.kind], color=self.color, motion="path",
                     start=(x, y), path=[(step, x, y)], enter=step, seed=int(self.rng.integers(1 << 30)))
        self.player.artifacts.append(a)
        self.selected = a
        return a

    def move_artifact(self, a: Artifact, x: float, y: float) -> None:
        """Put `a` at (x, y) from the current env step on; its earlier path is kept (a "path" keyframe)."""
        step = self.env_step
        x = float(np.clip(x, 0, REFERENCE_SIZE))
        y = float(np.clip(y, 0, REFERENCE_SIZE))
        if a.motion != "path":
            # Freeze what it did so far as keyframes, then follow the hand.
            cx, cy = a.center(step)
            keys = [(a.enter, *a.center(a.enter))] if a.enter < step else []
            a.path = keys + [(step, cx, cy)]
            a.motion = "path"
        if a.path and a.path[-1][0] >= step:
            a.path[-1] = (step, x, y)
        else:
            a.path.append((step, x, y))
        if a.exit is not None and a.exit <= step:
            a.exit = None

    def remove_artifact(self, a: Artifact) -> None:
        if a in self.player.artifacts:
            self.player.artifacts.remove(a)
        if self.selected is a:
            self.selected = None

    def start_sliding_square(self) -> Artifact:
        a = sliding_square(model_enter=0, model_exit=10, frameskip=self.frameskip)  # 10 model steps across the frame
        a.enter += self.env_step
        a.exit += self.env_step
        self.player.artifacts.append(a)
        return a

    def teleport_block(self) -> None:
        if self.mode == "replay":
            return
        state = self.player.env.state.copy()
        state[2:4] = self.rng.uniform(100, 400, size=2)
        state[4] = self.rng.uniform(0, 2 * math.pi)
        self.player.set_state(state)
        self._events.append("teleport")

    def take_events(self) -> list[str]:
        """The events since the last call (logged with the frame that first shows them)."""
        events, self._events = self._events, []
        return events

    def select_next(self) -> None:
        active = [a for a in self.player.artifacts if a.active(self.env_step)]
        if not active:
            self.selected = None
            return
        i = active.index(self.selected) + 1 if self.selected in active else 0
        self.selected = active[i % len(active)]


def world_to_reference(x: float, y: float) -> tuple[float, float]:
    return x * REFERENCE_SIZE / WORLD_SIZE, y * REFERENCE_SIZE / WORLD_SIZE


def reference_to_world(x: float, y: float) -> tuple[float, float]:
    return x * WORLD_SIZE / REFERENCE_SIZE, y * WORLD_SIZE / REFERENCE_SIZE


def render_view(state, size, artifacts, env_step, block_color=None) -> np.ndarray:
    return draw_state(np.asarray(state, np.float64), size, [static_artifact(d) for d in artifacts], env_step,
                      block_color=block_color)
