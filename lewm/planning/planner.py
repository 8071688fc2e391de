"""Model-predictive control in latent space over the two-call model interface: the cross-entropy method (CEM), iCEM
and MPPI, with an optional penalty on the model's uncertainty about its forecast.

Numpy only (no torch), so the same planner runs on the torch model, on the ONNX engine, in `lewm plan` and in the
monitor's plan mode. The defaults are the official PushT CEM settings (le-wm `config/eval/solver/cem.yaml`,
stable-worldmodel's planning config):

- 300 candidate action sequences per iteration, 30 iterations, the 30 lowest-cost (elites) refit the sampler;
- a sequence is `horizon` = 5 model steps, each an action block of frameskip x 2 raw actions (25 env steps);
- candidates are drawn in the model's normalised action space (z-scored with its action statistics) from
  N(mean, std), mean 0 and std = var_scale at the start; each iteration's first candidate is the current mean;
  the update takes the elites' mean and standard deviation;
- a candidate's cost is the squared L2 distance between the last predicted embedding of its rollout and the goal
  frame's embedding;
- the chosen plan is the final mean, mapped back to raw actions (action_mean + action_std x normalised, clipped to
  the action bounds) before it reaches the simulator; with receding horizon 5 the whole plan is executed
  before the next one is made. The action bounds are the action space [-1, 1], or, where the model folder records
  the range of its data's actions (config.json's "action_bounds", written by `lewm train-ensemble`), that range:
  the planner then proposes no action the model has not seen.

The other solvers share the sampler's space, the budget (samples x iterations) and the cost:
- iCEM (Pinneri et al., 2020): candidates drawn with coloured noise along the horizon (power spectrum 1 / f^beta,
  beta = 2: smoother sequences than white noise), a share of each iteration's elites carried into the next
  iteration's candidates, and the mean updated with momentum 0.1;
- MPPI (Williams et al., 2017): the mean becomes the average of all candidates weighted by exp(-(cost - min) /
  lambda), lambda = temperature x (median cost - min cost), and the standard deviation the weighted one (kept
  above 5% of the start) so that the search narrows as CEM's does.

Uncertainty. Where the model serves uncertainty(z, action_blocks) (lewm/ensemble/model.py: an ensemble's disagreement
plus its expected error, in squared latent distance, the cost's unit) and uncertainty_weight W > 0, a candidate's cost
gains W x the sum over its blocks of the uncertainty of each predicted step (from the latent before the block, under
the block): plans through states where the model's forecast is unreliable cost more, as in TD-MPC2. The penalty
takes the whole uncertainty ("total"), or the disagreement alone ("disagreement": what the model does not know, and
more data would teach it). The difference matters on PushT: the expected error (noise) is highest exactly where the
agent pushes the block, so a penalty on the total steers plans away from the contact the task needs, while the
members disagree most where the data were thin.

A rollout batches every candidate: one predictor call per horizon step per iteration, or, where the model has a
fused rollout for this context length and horizon (`fits_rollout`: the torch model always, the ONNX engine for the
shape of its rollout.onnx), one rollout call per iteration that gives the same latents with less work.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from lewm.model_interface import ROLLOUT, UNCERTAINTY
from lewm_errors import UserError


SOLVERS = ("cem", "icem", "mppi")
PENALTIES = {"total": "u", "disagreement": "d"}  # what the uncertainty penalty weighs, and its letter in a label


@dataclass
class PlannerSettings:
    solver: str = "cem"
    samples: int = 300
    iterations: int = 30
    elites: int = 30
    var_scale: float = 1.0
    horizon: int = 5  # model steps per plan
    receding_horizon: int = 5  # model steps executed before re-planning
    context: int = 1  # real frames given to the predictor (stable-worldmodel's history_len: 1)
    uncertainty_weight: float = 0.0  # W: cost += W x summed uncertainty of the forecast's steps
    penalty: str = "total"  # the part of the uncertainty weighed: "total" or "disagreement"
    noise_beta: float = 2.0  # iCEM: exponent of the coloured noise's power spectrum along the horizon
    keep_elites: float = 0.3  # iCEM: share of the elites carried into the next iteration
    momentum: float = 0.1  # iCEM: weight of the previous mean in the update
    temperature: float = 0.1  # MPPI: lambda as a share of the median cost's excess over the best

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise UserError(f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if self.penalty not in PENALTIES:
            raise UserError(f"unknown uncertainty penalty {self.penalty!r}; choose one of {', '.join(PENALTIES)}")
        if not self.uncertainty_weight >= 0:
            raise UserError(f"the uncertainty weight must be zero or positive, got {self.uncertainty_weight}")
        if not (0 <= self.keep_elites <= 1 and 0 <= self.momentum < 1 and self.temperature > 0):
            raise UserError("iCEM's kept share must lie in [0, 1], its momentum in [0, 1), MPPI's temperature above 0")
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

    @property
    def label(self) -> str:
        """The solver and its uncertainty weight, as plan.json names a planner: "cem", "icem+u0.5" (the total
        uncertainty weighed), "cem+d2" (the disagreement alone)."""
        letter = PENALTIES[self.penalty]
        return self.solver + (f"+{letter}{self.uncertainty_weight:g}" if self.uncertainty_weight else "")


def parse_planners(solvers: str, weight: float = 0.0, common: dict | None = None,
                   option: str = "--solver") -> list[PlannerSettings]:
    """Planner labels, comma-separated as `lewm plan --solver` takes them ("cem,icem+u0.5,cem+d2"), ->
    PlannerSettings, each with its own weight (+uW: on the total uncertainty, +dW: on the disagreement alone) or
    `weight` (on the total); `common` holds the settings they share. Errors name `option`, the flag that gave them."""
    planners = []
    for name in (part.strip() for part in solvers.split(",") if part.strip()):
        solver, sign, rest = name.partition("+")
        letter, own = rest[:1], rest[1:]
        penalty = {v: k for k, v in PENALTIES.items()}.get(letter)
        if sign and penalty is None:
            raise UserError(f"{option} {name!r}: after + comes u (the total uncertainty) or d (the disagreement "
                            f"alone) and a weight, e.g. cem+u0.5 or cem+d2")
        try:
            w = float(own) if own else weight
        except ValueError:
            raise UserError(f"{option} {name!r}: the weight after +{letter} must be a number (e.g. cem+{letter}0.5)"
                            ) from None
        try:
            planners.append(PlannerSettings(solver=solver, uncertainty_weight=w, penalty=penalty or "total",
                                            **(common or {})))
        except UserError as error:
            raise UserError(f"{option} {name!r}: {error}") from None
    if not planners:
        raise UserError(f"{option} names no planner; give one of {', '.join(SOLVERS)}")
    return planners


@dataclass
class Iteration:
    """One solver iteration, for whoever watches the plan form (the monitor draws these)."""

    index: int
    samples: np.ndarray  # (S, ...) the candidates in the normalised space
    costs: np.ndarray  # (S,)
    elites: np.ndarray  # (K,) indices into samples, lowest cost first
    uncertainty: np.ndarray | None = None  # (S,) each candidate's summed uncertainty, where the model serves it


@dataclass
class CEMResult:
    mean: np.ndarray  # the final mean (the chosen solution)
    std: np.ndarray
    elite_cost: np.ndarray  # (iterations,) mean cost of each iteration's elites
    best_cost: np.ndarray  # (iterations,) lowest cost of each iteration


def minimise(cost: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...], settings: PlannerSettings,
             rng: np.random.Generator, on_iteration: Callable[[Iteration], None] | None = None) -> CEMResult:
    """Minimise cost(x (S, *shape)) -> (S,) over x in R^shape (shape: horizon first) by settings.solver, starting
    from N(0, var_scale^2). `cost` may also return (costs, uncertainty) to pass each candidate's uncertainty on."""
    mean = np.zeros(shape, np.float64)
    std = np.full(shape, settings.var_scale, np.float64)
    floor = 0.05 * settings.var_scale
    elite_cost, best_cost = [], []
    kept = None  # iCEM: the previous iteration's best elites
    for i in range(settings.iterations):
        noise = (coloured_noise(rng, (settings.samples, *shape), settings.noise_beta) if settings.solver == "icem"
                 else rng.standard_normal((settings.samples, *shape)))
        x = mean + std * noise
        x[0] = mean
        if kept is not None:
            x[len(x) - len(kept):] = kept
        out = cost(x)
        c, u = (out if isinstance(out, tuple) else (out, None))
        c = np.asarray(c, np.float64)
        order = np.argsort(c, kind="stable")[:settings.elites]
        elite = x[order]
        if settings.solver == "mppi":
            lam = settings.temperature * max(float(np.median(c) - c[order[0]]), 1e-12)
            w = np.exp(-(c - c[order[0]]) / lam)
            w /= w.sum()
            mean = np.tensordot(w, x, axes=1)
            std = np.maximum(np.sqrt(np.tensordot(w, (x - mean) ** 2, axes=1)), floor)
        elif settings.solver == "icem":
            mean = settings.momentum * mean + (1 - settings.momentum) * elite.mean(axis=0)
            std = elite.std(axis=0)
            carried = int(round(settings.keep_elites * len(elite)))
            kept = elite[:carried].copy() if carried else None
        else:
            mean, std = elite.mean(axis=0), elite.std(axis=0)
        elite_cost.append(float(c[order].mean()))
        best_cost.append(float(c[order[0]]))
        if on_iteration is not None:
            on_iteration(Iteration(i, x, c, order, None if u is None else np.asarray(u, np.float64)))
    return CEMResult(mean, std, np.array(elite_cost), np.array(best_cost))


def coloured_noise(rng: np.random.Generator, shape: tuple[int, ...], beta: float) -> np.ndarray:
    """Standard normal samples (S, H, ...) correlated along axis 1 (time) with power spectrum 1 / f^beta (iCEM):
    white noise for beta = 0, smoother sequences as beta grows; each entry has unit variance."""
    horizon = shape[1]
    freqs = np.fft.rfftfreq(horizon)
    freqs[0] = freqs[1] if horizon > 1 else 1.0  # the constant term gets the lowest frequency's power
    scale = freqs ** (-beta / 2.0)
    spectrum = (rng.standard_normal((shape[0], len(freqs), *shape[2:]))
                + 1j * rng.standard_normal((shape[0], len(freqs), *shape[2:])))
    spectrum *= scale.reshape(1, -1, *([1] * (len(shape) - 2)))
    x = np.fft.irfft(spectrum, n=horizon, axis=1)
    return x / np.maximum(x.std(axis=(0, 1), keepdims=True), 1e-12)


@dataclass
class Plan:
    blocks: np.ndarray  # (horizon, frameskip * action_dim) raw action blocks, to be executed in order
    end_latent: np.ndarray  # (D,) the predicted embedding after the last block
    cost: float  # the chosen plan's forecast end cost (squared L2 of end_latent to the goal embedding)
    elite_cost: np.ndarray  # (iterations,) mean elite cost per CEM iteration
    best_cost: np.ndarray  # (iterations,)
    seconds: float  # wall time of planning
    # the same distance for the frame actually reached once the whole plan has been executed (set by whoever
    # executes it; None until then, or when execution stopped early): far above `cost`, the model's forecast of
    # its own plan was wrong, which is how a planner exploits a model's errors
    realised_cost: float | None = None
    # the model's uncertainty about each step of the chosen plan's forecast (H,), where it serves one
    step_uncertainty: np.ndarray | None = None

    def actions(self, action_dim: int) -> np.ndarray:
        """The raw env actions of the plan, in order: (horizon * frameskip, action_dim)."""
        return self.blocks.reshape(-1, action_dim)


class LatentPlanner:
    """CEM, iCEM or MPPI in latent space toward a goal embedding.

    model: anything with encode / predict (ARCHITECTURE.md) and config (action_dim, frameskip, action_mean,
    action_std), history and latent_dim: lewm.torch_backend.TorchBackend or export.engine.OnnxEngine; with
    uncertainty_weight > 0, also uncertainty(z, action_blocks) (UNCERTAINTY in its capabilities).
    """

    def __init__(self, model, settings: PlannerSettings | None = None):
        self.model = model
        self.settings = settings or PlannerSettings()
        self.serves_uncertainty = UNCERTAINTY in getattr(model, "capabilities", ())
        if self.settings.uncertainty_weight and not self.serves_uncertainty:
            raise UserError("an uncertainty weight needs a model folder with an uncertainty ensemble; train one "
                            "with `lewm train-ensemble`")
        config = model.config
        self.action_dim = config.action_dim
        self.frameskip = config.frameskip
        self.block_dim = config.action_block_dim
        # per block: frameskip actions of action_dim each, so the statistics repeat along the block
        self.action_mean = np.tile(np.asarray(config.action_mean, np.float64), self.frameskip)
        self.action_std = np.tile(np.asarray(config.action_std, np.float64), self.frameskip)
        low, high = action_bounds(config)
        self.action_low = np.tile(low, self.frameskip)
        self.action_high = np.tile(high, self.frameskip)

    def to_raw(self, normalised: np.ndarray) -> np.ndarray:
        """Normalised action blocks (..., block_dim) -> raw env actions inside the action bounds."""
        raw = normalised * self.action_std + self.action_mean
        return np.clip(raw, self.action_low, self.action_high).astype(np.float32)

    def step_uncertainty(self, z_context: np.ndarray, future: np.ndarray, raw_blocks: np.ndarray) -> np.ndarray:
        """(S, H, 2): the model's uncertainty about each forecast step (disagreement, noise), from the latent before
        it (the newest context latent, then the forecasts) under its block; future (S, H, D) from rollout()."""
        s, horizon, d = future.shape
        before = np.concatenate([np.broadcast_to(np.asarray(z_context, np.float32)[-1], (s, 1, d)),
                                 future[:, :-1]], axis=1)
        parts = self.model.uncertainty(before.reshape(s * horizon, d), raw_blocks.reshape(s * horizon, -1))
        return parts.astype(np.float64).reshape(s, horizon, -1)

    def penalised(self, parts: np.ndarray) -> np.ndarray:
        """The part of step_uncertainty's (..., 2) that the penalty weighs."""
        return parts[..., 0] if self.settings.penalty == "disagreement" else parts.sum(-1)

    def rollout(self, z_context: np.ndarray, past_blocks: np.ndarray, raw_blocks: np.ndarray) -> np.ndarray:
        """The predicted embeddings (S, H, D) after each block of each candidate.

        z_context (C, D): the newest real embeddings, oldest first (C <= history); past_blocks (C - 1, block_dim):
        the raw blocks taken between them; raw_blocks (S, H, block_dim): the candidates."""
        s, (c, horizon) = len(raw_blocks), (len(z_context), raw_blocks.shape[1])
        if ROLLOUT in self.model.capabilities and self.model.fits_rollout(c, horizon):
            z = np.repeat(np.asarray(z_context, np.float32)[None], s, axis=0)
            taken = np.repeat(np.asarray(past_blocks, np.float32).reshape(1, c - 1, self.block_dim), s, axis=0)
            return self.model.rollout(z, np.concatenate([taken, raw_blocks], axis=1))
        history = self.model.history
        window = [np.broadcast_to(z, (s, z.shape[-1])) for z in np.asarray(z_context, np.float32)]
        taken = [np.broadcast_to(b, (s, self.block_dim)) for b in np.asarray(past_blocks, np.float32)]
        out = []
        for h in range(raw_blocks.shape[1]):
            blocks = (taken + [raw_blocks[:, h]])[-len(window):]
            z = self.model.predict(np.stack(window, axis=1), np.stack(blocks, axis=1))
            out.append(z)
            window = (window + [z])[-history:]
            taken = blocks[-(len(window) - 1):] if len(window) > 1 else []
        return np.stack(out, axis=1)

    def plan(self, z_context: np.ndarray, past_blocks: np.ndarray, z_goal: np.ndarray, rng: np.random.Generator,
             on_iteration: Callable[[Iteration], None] | None = None) -> Plan:
        """Plan `horizon` action blocks from the context toward the goal embedding."""
        t0 = time.perf_counter()
        z_context = np.asarray(z_context, np.float32)[-self.settings.context:]
        past_blocks = np.asarray(past_blocks, np.float32).reshape(-1, self.block_dim)
        past_blocks = past_blocks[len(past_blocks) - (len(z_context) - 1):]  # those between the context frames
        goal = np.asarray(z_goal, np.float64)
        weight = self.settings.uncertainty_weight

        def cost(x: np.ndarray):
            raw = self.to_raw(x)
            future = self.rollout(z_context, past_blocks, raw)
            distance = ((future[:, -1].astype(np.float64) - goal) ** 2).sum(-1)
            if not self.serves_uncertainty:
                return distance
            parts = self.step_uncertainty(z_context, future, raw)
            return distance + weight * self.penalised(parts).sum(1), parts.sum((1, 2))

        result = minimise(cost, (self.settings.horizon, self.block_dim), self.settings, rng, on_iteration)
        blocks = self.to_raw(result.mean)
        future = self.rollout(z_context, past_blocks, blocks[None])
        end = future[0, -1]
        steps = self.step_uncertainty(z_context, future, blocks[None])[0].sum(-1) if self.serves_uncertainty else None
        return Plan(blocks=blocks, end_latent=end, cost=float(((end.astype(np.float64) - goal) ** 2).sum()),
                    elite_cost=result.elite_cost, best_cost=result.best_cost, seconds=time.perf_counter() - t0,
                    step_uncertainty=steps)


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


def action_bounds(config) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) raw action per dimension: config.json's "action_bounds" (the range of the data's actions), else
    the action space [-1, 1]."""
    bounds = config.extra.get("action_bounds") if hasattr(config, "extra") else None
    if not bounds:
        return np.full(config.action_dim, -1.0), np.full(config.action_dim, 1.0)
    low, high = (np.clip(np.asarray(bounds[side], np.float64), -1, 1) for side in ("low", "high"))
    return low, high


def agent_paths(agent_xy: np.ndarray, raw_actions: np.ndarray, action_scale: float, world_size: float) -> np.ndarray:
    """The agent-target paths that raw action sequences (S, N, 2) imply from agent_xy: (S, N + 1, 2) world points,
    each target = the previous one + action_scale x action, clipped to the arena (as the simulator clips it)."""
    raw_actions = np.asarray(raw_actions, np.float64)
    paths = np.empty((raw_actions.shape[0], raw_actions.shape[1] + 1, 2))
    paths[:, 0] = agent_xy
    for k in range(raw_actions.shape[1]):
        paths[:, k + 1] = np.clip(paths[:, k] + action_scale * raw_actions[:, k], 0, world_size)
    return paths
