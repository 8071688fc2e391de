"""Model-predictive control in latent space: the cross-entropy method (CEM) over the two-call model interface.

Numpy only (no torch), so the same planner runs on the torch model, on the ONNX engine, in `lewm plan` and in the
monitor's plan mode. The defaults are the official PushT settings (le-wm `config/eval/solver/cem.yaml`,
stable-worldmodel's planning config):

- 300 candidate action sequences per iteration, 30 iterations, the 30 lowest-cost (elites) refit the sampler;
- a sequence is `horizon` = 5 model steps, each an action block of frameskip x 2 raw actions (25 env steps);
- candidates are drawn in the model's normalised action space (z-scored with its action statistics) from
  N(mean, std), mean 0 and std = var_scale at the start; each iteration's first candidate is the current mean;
  the update takes the elites' mean and standard deviation;
- a candidate's cost is the squared L2 distance between the last predicted embedding of its rollout and the goal
  frame's embedding;
- the chosen plan is the final mean, mapped back to raw actions (action_mean + action_std x normalised, clipped to
  the action space [-1, 1]) before it reaches the simulator; with receding horizon 5 the whole plan is executed
  before the next one is made.

A rollout batches every candidate: one predictor call per horizon step per iteration, or, where the model has a
fused rollout for this context length and horizon (`fits_rollout`: the torch model always, the ONNX engine for the
shape of its rollout.onnx), one rollout call per iteration that gives the same latents with less work.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from lewm.model_interface import ROLLOUT
from lewm_errors import UserError


@dataclass
class CEMSettings:
    samples: int = 300
    iterations: int = 30
    elites: int = 30
    var_scale: float = 1.0
    horizon: int = 5  # model steps per plan
    receding_horizon: int = 5  # model steps executed before re-planning
    context: int = 1  # real frames given to the predictor (stable-worldmodel's history_len: 1)

    def __post_init__(self) -> None:
        for name in ("samples", "iterations", "elites", "horizon", "receding_horizon", "context"):
            if getattr(self, name) < 1:
                raise UserError(f"the planner's {name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if self.elites > self.samples:
            raise UserError(f"the planner keeps {self.elites} elites of only {self.samples} samples; "
                            f"use at most as many elites as samples")
        if self.receding_horizon > self.horizon:
            raise UserError(f"the receding horizon ({self.receding_horizon}) cannot exceed the horizon "
                            f"({self.horizon}): only planned blocks can be executed")
        if not self.var_scale > 0:
            raise UserError(f"the planner's var scale must be positive, got {self.var_scale}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Iteration:
    """One CEM iteration, for whoever watches the plan form (the monitor draws these)."""

    index: int
    samples: np.ndarray  # (S, ...) the candidates in the normalised space
    costs: np.ndarray  # (S,)
    elites: np.ndarray  # (K,) indices into samples, lowest cost first


@dataclass
class CEMResult:
    mean: np.ndarray  # the final mean (the chosen solution)
    std: np.ndarray
    elite_cost: np.ndarray  # (iterations,) mean cost of each iteration's elites
    best_cost: np.ndarray  # (iterations,) lowest cost of each iteration


def cem_minimise(cost: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...], settings: CEMSettings,
                 rng: np.random.Generator, on_iteration: Callable[[Iteration], None] | None = None) -> CEMResult:
    """Minimise cost(x (S, *shape)) -> (S,) over x in R^shape by CEM, starting from N(0, var_scale^2)."""
    mean = np.zeros(shape, np.float64)
    std = np.full(shape, settings.var_scale, np.float64)
    elite_cost, best_cost = [], []
    for i in range(settings.iterations):
        x = mean + std * rng.standard_normal((settings.samples, *shape))
        x[0] = mean
        c = np.asarray(cost(x), np.float64)
        order = np.argsort(c, kind="stable")[:settings.elites]
        elite = x[order]
        mean, std = elite.mean(axis=0), elite.std(axis=0)
        elite_cost.append(float(c[order].mean()))
        best_cost.append(float(c[order[0]]))
        if on_iteration is not None:
            on_iteration(Iteration(i, x, c, order))
    return CEMResult(mean, std, np.array(elite_cost), np.array(best_cost))


@dataclass
class Plan:
    blocks: np.ndarray  # (horizon, frameskip * action_dim) raw action blocks, to be executed in order
    end_latent: np.ndarray  # (D,) the predicted embedding after the last block
    cost: float  # the chosen plan's cost (squared L2 of end_latent to the goal embedding)
    elite_cost: np.ndarray  # (iterations,) mean elite cost per CEM iteration
    best_cost: np.ndarray  # (iterations,)
    seconds: float  # wall time of planning
    # the same distance for the frame actually reached once the whole plan has been executed (set by whoever
    # executes it; None until then, or when execution stopped early): far above `cost`, the model's forecast of
    # its own plan was wrong, which is how a planner exploits a model's errors
    realised_cost: float | None = None

    def actions(self, action_dim: int) -> np.ndarray:
        """The raw env actions of the plan, in order: (horizon * frameskip, action_dim)."""
        return self.blocks.reshape(-1, action_dim)


class LatentPlanner:
    """CEM in latent space toward a goal embedding.

    model: anything with encode / predict (ARCHITECTURE.md) and config (action_dim, frameskip, action_mean,
    action_std), history and latent_dim: lewm.torch_backend.TorchBackend or export.engine.OnnxEngine.
    """

    def __init__(self, model, settings: CEMSettings | None = None):
        self.model = model
        self.settings = settings or CEMSettings()
        config = model.config
        self.action_dim = config.action_dim
        self.frameskip = config.frameskip
        self.block_dim = config.action_block_dim
        # per block: frameskip actions of action_dim each, so the statistics repeat along the block
        self.action_mean = np.tile(np.asarray(config.action_mean, np.float64), self.frameskip)
        self.action_std = np.tile(np.asarray(config.action_std, np.float64), self.frameskip)

    def to_raw(self, normalised: np.ndarray) -> np.ndarray:
        """Normalised action blocks (..., block_dim) -> raw env actions in the action space [-1, 1]."""
        return np.clip(normalised * self.action_std + self.action_mean, -1.0, 1.0).astype(np.float32)

    def rollout(self, z_context: np.ndarray, past_blocks: np.ndarray, raw_blocks: np.ndarray) -> np.ndarray:
        """The last predicted embedding (S, D) of each candidate.

        z_context (C, D): the newest real embeddings, oldest first (C <= history); past_blocks (C - 1, block_dim):
        the raw blocks taken between them; raw_blocks (S, H, block_dim): the candidates."""
        s, (c, horizon) = len(raw_blocks), (len(z_context), raw_blocks.shape[1])
        if ROLLOUT in self.model.capabilities and self.model.fits_rollout(c, horizon):
            z = np.repeat(np.asarray(z_context, np.float32)[None], s, axis=0)
            taken = np.repeat(np.asarray(past_blocks, np.float32).reshape(1, c - 1, self.block_dim), s, axis=0)
            return self.model.rollout(z, np.concatenate([taken, raw_blocks], axis=1))[:, -1]
        history = self.model.history
        window = [np.broadcast_to(z, (s, z.shape[-1])) for z in np.asarray(z_context, np.float32)]
        taken = [np.broadcast_to(b, (s, self.block_dim)) for b in np.asarray(past_blocks, np.float32)]
        z = None
        for h in range(raw_blocks.shape[1]):
            blocks = (taken + [raw_blocks[:, h]])[-len(window):]
            z = self.model.predict(np.stack(window, axis=1), np.stack(blocks, axis=1))
            window = (window + [z])[-history:]
            taken = blocks[-(len(window) - 1):] if len(window) > 1 else []
        return z

    def plan(self, z_context: np.ndarray, past_blocks: np.ndarray, z_goal: np.ndarray, rng: np.random.Generator,
             on_iteration: Callable[[Iteration], None] | None = None) -> Plan:
        """Plan `horizon` action blocks from the context toward the goal embedding."""
        t0 = time.perf_counter()
        z_context = np.asarray(z_context, np.float32)[-self.settings.context:]
        past_blocks = np.asarray(past_blocks, np.float32).reshape(-1, self.block_dim)
        past_blocks = past_blocks[len(past_blocks) - (len(z_context) - 1):]  # those between the context frames
        goal = np.asarray(z_goal, np.float64)

        def cost(x: np.ndarray) -> np.ndarray:
            end = self.rollout(z_context, past_blocks, self.to_raw(x))
            return ((end.astype(np.float64) - goal) ** 2).sum(-1)

        result = cem_minimise(cost, (self.settings.horizon, self.block_dim), self.settings, rng, on_iteration)
        blocks = self.to_raw(result.mean)
        end = self.rollout(z_context, past_blocks, blocks[None])[0]
        return Plan(blocks=blocks, end_latent=end, cost=float(((end.astype(np.float64) - goal) ** 2).sum()),
                    elite_cost=result.elite_cost, best_cost=result.best_cost, seconds=time.perf_counter() - t0)


class RecedingHorizon:
    """Model-predictive control's bookkeeping, shared by `lewm plan` and the monitor's plan mode: which frames are
    the planner's context, when a new plan is due, which action comes next.

    Each env step: if wants_frame(), observe(z) the embedding of the current frame; if needs_plan(), make one
    (plan(), here or in another thread) and accept() it; then take next_action(). A plan's first
    receding_horizon x frameskip actions are executed before the next plan."""

    def __init__(self, planner: LatentPlanner):
        self.planner = planner
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.latents: list[np.ndarray] = []  # embeddings of the frames at model-step spacing, oldest first
        self.taken: list[np.ndarray] = []  # raw actions taken since the oldest kept latent
        self.queue: list[np.ndarray] = []
        self.plans = 0

    def wants_frame(self) -> bool:
        return self.step % self.planner.frameskip == 0

    def observe(self, z: np.ndarray) -> None:
        fs, keep = self.planner.frameskip, self.planner.settings.context
        self.latents.append(np.asarray(z, np.float32))
        if len(self.latents) > keep:
            self.latents = self.latents[-keep:]
            self.taken = self.taken[len(self.taken) - fs * (keep - 1):] if keep > 1 else []

    def needs_plan(self) -> bool:
        return not self.queue

    def context(self) -> tuple[np.ndarray, np.ndarray]:
        """(C, D) latents and (C - 1, block_dim) raw blocks between them."""
        fs = self.planner.frameskip
        blocks = np.asarray(self.taken[len(self.taken) - fs * (len(self.latents) - 1):], np.float32)
        return np.stack(self.latents), blocks.reshape(len(self.latents) - 1, self.planner.block_dim)

    def plan(self, z_goal: np.ndarray, rng: np.random.Generator,
             on_iteration: Callable[[Iteration], None] | None = None) -> Plan:
        z, blocks = self.context()
        return self.planner.plan(z, blocks, z_goal, rng, on_iteration)

    def accept(self, plan: Plan) -> None:
        n = self.planner.settings.receding_horizon * self.planner.frameskip
        self.queue = list(plan.actions(self.planner.action_dim)[:n].astype(np.float64))
        self.plans += 1

    def next_action(self) -> np.ndarray:
        action = self.queue.pop(0)
        self.taken.append(action)
        self.step += 1
        return action


def agent_paths(agent_xy: np.ndarray, raw_actions: np.ndarray, action_scale: float, world_size: float) -> np.ndarray:
    """The agent-target paths that raw action sequences (S, N, 2) imply from agent_xy: (S, N + 1, 2) world points,
    each target = the previous one + action_scale x action, clipped to the arena (as the simulator clips it)."""
    raw_actions = np.asarray(raw_actions, np.float64)
    paths = np.empty((raw_actions.shape[0], raw_actions.shape[1] + 1, 2))
    paths[:, 0] = agent_xy
    for k in range(raw_actions.shape[1]):
        paths[:, k + 1] = np.clip(paths[:, k] + action_scale * raw_actions[:, k], 0, world_size)
    return paths
