"""Training LeWM end to end from pixels: next-embedding prediction + SIGReg (ARCHITECTURE.md, "The model").

A clip is history + 1 frames taken every `frameskip` env steps and the history action blocks
between them (each block: frameskip raw env actions, concatenated). Every start offset of every
episode is a clip. Actions are z-scored with statistics of the training dataset, stored in the
model's config. A run folder holds the latest checkpoint (model folder + optimiser state) and a
JSON-lines log; `resume=True` continues from it.

Under torchrun the same call trains data-parallel (DistributedDataParallel, lewm/training/distributed.py): the batch
size, step count, learning-rate schedule and time budget are those of the whole run; each step draws one global batch,
the same on every rank, and each rank trains on its own slice of it, so a run's clips do not depend on how many
processes share it. Rank 0 alone writes the run folder and the progress bar.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import multiprocessing
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lewm.checkpoint import load_model_folder, save_model_folder
from lewm.decoder.model import DecoderConfig, PixelDecoder, has_decoder, load_decoder, save_decoder
from lewm.decoder.training import background_frame
from lewm.config import ModelConfig
from lewm.training.distributed import (Ranks, array_fingerprint, from_rank_zero, is_lost_rank_error, mean_over_ranks,
                              require_same_on_all_ranks)
from lewm.training.global_batchnorm import use_global_batchnorm
from lewm.model import LeWM
from lewm.sigreg import SIGREG_WEIGHT, LeWMObjective, sigreg
from scenes.dataset import EpisodeDataset, action_statistics
from lewm_errors import UserError
from scenes.render import draw_states


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
    recalibration_batches: int = 20  # batches of 64 clips that re-estimate the BatchNorm statistics at a checkpoint
    time_budget_minutes: float | None = None  # stop (with a checkpoint) after this much training wall time
    # "steps": the cosine decay runs over `steps`; "time": over the time budget (for a machine of unknown speed)
    schedule: str = "steps"
    # "bf16": the forward pass under bfloat16 autocast (weights, optimiser and losses stay float32)
    precision: str = "fp32"
    # k > 1 adds prediction passes that feed the previous pass's predictions back, up to k steps (sigreg.lewm_loss)
    rollout_steps: int = 1
    # > 0: a pixel decoder trained with the model paints each frame back from its latent, this weight times its
    # error in the loss (sigreg.lewm_loss); the checkpoint carries the decoder
    reconstruction_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in ("steps", "time"):
            raise UserError(f"unknown schedule {self.schedule!r}; choose steps or time")
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"unknown precision {self.precision!r}; choose fp32 or bf16")
        if self.rollout_steps < 1:
            raise UserError(f"rollout_steps must be at least 1, got {self.rollout_steps}")
        if self.schedule == "time" and not self.time_budget_minutes:
            raise UserError("the time schedule needs a time budget (time_budget_minutes)")
        if not self.reconstruction_weight >= 0:
            raise UserError(f"reconstruction_weight must be 0 or more, got {self.reconstruction_weight}")


class ClipSampler:
    """All clips of a dataset: frames (N, H, W, 3) uint8 and actions (N, 2).

    Stored frames are held in memory, on `device` when they fit in its free memory, so a GPU gathers its own
    batches. A dataset without pixels keeps its states and draws each batch's frames when it is asked for them
    (scenes.render.draw_states; about 0.5 ms a frame at 128 px, overlapped with the training step by
    BatchPrefetcher), or, with hold_drawn, draws every frame once with every core and holds them like stored ones:
    the default on a GPU where they fit in 70% of its free memory (1.2 M frames at 128 px take 59 GB), whose
    steps are too quick for a per-batch drawing to keep up."""

    def __init__(self, dataset: EpisodeDataset, config: ModelConfig, device: str = "cpu",
                 hold_drawn: bool | None = None):
        self.config = config
        fs, h = config.frameskip, config.history
        self.states = dataset.state if dataset.drawn else None
        if dataset.drawn and hold_drawn is None:
            frame_bytes = len(dataset.state) * 3 * config.image_size ** 2
            hold_drawn = device.startswith("cuda") and frame_bytes < 0.7 * torch.cuda.mem_get_info()[0]
        if dataset.drawn and hold_drawn:
            self.pixels = draw_all(dataset.state, config.image_size, device)
        elif dataset.drawn:
            self.pixels = None
        else:
            pixels = torch.from_numpy(dataset.load_pixels())
            if device.startswith("cuda") and pixels.nbytes > 0.7 * torch.cuda.mem_get_info()[0]:
                device = "cpu"  # too big for the GPU: gather on the host, copy each batch over
            self.pixels = pixels.to(device)
        self.device = device
        self.action = torch.from_numpy(dataset.action).to(device)
        span = fs * h  # env steps from the first to the last frame of a clip
        # a clip starts at row s when rows s .. s+span (its frames) lie in one episode and the history action
        # blocks, rows s .. s+span-1, are all real actions (an episode's last action is NaN)
        bad = np.concatenate([[0], np.cumsum(~np.all(np.isfinite(dataset.action), axis=1))])
        episodes = [dataset.rows(e) for e in range(dataset.num_episodes)]
        starts = np.concatenate([np.arange(r.start, r.stop - span) for r in episodes] or [np.zeros(0, np.int64)])
        starts = starts.astype(np.int64)
        starts = starts[bad[starts + span] == bad[starts]]
        if not len(starts):
            raise UserError(f"{dataset.path} has no episode longer than {span} env steps: nothing to train on")
        self.starts = starts
        self.frame_offsets = np.arange(h + 1) * fs
        self.action_offsets = np.arange(span)

    def __len__(self) -> int:
        return len(self.starts)

    def fingerprint(self) -> str:
        """A hash of the clips (their starts and actions, and some 64 frames spread over the dataset), to check
        that every rank trains on the same data."""
        if self.pixels is None:
            return array_fingerprint(self.starts, self.action.cpu().numpy(), self.states)
        stride = max(1, len(self.pixels) // 64)
        return array_fingerprint(self.starts, self.action.cpu().numpy(), self.pixels[::stride].cpu().numpy())

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips at `index` -> frames (B, history+1, H, W, 3) uint8, action blocks (B, history, A) raw,
        on the sampler's device."""
        s = self.starts[index]
        device = self.device
        rows = s[:, None] + self.frame_offsets
        if self.pixels is None:
            frames = torch.from_numpy(draw_states(self.states[rows], self.config.image_size)).to(device)
        else:
            frames = self.pixels[torch.from_numpy(rows).to(device)]
        actions = self.action[torch.from_numpy(s[:, None] + self.action_offsets).to(device)]
        return frames, actions.reshape(len(s), self.config.history, self.config.action_block_dim)


def draw_all(states: np.ndarray, size: int, device: str, chunk: int = 2048) -> torch.Tensor:
    """Every state's frame (N, size, size, 3) uint8 on `device`, drawn by a process per core, a chunk at a time
    (the host holds one chunk per process, not the whole set)."""
    frames = torch.empty((len(states), size, size, 3), dtype=torch.uint8, device=device)
    starts = range(0, len(states), chunk)
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        drawn = pool.imap(functools.partial(draw_states, size=size), (states[s:s + chunk] for s in starts))
        for start, part in zip(starts, tqdm(drawn, total=len(starts), desc="drawing frames", unit="chunk")):
            frames[start:start + len(part)] = torch.from_numpy(part)
    return frames


class BatchPrefetcher:
    """The next training batch, made on a worker thread while the current step computes (drawing frames and
    gathering clips release the GIL for most of their time, as torch's kernels do). Batches come in the order
    their indices were drawn, so a run is the same with or without it."""

    def __init__(self, sampler: ClipSampler):
        self.sampler = sampler
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="batches")
        self.pending: Future | None = None

    def next(self, index_now: np.ndarray, index_next: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of index_now (made ahead if it was asked for as index_next last time); starts index_next's."""
        batch = self.pending.result() if self.pending is not None else self.sampler.batch(index_now)
        self.pending = self.pool.submit(self.sampler.batch, index_next)
        return batch

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


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


def rank_slice(index: np.ndarray, ranks: Ranks) -> np.ndarray:
    """This rank's share of a global batch of clip indices (the batch splits evenly over the ranks)."""
    share = len(index) // ranks.world_size
    return index[ranks.rank * share:(ranks.rank + 1) * share]


@torch.no_grad()
def recalibrate_batchnorm(model: LeWM, sampler: ClipSampler, rng: np.random.Generator,
                          batches: int = 20, batch_size: int = 64, ranks: Ranks = Ranks()) -> None:
    """Re-estimate every BatchNorm's running statistics as an exact average over fresh batches.

    The running averages lag an encoder that is still moving fast, and eval-mode latents then drift
    away from the train-mode ones SIGReg shaped; a recalibration pass before each save removes that.
    In data-parallel training every rank takes part, each with its slice of the same global batches.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    device = next(model.parameters()).device
    per_rank = -(-batch_size // ranks.world_size)
    for _ in range(batches):
        frames, blocks = sampler.batch(rank_slice(rng.integers(0, len(sampler), per_rank * ranks.world_size), ranks))
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


def _save_checkpoint(run: Path, model: LeWM, decoder: PixelDecoder | None, optimizer, step: int, elapsed_s: float,
                     card: str) -> None:
    tmp = run / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_folder(model, model.config, tmp, card=card)
    if decoder is not None:
        save_decoder(decoder, tmp, facts={"trained": "with the model, its reconstruction term (lewm train "
                                                    "--reconstruction-weight)"})
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed_s}, tmp / "trainer_state.pt")
    # Swap the complete new folder in: a kill at any moment leaves one whole checkpoint (a kill between the two
    # renames leaves it as checkpoint.old, which _recover_checkpoint puts back).
    final, old = run / "checkpoint", run / "checkpoint.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _reconstruction_decoder(model: LeWM, sampler: ClipSampler, settings: TrainSettings, source: Path | None,
                            device: str) -> PixelDecoder | None:
    """The decoder of the reconstruction term, or None without one: the one of `source` (the checkpoint resumed or
    the folder fine-tuned) where it has one, else a new one whose background is the median of 2,048 training
    frames (the same draw on every rank)."""
    if settings.reconstruction_weight == 0:
        return None
    if source is not None and has_decoder(source):
        return load_decoder(source, device=device).train()
    decoder = PixelDecoder(DecoderConfig.for_model(model.config)).to(device)
    frames, _ = sampler.batch(np.random.default_rng(settings.seed).integers(0, len(sampler), 512))
    decoder.start_from(torch.from_numpy(background_frame(frames.flatten(0, 1).cpu().numpy())).to(device))
    return decoder


def _recover_checkpoint(run: Path) -> None:
    """Put back the previous checkpoint when a run was killed between the two renames of a checkpoint swap."""
    final, old = run / "checkpoint", run / "checkpoint.old"
    if old.is_dir() and not final.exists():
        try:
            os.replace(old, final)
        except FileNotFoundError:
            pass  # another rank of the same run put it back first


def _torch_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def train(dataset_path: str | Path, run: str | Path, config: ModelConfig, settings: TrainSettings,
          resume: bool = False, init: str | Path | None = None, log=print) -> Path:
    """Train (or resume) and return the run's checkpoint folder (a model folder). `init`: a model folder to
    fine-tune (its weights and action statistics; `config` should be its config). Started by torchrun, every
    rank calls this with the same arguments."""
    run = Path(run)
    ranks = Ranks.from_environment()
    if settings.batch_size % ranks.world_size:
        raise UserError(f"a batch of {settings.batch_size} clips does not split evenly over {ranks.world_size} "
                        f"processes: make the batch size a multiple of {ranks.world_size}")
    if settings.rollout_steps > config.history:
        raise UserError(f"a {settings.rollout_steps}-step rollout loss needs clips of that many predictions, but the "
                        f"model's history is {config.history}: use --rollout-steps {config.history} or less")
    device = ranks.device()
    with EpisodeDataset(dataset_path, config.image_size) as dataset:
        mean, std = action_statistics(dataset)
        sampler = ClipSampler(dataset, config, device)

    _recover_checkpoint(run)
    if not resume and (run / "checkpoint").exists():
        raise UserError(f"{run} already holds a checkpoint: resume it, or train into another run folder")
    if resume and not (run / "checkpoint").exists():
        raise UserError(f"nothing to resume in {run}: no checkpoint folder there")
    started = ranks.start(device)
    try:
        return _train(run, sampler, config, settings, ranks, device, resume, init, (mean, std), dataset_path, log)
    except Exception as err:
        if not is_lost_rank_error(err):
            raise
        reason = str(err).strip().splitlines()[0][:300]
        raise UserError(f"rank {ranks.rank} lost contact with the other training processes (one died, was stopped "
                        f"or is unreachable: {reason}); the run stops. The last checkpoint, {run / 'checkpoint'}, "
                        f"is whole: continue from it with --resume") from None
    finally:
        if started:
            dist.destroy_process_group()


def _train(run: Path, sampler: ClipSampler, config: ModelConfig, settings: TrainSettings, ranks: Ranks,
           device: str, resume: bool, init, action_stats, dataset_path, log) -> Path:
    step, elapsed_before = 0, 0.0
    if resume:
        state = torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True, map_location=device)
        step = int(state["step"])
        elapsed_before = float(state.get("elapsed_s", 0.0))
    # The initial weights (DDP copies rank 0's to the others), then dropout: each rank its own masks.
    torch.manual_seed(_torch_seed(settings.seed, step, ranks.rank))
    if resume:
        model = load_model_folder(run / "checkpoint", device=device)
    elif init is not None:
        model = load_model_folder(init, device=device)  # keeps the action statistics it was trained with
    else:
        config.action_mean, config.action_std = [float(v) for v in action_stats[0]], [float(v) for v in action_stats[1]]
        model = LeWM(config).to(device)
    require_same_on_all_ranks("datasets", sampler.fingerprint(), "give every process the same dataset file (--data)")
    require_same_on_all_ranks("training settings", [asdict(settings), model.config.to_dict(), step],
                              "start every process with the same options, and on several machines keep the run "
                              "folder on a shared filesystem so that --resume finds the same checkpoint")
    # Seeded by (seed, step): a resumed run draws fresh batches, deterministically; every rank draws the same.
    rng = np.random.default_rng([settings.seed, step])
    model.train()
    decoder = _reconstruction_decoder(model, sampler, settings, run / "checkpoint" if resume else init, device)
    objective = LeWMObjective(model, settings.sigreg_weight, settings.rollout_steps, decoder,
                              settings.reconstruction_weight)
    if ranks.world_size > 1:
        use_global_batchnorm(model)
        # The BatchNorm buffers agree on every rank already (global statistics): no need to send them each step.
        objective = DistributedDataParallel(objective, device_ids=[ranks.local_rank] if device != "cpu" else None,
                                            forward_sync_buffers=False)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    optimizer = torch.optim.AdamW(objective.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                  fused=device.startswith("cuda"))
    if resume:
        optimizer.load_state_dict(state["optimizer"])

    if ranks.is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "settings.json").write_text(json.dumps({"dataset": str(dataset_path), "init": init and str(init),
                                                       "processes": ranks.world_size, **asdict(settings)}, indent=2))
        log_file = open(run / "log.jsonl", "a")
    eval_index = np.random.default_rng(12345).integers(0, len(sampler), 256)
    card = f"Checkpoint of a run trained with `lewm train` on {dataset_path}; see settings.json and log.jsonl.\n"
    start = time.perf_counter() - elapsed_before  # the time budget counts the whole run, across resumes
    # a time-budgeted run's bar counts the budget's minutes (its step count is only a ceiling)
    timed = settings.time_budget_minutes is not None and settings.schedule == "time"
    bar = (tqdm(total=round(settings.time_budget_minutes, 1), initial=round(elapsed_before / 60, 1), desc="train",
                unit="min", bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} min{postfix}", disable=not ranks.is_main)
           if timed else tqdm(total=settings.steps, initial=step, desc="train", unit="step", disable=not ranks.is_main))
    autocast = (torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if settings.precision == "bf16"
                else contextlib.nullcontext())
    batches = BatchPrefetcher(sampler)

    def draw_index() -> np.ndarray:
        return rank_slice(rng.integers(0, len(sampler), settings.batch_size), ranks)

    index_next = draw_index()
    try:
        while step < settings.steps:
            # rank 0's clock, so that every rank uses one learning rate and stops at one step
            elapsed = from_rank_zero(time.perf_counter() - start, device)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, settings, elapsed)
            index, index_next = index_next, draw_index()
            frames, blocks = batches.next(index, index_next)
            directions = torch.Generator(device).manual_seed(settings.seed * 1_000_003 + step)
            with autocast:
                loss, pred_loss, reg, reconstruction = objective(frames.to(device), blocks.to(device), directions)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(objective.parameters(), settings.grad_clip)
            optimizer.step()
            step += 1
            elapsed = from_rank_zero(time.perf_counter() - start, device)  # one reading: log and checkpoint agree
            bar.update(min(elapsed / 60, bar.total) - bar.n if timed else 1)
            bar.set_postfix(**({"step": step} if timed else {}), pred=f"{pred_loss.item():.4f}",
                            sigreg=f"{reg.item():.2f}")
            out_of_time = settings.time_budget_minutes is not None and elapsed > 60 * settings.time_budget_minutes
            if step % settings.checkpoint_every == 0 or step == settings.steps or out_of_time:
                recalibrate_batchnorm(model, sampler, rng, settings.recalibration_batches, ranks=ranks)
                total, pred = mean_over_ranks([loss.item(), pred_loss.item()], device)  # the global batch's
                if ranks.is_main:
                    _save_checkpoint(run, model, decoder, optimizer, step, elapsed, card)
                    record = {"step": step, "wall_s": round(elapsed, 1), "loss": total, "pred": pred,
                              "sigreg": reg.item(), **evaluate(model, sampler, eval_index)}
                    if reconstruction is not None:
                        record["reconstruction"] = reconstruction.item()
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
                model.train()
            if out_of_time:
                if ranks.is_main:
                    log(f"time budget of {settings.time_budget_minutes} min reached at step {step}")
                break
    finally:
        batches.close()
        bar.close()
        if ranks.is_main:
            log_file.close()
    return run / "checkpoint"
