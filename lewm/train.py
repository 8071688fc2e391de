"""Training LeWM end to end from pixels: next-embedding prediction + SIGReg (ARCHITECTURE.md, "The model").

A clip is history + 1 frames taken every `frameskip` env steps and the history action blocks
between them (each block: frameskip raw env actions, concatenated). Every start offset of every
episode is a clip. Actions are z-scored with statistics of the training dataset, stored in the
model's config. A run folder holds the latest checkpoint (model folder + optimiser state) and a
JSON-lines log; `resume=True` continues from it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lewm.checkpoint import load_model_folder, save_model_folder
from lewm.config import ModelConfig
from lewm.model import LeWM
from lewm.sigreg import SIGREG_WEIGHT, lewm_loss, sigreg
from scenes.dataset import EpisodeDataset, action_statistics
from scenes.errors import UserError


@dataclass
class TrainSettings:
    steps: int = 20000
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 1e-3
    warmup: int = 500
    grad_clip: float = 1.0
    sigreg_weight: float = SIGREG_WEIGHT
    seed: int = 0
    checkpoint_every: int = 500
    time_budget_minutes: float | None = None  # stop (with a checkpoint) after this much training wall time
    # "steps": the cosine decay runs over `steps`; "time": over the time budget (for a machine of unknown speed)
    schedule: str = "steps"

    def __post_init__(self) -> None:
        if self.schedule not in ("steps", "time"):
            raise UserError(f"unknown schedule {self.schedule!r}; choose steps or time")
        if self.schedule == "time" and not self.time_budget_minutes:
            raise UserError("the time schedule needs a time budget (--time-budget MINUTES)")


class ClipSampler:
    """All clips of a dataset, held in memory: frames (N, H, W, 3) uint8 and actions (N, 2).

    The frames live on `device` when they fit in its free memory, so a GPU gathers its own batches."""

    def __init__(self, dataset: EpisodeDataset, config: ModelConfig, device: str = "cpu"):
        self.config = config
        fs, h = config.frameskip, config.history
        pixels = torch.from_numpy(dataset.load_pixels())
        if device.startswith("cuda") and pixels.nbytes > 0.7 * torch.cuda.mem_get_info()[0]:
            device = "cpu"  # too big for the GPU: gather on the host, copy each batch over
        self.pixels = pixels.to(device)
        self.action = torch.from_numpy(dataset.action).to(device)
        span = fs * h  # env steps from the first to the last frame of a clip
        starts = []
        for e in range(dataset.num_episodes):
            rows = dataset.rows(e)
            for s in range(rows.start, rows.stop - span):
                # the history action blocks (rows s .. s+span-1) must all be real actions
                if np.all(np.isfinite(dataset.action[s:s + span])):
                    starts.append(s)
        if not starts:
            raise UserError(f"{dataset.path} has no episode longer than {span} env steps: nothing to train on")
        self.starts = np.asarray(starts)
        self.frame_offsets = np.arange(h + 1) * fs
        self.action_offsets = np.arange(span)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips at `index` -> frames (B, history+1, H, W, 3) uint8, action blocks (B, history, A) raw,
        on the sampler's device."""
        s = self.starts[index]
        device = self.pixels.device
        frames = self.pixels[torch.from_numpy(s[:, None] + self.frame_offsets).to(device)]
        actions = self.action[torch.from_numpy(s[:, None] + self.action_offsets).to(device)]
        return frames, actions.reshape(len(s), self.config.history, self.config.action_block_dim)


def lr_at(step: int, s: TrainSettings, elapsed_s: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 10% of the peak, over the remaining steps or,
    with the time schedule, over the time budget (`elapsed_s` = training wall time so far)."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    if s.schedule == "time":
        progress = min(1.0, elapsed_s / (60 * s.time_budget_minutes))
    else:
        progress = min(1.0, (step - s.warmup) / max(1, s.steps - s.warmup))
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def recalibrate_batchnorm(model: LeWM, sampler: ClipSampler, rng: np.random.Generator,
                          batches: int = 20, batch_size: int = 64) -> None:
    """Re-estimate every BatchNorm's running statistics as an exact average over fresh batches.

    The running averages lag an encoder that is still moving fast, and eval-mode latents then drift
    away from the train-mode ones SIGReg shaped; a recalibration pass before each save removes that.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    device = next(model.parameters()).device
    for _ in range(batches):
        frames, blocks = sampler.batch(rng.integers(0, len(sampler), batch_size))
        frames, blocks = frames.to(device), blocks.to(device)
        b, n = frames.shape[:2]
        z = model.encode(model.preprocess_frames(frames.flatten(0, 1))).view(b, n, -1)
        model.predict(z[:, :-1], model.embed_actions(model.normalise_actions(blocks)))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


@torch.no_grad()
def evaluate(model: LeWM, sampler: ClipSampler, index: np.ndarray) -> dict:
    """Eval-mode diagnostics on a fixed set of clips: the prediction error with real, shuffled and
    zero actions (does the predictor use actions?), SIGReg of eval-mode latents, and how far the
    latents sit from the origin compared with their spread (large ratios squeeze cosine distances)."""
    model.eval()
    device = next(model.parameters()).device
    frames, blocks = sampler.batch(index)
    frames, blocks = frames.to(device), blocks.to(device)
    b, n = frames.shape[:2]
    z = model.encode(model.preprocess_frames(frames.flatten(0, 1))).view(b, n, -1)
    target = z[:, -1]
    out = {}
    shuffled = blocks[torch.randperm(b, generator=torch.Generator().manual_seed(0))]
    # the action streams of lewm.stream: real, shuffled across clips, raw zero ("do nothing")
    for name, acts in (("real", blocks), ("shuffled", shuffled), ("zero", torch.zeros_like(blocks))):
        pred = model.predict_next(z[:, :-1], acts)
        out[f"cos_{name}"] = float((1 - torch.nn.functional.cosine_similarity(pred, target, dim=-1)).mean())
    out["cos_copy_last"] = float((1 - torch.nn.functional.cosine_similarity(z[:, -2], target, dim=-1)).mean())
    # SIGReg grows with the batch size, so read it on training-sized batches to compare with the log.
    time_major = z.transpose(0, 1)
    out["eval_sigreg"] = float(np.mean([sigreg(time_major[:, i:i + 64]).item() for i in range(0, b, 64)]))
    flat = z.flatten(0, 1)
    out["mean_norm"] = float(flat.mean(0).norm())
    out["spread"] = float(flat.std(0).mean())
    return out


def _checkpoint(run: Path, model: LeWM, optimizer, step: int, elapsed_s: float, sampler, rng, card: str) -> None:
    recalibrate_batchnorm(model, sampler, rng)
    tmp = run / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_folder(model, model.config, tmp, card=card)
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed_s}, tmp / "trainer_state.pt")
    # Swap the complete new folder in: a kill at any moment leaves one whole checkpoint.
    final, old = run / "checkpoint", run / "checkpoint.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    model.train()


def train(dataset_path: str | Path, run: str | Path, config: ModelConfig, settings: TrainSettings,
          resume: bool = False, init: str | Path | None = None, log=print) -> Path:
    """Train (or resume) and return the run's checkpoint folder (a model folder). `init`: a model folder to
    fine-tune (its weights and action statistics; `config` should be its config)."""
    run = Path(run)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with EpisodeDataset(dataset_path) as dataset:
        if dataset.image_size != config.image_size:
            raise UserError(f"{dataset_path} holds {dataset.image_size} px frames but the model expects "
                            f"{config.image_size} px; collect with --image-size {config.image_size}")
        mean, std = action_statistics(dataset)
        sampler = ClipSampler(dataset, config, device)

    step, elapsed_before = 0, 0.0
    if not resume and (run / "checkpoint").exists():
        raise UserError(f"{run} already holds a checkpoint: pass --resume to continue it, or choose another --run")
    if resume:
        if not (run / "checkpoint").exists():
            raise UserError(f"nothing to resume in {run}: no checkpoint folder there")
        model = load_model_folder(run / "checkpoint", device=device)
        state = torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True, map_location=device)
        step = int(state["step"])
        elapsed_before = float(state.get("elapsed_s", 0.0))
    elif init is not None:
        model = load_model_folder(init, device=device)  # keeps the action statistics it was trained with
    else:
        config.action_mean, config.action_std = [float(v) for v in mean], [float(v) for v in std]
        model = LeWM(config).to(device)
    # Seeded by (seed, step): a resumed run draws fresh batches, deterministically.
    torch.manual_seed(settings.seed * 1_000_003 + step)
    rng = np.random.default_rng([settings.seed, step])
    model.train()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                  fused=device == "cuda")
    if resume:
        optimizer.load_state_dict(state["optimizer"])

    run.mkdir(parents=True, exist_ok=True)
    (run / "settings.json").write_text(json.dumps({"dataset": str(dataset_path), "init": init and str(init),
                                                   **asdict(settings)}, indent=2))
    eval_index = np.random.default_rng(12345).integers(0, len(sampler), 256)
    log_file = open(run / "log.jsonl", "a")
    card = f"Checkpoint of a run trained with `lewm train` on {dataset_path}; see settings.json and log.jsonl.\n"
    start = time.perf_counter() - elapsed_before  # the time budget counts the whole run, across resumes
    bar = tqdm(total=settings.steps, initial=step, desc="train", unit="step")
    try:
        while step < settings.steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, settings, time.perf_counter() - start)
            frames, blocks = sampler.batch(rng.integers(0, len(sampler), settings.batch_size))
            loss, pred_loss, reg = lewm_loss(model, frames.to(device), blocks.to(device), settings.sigreg_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(pred=f"{pred_loss.item():.4f}", sigreg=f"{reg.item():.2f}")
            out_of_time = (settings.time_budget_minutes is not None
                           and time.perf_counter() - start > 60 * settings.time_budget_minutes)
            if step % settings.checkpoint_every == 0 or step == settings.steps or out_of_time:
                elapsed = time.perf_counter() - start  # one reading: the log and the checkpoint agree on it
                _checkpoint(run, model, optimizer, step, elapsed, sampler, rng, card)
                record = {"step": step, "wall_s": round(elapsed, 1),
                          "loss": loss.item(), "pred": pred_loss.item(), "sigreg": reg.item(),
                          **evaluate(model, sampler, eval_index)}
                model.train()
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            if out_of_time:
                log(f"time budget of {settings.time_budget_minutes} min reached at step {step}")
                break
    finally:
        bar.close()
        log_file.close()
    return run / "checkpoint"
