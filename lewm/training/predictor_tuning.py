"""Tuning a model's predictor for the plans it serves, on the frozen encoder's latents.

A planner rolls the predictor out open-loop from one real frame (context 1) for `horizon` action blocks and trusts
where the rollout ends; joint training (lewm/training/loop.py) scores mostly one-step forecasts from real windows of
the data's own actions. Planners pick action sequences unlike the data's, and there the predictor is far less right:
on random-action branches the 5-block rollout error of models/pusht-keypoints' stage 3 was 0.52 of copy-last's,
against 0.09 on the data's episodes. This stage keeps the encoder (so the latent space, the decoder, the ensemble and
the probes of what the encoder sees stay as they are) and trains the predictor, the action encoder and the prediction
projector on clips of history + horizon latents, with three mean-squared errors in latent space, equally weighted:

- one step from windows of `history` real latents (the stream's forecast, and joint training's loss);
- an open-loop rollout of `horizon` blocks from 1 real latent (the planner's);
- an open-loop rollout of `horizon` blocks from `history` real latents (the monitor's horizon forecasts).

The clips come from up to three sources:
- the dataset's episodes: every frameskip-th frame of each episode, from its first (one latent per model step),
  embedded once and cached in RUN/latents.npz;
- branches: from states of the dataset's episodes, history + horizon - 1 blocks of random actions (half drawn anew at
  every env step as CEM's first iteration does, half held for a block), in the data's action statistics and bounds;
  simulated, drawn and embedded once, cached in RUN/branches.npz;
- plans (optional): from states of the dataset's episodes, the model's own plan toward the episode's latent `horizon`
  model steps later (the protocol of `lewm plan`: a start and the goal 25 env steps on), then random blocks to the
  clip's length; planned with the model being tuned (its predictor before the tuning), simulated, drawn and
  embedded once, cached in RUN/plans.npz. A planner picks the sequences on which its model's forecast is most
  hopeful; these clips teach the predictor what really happens there (as DAgger teaches a policy on the states it
  visits itself), and their held-out share measures how far the planner's forecasts miss before and after.
It learns from frames and actions alone, as joint training does: no state enters a loss. The last episodes of the
dataset (val_fraction of them) and the branches and plans from their states are held out: the log reports each
source's rollout error against copy-last's, step by step.
"""
from __future__ import annotations

import functools
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lewm.checkpoint import load_model_folder
from lewm.decoder.model import encoder_sha256
from lewm.ensemble.model import has_ensemble
from lewm.model import LeWM
from lewm.training.schedule import begin_step, check_budget_and_held_out, warmup_cosine
from lewm_errors import UserError

LATENTS = "latents.npz"
BRANCHES = "branches.npz"
PLANS = "plans.npz"
CHECKPOINT = "checkpoint"
FROZEN = ("encoder.", "projector.")  # the parameters that do not train


@dataclass
class TuneSettings:
    steps: int = 100_000  # an upper bound: with a time budget, the budget usually ends the run
    batch_size: int = 256  # clips per step
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    horizon: int = 5  # blocks of each open-loop rollout (the planner's horizon)
    branches: int = 20_000  # random-action branches simulated from the dataset's states
    branch_share: float = 0.3  # of each batch
    plans: int = 0  # branches that follow the model's own plans (module docstring)
    plan_share: float = 0.0  # of each batch
    plan_solvers: str = "cem,icem+d0.3"  # planner labels (`lewm plan --solver`), used in turn
    seed: int = 0
    val_fraction: float = 0.05
    checkpoint_every: int = 500
    time_budget_minutes: float | None = None

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.horizon, self.checkpoint_every) < 1:
            raise UserError("the tuning's steps, batch size, horizon and checkpoint interval must be at least 1")
        if self.branches < 0 or not 0 <= self.branch_share < 1:
            raise UserError(f"branches must be 0 or more and their share of a batch in [0, 1), got {self.branches} "
                            f"and {self.branch_share}")
        if self.branch_share > 0 and self.branches == 0:
            raise UserError("a batch share of branches needs branches: give --branches N, or --branch-share 0")
        if self.plans < 0 or not 0 <= self.plan_share < 1 or self.branch_share + self.plan_share >= 1:
            raise UserError(f"plans must be 0 or more, and the batch shares of branches and plans together below 1 "
                            f"(the rest are the episodes'), got {self.plans}, {self.branch_share} and "
                            f"{self.plan_share}")
        if self.plan_share > 0 and self.plans == 0:
            raise UserError("a batch share of plans needs plans: give --plans N, or --plan-share 0")
        _planner_settings(self)  # a one-line error for a bad label, before any work
        check_budget_and_held_out("tuning", self.time_budget_minutes, self.val_fraction)

    def lr_at(self, step: int, elapsed_s: float) -> float:
        return warmup_cosine(self.lr, step, self.warmup, self.steps, elapsed_s, self.time_budget_minutes)


@dataclass
class Clips:
    """z (N, L, D) latents one model step apart, blocks (N, L - 1, A) the raw action blocks between them, held (N,)
    whether a clip is held out, and start_row (N,) the dataset row of the state each clip starts from."""

    z: np.ndarray
    blocks: np.ndarray
    held: np.ndarray
    start_row: np.ndarray


def clip_losses(model: LeWM, z: torch.Tensor, blocks: torch.Tensor, horizon: int) -> dict[str, torch.Tensor]:
    """The three losses of the module docstring on clips z (B, history + horizon, D), blocks (B, L - 1, A)."""
    history = model.config.history
    blocks = torch.nan_to_num(blocks, nan=0.0)
    act_emb = model.embed_actions(model.normalise_actions(blocks[:, :history]))
    return {"one_step": F.mse_loss(model.predict(z[:, :history], act_emb), z[:, 1:history + 1]),
            "rollout_from_1": F.mse_loss(model.rollout(z[:, :1], blocks[:, :horizon]), z[:, 1:horizon + 1]),
            "rollout_from_history": F.mse_loss(model.rollout(z[:, :history], blocks[:, :history - 1 + horizon]),
                                               z[:, history:history + horizon])}


@torch.no_grad()
def rollout_error(model: LeWM, clips: Clips, rows: np.ndarray, horizon: int, batch: int = 2048) -> list[float]:
    """Per rollout step, the mean squared error of the open-loop rollout from 1 real latent over that of copying
    the real latent (1 = no better than assuming nothing moves)."""
    was_training = model.training
    model.eval()
    errors, copies = [], []
    for s in range(0, len(rows), batch):
        z = torch.from_numpy(clips.z[rows[s:s + batch]])
        blocks = torch.from_numpy(np.nan_to_num(clips.blocks[rows[s:s + batch]]))
        errors.append(((model.rollout(z[:, :1], blocks[:, :horizon]) - z[:, 1:horizon + 1]) ** 2).sum(-1))
        copies.append(((z[:, 1:horizon + 1] - z[:, :1]) ** 2).sum(-1))
    model.train(was_training)
    return [round(float(v), 4) for v in torch.cat(errors).mean(0) / torch.cat(copies).mean(0)]


def _embed(model: LeWM, frames: np.ndarray, batch: int = 256) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model.encode_frames(torch.from_numpy(frames[i:i + batch])).numpy()
                               for i in range(0, len(frames), batch)])


def _cached(path: Path, key: dict, make) -> dict[str, np.ndarray]:
    """The arrays in `path` when it was made with this key, else make() (written there)."""
    if path.is_file():
        with np.load(path) as stored:
            if "key" in stored and json.loads(str(stored["key"])) == key:
                return {name: stored[name] for name in stored.files if name != "key"}
    arrays = make()
    np.savez(path, key=json.dumps(key), **arrays)
    return arrays


def episode_clips(model: LeWM, dataset, length: int, val_fraction: float, cache: Path, key: dict,
                  chunk: int = 2048) -> Clips:
    """Every clip of `length` latents one model step apart in the dataset's episodes (frames from each episode's
    first, every frameskip-th); the last val_fraction of the episodes held out."""
    skip = model.config.frameskip
    offsets, lengths = dataset.ep_offset.astype(np.int64), dataset.ep_len.astype(np.int64)
    rows = np.concatenate([np.arange(o, o + n, skip) for o, n in zip(offsets, lengths)])

    def make() -> dict[str, np.ndarray]:
        parts = [_embed(model, dataset.frames_at(rows[s:s + chunk]))
                 for s in tqdm(range(0, len(rows), chunk), desc="embedding episodes", unit="chunk")]
        return {"z": np.concatenate(parts).astype(np.float32), "rows": rows}

    z = _cached(cache, {**key, "rows": int(len(rows))}, make)["z"]
    episode = np.repeat(np.arange(len(offsets)), (lengths + skip - 1) // skip)
    starts = np.flatnonzero(episode[:len(episode) - length + 1] == episode[length - 1:])
    actions = np.asarray(dataset.action, np.float32)
    block_rows = rows[starts[:, None] + np.arange(length - 1)][..., None] + np.arange(skip)  # (N, L-1, skip)
    blocks = actions[block_rows].reshape(len(starts), length - 1, -1)
    held_from = len(offsets) - max(1, int(round(val_fraction * len(offsets))))
    return Clips(z[starts[:, None] + np.arange(length)], blocks, episode[starts] >= held_from, rows[starts])


def _simulate_branch(job: tuple[np.ndarray, np.ndarray], skip: int) -> np.ndarray | None:
    """States every `skip` env steps along one branch (its start state, then its actions), or None when the
    simulator stops early."""
    from scenes.dataset import replay

    start, actions = job
    states = replay(start, actions)
    return states[::skip] if len(states) == len(actions) + 1 else None


def branch_clips(model: LeWM, dataset, count: int, length: int, val_fraction: float, seed: int, cache: Path,
                 key: dict, processes: int) -> Clips:
    """`count` random-action branches of length - 1 blocks from states of the dataset's episodes (module docstring);
    those from the held-out episodes' states are held out."""
    from scenes.render import draw_states

    skip = model.config.frameskip
    rng = np.random.default_rng(seed)
    states = np.asarray(dataset.state, np.float64)
    starts = rng.choice(len(states), count)
    raw = random_actions(rng, dataset, count, length - 1, skip)

    def make() -> dict[str, np.ndarray]:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            walked = list(tqdm(pool.imap(functools.partial(_simulate_branch, skip=skip),
                                         zip(states[starts], raw), chunksize=64),
                               total=count, desc="simulating branches", unit="branch"))
        kept = np.array([w is not None for w in walked])
        if not kept.any():
            raise UserError("no branch could be simulated from the dataset's states")
        return {"z": _embed_paths(model, np.stack([w for w in walked if w is not None]), "branches"), "kept": kept}

    made = _cached(cache, {**key, "branches": count, "length": length, "seed": seed}, make)
    kept = made["kept"]
    episode = np.searchsorted(dataset.ep_offset, starts[kept], side="right") - 1
    held_from = len(dataset.ep_offset) - max(1, int(round(val_fraction * len(dataset.ep_offset))))
    return Clips(made["z"], raw[kept].reshape(int(kept.sum()), length - 1, -1), episode >= held_from, starts[kept])


def random_actions(rng: np.random.Generator, dataset, count: int, blocks: int, skip: int) -> np.ndarray:
    """(count, blocks x skip, A) raw actions in the data's statistics and bounds (its 0.5% and 99.5% quantiles):
    half the sequences drawn anew at every env step, as CEM's first iteration draws them, half held for a block."""
    actions = np.asarray(dataset.action, np.float32)
    finite = actions[np.isfinite(actions).all(1)]
    mean, std = finite.mean(0), finite.std(0)
    low, high = np.quantile(finite, (0.005, 0.995), axis=0)
    fresh = rng.standard_normal((count, blocks * skip, finite.shape[1]))
    held_per_block = np.repeat(rng.standard_normal((count, blocks, 1, finite.shape[1])), skip, axis=2)
    per_step = (rng.random(count) < 0.5)[:, None, None]
    raw = np.clip(mean + std * np.where(per_step, fresh, held_per_block.reshape(fresh.shape)), low, high)
    return raw.astype(np.float32)


def _embed_paths(model: LeWM, paths: np.ndarray, what: str, chunk: int = 2048) -> np.ndarray:
    """(K, L, state) simulated states -> (K, L, D) latents of their drawn frames."""
    from scenes.render import draw_states

    flat = paths.reshape(-1, paths.shape[-1])
    z = np.concatenate([_embed(model, draw_states(flat[s:s + chunk], model.config.image_size))
                        for s in tqdm(range(0, len(flat), chunk), desc=f"embedding {what}", unit="chunk")])
    return z.reshape(*paths.shape[:2], -1).astype(np.float32)


_PLANNERS: list = []  # a planning worker's planners (_start_planning)


def _start_planning(model_dir: str, planner_settings: list) -> None:
    from lewm.planning.planner import LatentPlanner
    from lewm.torch_backend import TorchBackend

    torch.set_num_threads(1)  # one worker per core
    backend = TorchBackend.from_folder(model_dir)
    _PLANNERS[:] = [LatentPlanner(backend, s) for s in planner_settings]


def _planner_settings(settings: TuneSettings) -> list:
    """The planners of settings.plan_solvers at the tuning's horizon, each plan executed whole."""
    from lewm.planning.planner import parse_planners

    return parse_planners(settings.plan_solvers, common={"horizon": settings.horizon,
                                                         "receding_horizon": settings.horizon},
                          option="--plan-solvers")


def _plan_and_walk(job: tuple, skip: int, planners: list | None = None) -> tuple[np.ndarray | None, np.ndarray, float]:
    """Plan from the job's start latent toward its goal latent, append the job's random tail, and simulate the
    whole from its start state: (states every `skip` env steps or None, raw actions, the plan's forecast cost)."""
    start_state, z_start, z_goal, which, seed, tail = job
    planner = (planners or _PLANNERS)[which]
    plan = planner.plan(z_start[None], np.zeros((0, planner.block_dim), np.float32), z_goal,
                        np.random.default_rng(seed))
    actions = np.concatenate([plan.actions(planner.action_dim), tail]).astype(np.float32)
    return _simulate_branch((start_state, actions), skip), actions, plan.cost


def plan_jobs(dataset, episodes: Clips, count: int, planners: int, horizon: int, skip: int,
              seed: int) -> tuple[np.ndarray, list]:
    """`count` planning jobs from random episode clips: (the clips' indices, jobs for _plan_and_walk), the planners
    taken in turn, the goal the clip's latent `horizon` model steps on."""
    rng = np.random.default_rng(seed)
    length = episodes.z.shape[1]
    picks = rng.choice(len(episodes.z), count)
    tails = random_actions(rng, dataset, count, length - 1 - horizon, skip)
    states = np.asarray(dataset.state, np.float64)
    return picks, [(states[episodes.start_row[c]], episodes.z[c, 0], episodes.z[c, horizon], i % planners,
                    seed * 1_000_003 + i, tails[i]) for i, c in enumerate(picks)]


def plan_clips(model: LeWM, model_dir: Path, dataset, episodes: Clips, settings: TuneSettings, cache: Path, key: dict,
               processes: int) -> tuple[Clips, dict[str, float | None], list]:
    """settings.plans branches that follow the model's own plans (module docstring), those from held-out episodes
    held out; the median of the plans' realised over forecast end cost (as `lewm plan` reports it), for the
    training and the held-out starts; and the held-out (clip index, job) pairs, for replanned_gap."""
    planners = _planner_settings(settings)  # made here, so that a bad setting stops the run, not a worker
    skip, length = model.config.frameskip, episodes.z.shape[1]
    picks, jobs = plan_jobs(dataset, episodes, settings.plans, len(planners), settings.horizon, skip, settings.seed)

    def make() -> dict[str, np.ndarray]:
        with multiprocessing.get_context("spawn").Pool(processes, _start_planning,
                                                       (str(model_dir), planners)) as pool:
            walked = list(tqdm(pool.imap(functools.partial(_plan_and_walk, skip=skip), jobs),
                               total=len(jobs), desc="planning and simulating", unit="plan"))
        kept = np.array([w[0] is not None for w in walked])
        if not kept.any():
            raise UserError("no plan could be simulated from the dataset's states")
        return {"z": _embed_paths(model, np.stack([w[0] for w in walked if w[0] is not None]), "plans"),
                "kept": kept, "actions": np.stack([w[1] for w in walked]),
                "forecast": np.array([w[2] for w in walked])}

    made = _cached(cache, {**key, "plans": settings.plans, "solvers": settings.plan_solvers, "length": length,
                           "horizon": settings.horizon, "seed": settings.seed}, make)
    kept = made["kept"]
    clips = Clips(made["z"], made["actions"][kept].reshape(int(kept.sum()), length - 1, -1),
                  episodes.held[picks[kept]], episodes.start_row[picks[kept]])
    realised = ((clips.z[:, settings.horizon] - episodes.z[picks[kept], settings.horizon]) ** 2).sum(-1)
    ratio = realised / np.maximum(made["forecast"][kept], 1e-9)
    held_jobs = [(c, job) for c, job in zip(picks, jobs) if episodes.held[c]]
    return clips, {"train": _median(ratio[~clips.held]), "held_out": _median(ratio[clips.held])}, held_jobs


def _median(values: np.ndarray) -> float | None:
    return round(float(np.median(values)), 2) if len(values) else None


def replanned_gap(model: LeWM, model_dir: Path, held_jobs: list, episodes: Clips,
                  settings: TuneSettings) -> float | None:
    """The median realised / forecast end cost of `model`'s own plans from the held-out plan starts (plan_clips'
    held-out jobs, planned again by the tuned predictor)."""
    from lewm.ensemble.model import TorchEnsemble, load_ensemble
    from lewm.planning.planner import LatentPlanner
    from lewm.torch_backend import TorchBackend

    backend = TorchBackend(model, ensemble=TorchEnsemble(load_ensemble(model_dir)) if has_ensemble(model_dir) else None)
    planners = [LatentPlanner(backend, s) for s in _planner_settings(settings)]
    ends, goals, forecasts = [], [], []
    for pick, job in tqdm(held_jobs, desc="planning held-out starts", unit="plan"):
        states, _, forecast = _plan_and_walk(job, model.config.frameskip, planners)
        if states is not None:
            ends.append(states[settings.horizon])
            goals.append(episodes.z[pick, settings.horizon])
            forecasts.append(forecast)
    if not ends:
        return None
    realised = ((_embed_paths(model, np.stack(ends)[:, None], "plan ends")[:, 0] - np.stack(goals)) ** 2).sum(-1)
    return _median(realised / np.maximum(np.array(forecasts), 1e-9))


def tune_predictor(model_dir: str | Path, data: str | Path, run: str | Path, settings: TuneSettings,
                   resume: bool = False, processes: int | None = None, log=print) -> tuple[LeWM, dict]:
    """Tune (or resume tuning) the predictor of the model folder's model; returns the model (eval mode) and facts
    about the tuning. RUN/checkpoint holds the latest weights.safetensors and trainer_state.pt."""
    from scenes.dataset import EpisodeDataset

    run, model_dir = Path(run), Path(model_dir)
    checkpoint = run / CHECKPOINT
    if not resume and checkpoint.exists():
        raise UserError(f"{run} already holds a tuning checkpoint: resume it (--resume), or tune into another run "
                        f"folder")
    if resume and not checkpoint.exists():
        raise UserError(f"nothing to resume in {run}: no checkpoint folder there")
    model = load_model_folder(model_dir)
    length = model.config.history + settings.horizon
    if (settings.plans and not has_ensemble(model_dir)
            and any(p.uncertainty_weight for p in _planner_settings(settings))):
        raise UserError(f"--plan-solvers {settings.plan_solvers} weighs uncertainty, and {model_dir} has no "
                        f"ensemble; train one (`lewm train-ensemble`) or plan without a penalty (e.g. cem)")
    run.mkdir(parents=True, exist_ok=True)
    key = {"dataset": str(Path(data).resolve()), "dataset_bytes": Path(data).stat().st_size,
           "encoder_sha256": encoder_sha256(model_dir)}
    with EpisodeDataset(data, image_size=model.config.image_size) as dataset:
        episodes = episode_clips(model, dataset, length, settings.val_fraction, run / LATENTS, key)
        processes = processes or os.cpu_count() or 1
        sources = {"episodes": episodes}
        if settings.branches:
            sources["branches"] = branch_clips(model, dataset, settings.branches, length, settings.val_fraction,
                                               settings.seed, run / BRANCHES, key, processes)
        if settings.plans:
            sources["plans"], plan_gap, held_jobs = plan_clips(model, model_dir, dataset, episodes, settings,
                                                               run / PLANS, key, processes)
            log("the model's plans from the dataset's states, realised / forecast end cost, median, before: "
                + json.dumps(plan_gap))
    train_rows = {name: np.flatnonzero(~c.held) for name, c in sources.items()}
    val_rows = {name: np.flatnonzero(c.held) for name, c in sources.items()}
    if len(train_rows["episodes"]) == 0 or len(val_rows["episodes"]) == 0:
        raise UserError(f"{data} holds too few episodes of {length} model steps ({length * model.config.frameskip} "
                        f"env steps) to tune on and hold some out; collect longer or more episodes")
    before = {name: rollout_error(model, c, val_rows[name], settings.horizon) for name, c in sources.items()}
    log("held out, rollout error / copy-last's per step, before: " + json.dumps(before))

    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(FROZEN))
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=settings.lr, weight_decay=settings.weight_decay)
    step, elapsed_before = 0, 0.0
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    if resume:
        model.load_state_dict(load_file(str(checkpoint / "weights.safetensors")))
        state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = state["step"], state["elapsed_s"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    else:
        (run / "settings.json").write_text(json.dumps(asdict(settings), indent=2) + "\n")
    shares = {"branches": settings.branch_share, "plans": settings.plan_share}
    counts = {name: int(round(shares[name] * settings.batch_size)) for name in sources if name != "episodes"}
    counts["episodes"] = settings.batch_size - sum(counts.values())
    start = time.perf_counter() - elapsed_before
    log_file = (run / "log.jsonl").open("a" if resume else "w")
    timed = settings.time_budget_minutes is not None  # then the bar counts the budget's minutes
    bar = (tqdm(total=round(settings.time_budget_minutes, 1), initial=round(elapsed_before / 60, 1),
                desc="tune-predictor", unit="min", bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} min{postfix}")
           if timed else tqdm(total=settings.steps, initial=step, desc="tune-predictor", unit="step"))
    while step < settings.steps:
        elapsed = time.perf_counter() - start
        if not begin_step(optimizer, settings, step, elapsed, log):
            break
        picks = [(sources[name], rng.choice(train_rows[name], counts[name])) for name in sources if counts[name]]
        z = torch.from_numpy(np.concatenate([c.z[r] for c, r in picks]))
        blocks = torch.from_numpy(np.concatenate([c.blocks[r] for c, r in picks]))
        model.train()  # the encoder and projector are not called: the clips hold their latents
        losses = clip_losses(model, z, blocks, settings.horizon)
        loss = sum(losses.values()) / len(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(min((time.perf_counter() - start) / 60, bar.total) - bar.n if timed else 1)
        if step % 100 == 0:
            bar.set_postfix(**({"step": step} if timed else {}), loss=f"{loss.item():.4f}")
            log_file.write(json.dumps({"step": step, "elapsed_s": round(time.perf_counter() - start, 1),
                                       "lr": settings.lr_at(step, elapsed),
                                       **{k: round(v.item(), 5) for k, v in losses.items()}}) + "\n")
            log_file.flush()
        if step % settings.checkpoint_every == 0:
            _save_checkpoint(checkpoint, model, optimizer, step, time.perf_counter() - start, rng)
    bar.close()
    _save_checkpoint(checkpoint, model, optimizer, step, time.perf_counter() - start, rng)
    minutes = round((time.perf_counter() - start) / 60, 1)
    model.eval()
    after = {name: rollout_error(model, c, val_rows[name], settings.horizon) for name, c in sources.items()}
    log("held out, rollout error / copy-last's per step, after: " + json.dumps(after))
    if settings.plans:
        plan_gap["held_out_after"] = replanned_gap(model, model_dir, held_jobs, episodes, settings)
        log("the model's plans from the held-out starts, realised / forecast end cost, median, after: "
            + str(plan_gap["held_out_after"]))
    log_file.write(json.dumps({"step": step, "held_out_before": before, "held_out_after": after}) + "\n")
    log_file.close()
    facts = {"dataset": str(data), "steps": step, "minutes": minutes,
             "clips": {name: int(len(rows)) for name, rows in train_rows.items()},
             "held_out_rollout_error_over_copy_last": {"before": before, "after": after},
             **({"plans_realised_over_forecast_end_cost": plan_gap} if settings.plans else {}),
             "settings": asdict(settings)}
    return model, facts


def _save_checkpoint(folder: Path, model: LeWM, optimizer, step: int, elapsed_s: float,
                     rng: np.random.Generator) -> None:
    """Weights and trainer state, written beside the old ones and then moved over them (a crash mid-write leaves
    the previous checkpoint whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / "weights.tmp"),
              metadata={"format": "pt"})
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed_s,
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, folder / "trainer_state.tmp")
    os.replace(folder / "weights.tmp", folder / "weights.safetensors")
    os.replace(folder / "trainer_state.tmp", folder / "trainer_state.pt")
