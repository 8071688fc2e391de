"""Training the uncertainty ensemble (lewm/ensemble/model.py) on a frozen model's latents.

Every frame of the dataset is embedded once by the model's encoder (cached in RUN/latents.npz, shared with the
decoder's trainer: lewm.decoder.training.embed_dataset). A transition is (z_t, the block of frameskip raw actions taken
after frame t, z_{t+frameskip}) inside one episode. Each member draws its own batches from the training episodes
(so the members see the data in different orders and proportions, as a bootstrap would) from its own initial
weights, and minimises the Gaussian negative log likelihood of z_{t+frameskip}. The last episodes (val_fraction of
them) are held out: the log reports the held-out likelihood and how the uncertainty ranks the members' errors there.
The action bounds of the data (quantiles of its raw actions) are reported with the ensemble for the planner.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lewm.ensemble.model import EnsembleConfig, LatentEnsemble, gaussian_nll
from lewm.training.schedule import begin_step, check_budget_and_held_out, warmup_cosine
from lewm_errors import UserError

BOUND_QUANTILES = (0.005, 0.995)


@dataclass
class EnsembleTrainSettings:
    steps: int = 4000
    batch_size: int = 256  # transitions per member per step
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.05
    time_budget_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise UserError("the ensemble's steps and batch size must be at least 1")
        check_budget_and_held_out("ensemble", self.time_budget_minutes, self.val_fraction)

    def lr_at(self, step: int, elapsed_s: float) -> float:
        return warmup_cosine(self.lr, step, 0, self.steps, elapsed_s, self.time_budget_minutes)


@dataclass
class Transitions:
    """Rows t whose block and successor lie inside their episode: z_t (N, D), blocks (N, A), z_next (N, D)."""

    z: np.ndarray
    blocks: np.ndarray
    z_next: np.ndarray
    episode: np.ndarray  # (N,) the episode of each transition


def transitions(z: np.ndarray, actions: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, frameskip: int
                ) -> Transitions:
    """Every transition of every episode (rows t with t + frameskip in the episode and finite actions)."""
    rows, episodes = [], []
    for e, (start, length) in enumerate(zip(offsets, lengths)):
        t = np.arange(start, start + length - frameskip)
        rows.append(t)
        episodes.append(np.full(len(t), e))
    rows, episodes = np.concatenate(rows), np.concatenate(episodes)
    blocks = np.stack([actions[rows + i] for i in range(frameskip)], axis=1).reshape(len(rows), -1)
    keep = np.isfinite(blocks).all(1)
    rows, blocks, episodes = rows[keep], blocks[keep], episodes[keep]
    return Transitions(z[rows].astype(np.float32), blocks.astype(np.float32), z[rows + frameskip].astype(np.float32),
                       episodes)


def action_bounds(actions: np.ndarray) -> dict:
    """Per action dimension, the BOUND_QUANTILES of the finite raw actions: the range the planner keeps to."""
    finite = actions[np.isfinite(actions).all(1)]
    low, high = np.quantile(finite, BOUND_QUANTILES, axis=0)
    return {"low": [float(v) for v in low], "high": [float(v) for v in high], "quantiles": list(BOUND_QUANTILES)}


def train_ensemble(model_dir: str | Path, data: str | Path, run: str | Path, econfig: EnsembleConfig,
                   settings: EnsembleTrainSettings, log=print) -> tuple[LatentEnsemble, dict]:
    """Train an ensemble for the model folder's frozen encoder; returns it (eval mode) and facts about its training
    and its data (for config.json)."""
    from lewm.config import ModelConfig
    from lewm.decoder.training import LATENTS, embed_dataset
    from scenes.dataset import EpisodeDataset

    run = Path(run)
    config = ModelConfig.load(Path(model_dir) / "config.json")
    with EpisodeDataset(data) as dataset:
        actions = np.asarray(dataset.file["action"][:], np.float32)
        offsets, lengths = dataset.ep_offset.copy(), dataset.ep_len.copy()
    pairs = embed_dataset(model_dir, data, run / LATENTS, settings.val_fraction)
    del pairs.frames  # only the latents are needed from here on
    moves = transitions(pairs.z, actions, offsets, lengths, config.frameskip)
    val_episode = np.searchsorted(offsets, pairs.val_rows[0], side="right") - 1
    held = moves.episode >= val_episode
    train_rows, val_rows = np.flatnonzero(~held), np.flatnonzero(held)
    if len(train_rows) < settings.batch_size or not len(val_rows):
        raise UserError(f"{data} holds too few transitions ({len(moves.z)}) to train an ensemble; collect more "
                        f"episodes")
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    ensemble = LatentEnsemble(econfig)
    optimizer = torch.optim.AdamW(ensemble.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    z, blocks, target = (torch.from_numpy(a) for a in (moves.z, moves.blocks, moves.z_next))
    k = econfig.members
    start = time.perf_counter()
    bar = tqdm(range(settings.steps), desc="train-ensemble", unit="step")
    step, loss = 0, torch.tensor(float("nan"))
    ensemble.train()
    for step in bar:
        elapsed = time.perf_counter() - start
        if not begin_step(optimizer, settings, step, elapsed, log):
            break
        index = torch.from_numpy(rng.choice(train_rows, (k, settings.batch_size)))  # each member its own draw
        means, log_var = ensemble(z[index], blocks[index])
        loss = gaussian_nll(means, log_var, target[index]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 200 == 0:
            bar.set_postfix(nll=f"{loss.item():.3f}")
    else:
        step = settings.steps
    ensemble.eval()
    held_out = evaluate(ensemble, z[val_rows], blocks[val_rows], target[val_rows])
    log("held out: " + ", ".join(f"{key} {value:.4g}" for key, value in held_out.items()))
    facts = {"trained": {"dataset": str(data), "transitions": int(len(train_rows)), "steps": int(step),
                         "batch_size": settings.batch_size, "lr": settings.lr, "seed": settings.seed,
                         "minutes": round((time.perf_counter() - start) / 60, 2),
                         "held_out_transitions": int(len(val_rows)), "held_out": held_out},
             "action_bounds": action_bounds(actions)}
    return ensemble, facts


@torch.no_grad()
def evaluate(ensemble: LatentEnsemble, z: torch.Tensor, blocks: torch.Tensor, target: torch.Tensor) -> dict:
    """Held-out figures: mean NLL, the mean squared error of the members' mean forecast, and the Spearman rank
    correlation of the uncertainty with that error."""
    from scipy.stats import spearmanr

    means, log_var = ensemble(z, blocks)
    error = ((means.mean(0) - target) ** 2).sum(-1).numpy()
    parts = ensemble.uncertainty(z, blocks).numpy()
    return {"nll": float(gaussian_nll(means, log_var, target.unsqueeze(0)).mean()),
            "squared_error_mean": float(error.mean()),
            "spearman_uncertainty_vs_error": float(spearmanr(parts.sum(1), error).statistic),
            "spearman_disagreement_vs_error": float(spearmanr(parts[:, 0], error).statistic)}
