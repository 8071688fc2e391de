"""Training the pixel decoder (lewm/decoder/model.py) on a frozen model: latents of dataset frames -> the frames.

The encoder never trains: every frame of the dataset is embedded once (eval mode, cached in RUN/latents.npz and
reused while the dataset and the encoder weights are the same), then only the decoder learns, on (latent, frame)
pairs. The last episodes of the dataset (val_fraction of them, at least one) are held out: the log reports the
decoder's PSNR on them. A run folder holds the latest checkpoint (decoder.safetensors + trainer_state.pt), the
settings and a JSON-lines log; resume=True continues from the checkpoint, its time budget counted across resumes.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lewm.decoder.model import DecoderConfig, PixelDecoder, decoder_loss, encoder_sha256
from lewm.decoder.pixels import psnr, to_uint8
from lewm.training.schedule import begin_step, check_budget_and_held_out, warmup_cosine
from lewm_errors import UserError

LATENTS = "latents.npz"
CHECKPOINT = "checkpoint"


@dataclass
class DecoderTrainSettings:
    steps: int = 100_000  # an upper bound: with a time budget, the budget usually ends the run
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    salience_weight: float = 8.0
    edge_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 200
    time_budget_minutes: float | None = None
    val_fraction: float = 0.05  # share of the episodes (the last ones) held out

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise UserError("the decoder's steps, batch size and checkpoint interval must be at least 1")
        check_budget_and_held_out("decoder", self.time_budget_minutes, self.val_fraction)

    def lr_at(self, step: int, elapsed_s: float) -> float:
        return warmup_cosine(self.lr, step, self.warmup, self.steps, elapsed_s, self.time_budget_minutes)


@dataclass
class LatentFrames:
    """Every frame of a dataset with its latent: frames (N, H, W, 3) uint8, z (N, D) float32, and the rows of the
    held-out episodes."""

    frames: np.ndarray
    z: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray


def embed_dataset(model_dir: str | Path, data: str | Path, cache: Path | None, val_fraction: float,
                  batch: int = 256) -> LatentFrames:
    """The dataset's frames and their latents under the model's frozen encoder (from `cache` when it was made from
    the same dataset file and encoder weights)."""
    from lewm.torch_backend import TorchBackend
    from scenes.dataset import EpisodeDataset

    with EpisodeDataset(data) as dataset:
        frames = dataset.load_pixels()
        offsets, lengths = dataset.ep_offset.copy(), dataset.ep_len.copy()
    key = {"dataset": str(Path(data).resolve()), "dataset_bytes": Path(data).stat().st_size,
           "encoder_sha256": encoder_sha256(model_dir)}
    z = _read_cache(cache, key, len(frames))
    if z is None:
        model = TorchBackend.from_folder(model_dir)
        if frames.shape[1] != model.image_size:
            raise UserError(f"{data} holds {frames.shape[1]} px frames but the model expects {model.image_size} px; "
                            f"collect with --image-size {model.image_size}")
        z = np.concatenate([model.encode(frames[i:i + batch])
                            for i in tqdm(range(0, len(frames), batch), desc="embedding frames", unit="batch")])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, z=z, key=json.dumps(key))
    held = max(1, int(round(val_fraction * len(offsets))))
    if held >= len(offsets):
        raise UserError(f"{data} holds {len(offsets)} episode(s): the decoder needs at least 2 (one is held out)")
    val_start = int(offsets[len(offsets) - held])
    rows = np.arange(len(frames))
    return LatentFrames(frames, z.astype(np.float32), rows[:val_start], rows[val_start:])


def _read_cache(cache: Path | None, key: dict, count: int) -> np.ndarray | None:
    if cache is None or not cache.is_file():
        return None
    with np.load(cache) as stored:
        if json.loads(str(stored["key"])) != key or len(stored["z"]) != count:
            return None
        return stored["z"]


def background_frame(frames: np.ndarray, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """Per-pixel median of a sample of frames, in [0, 1]: the static scene (floor, walls, goal)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(frames), min(sample, len(frames)), replace=False)
    return np.median(frames[np.sort(pick)], axis=0).astype(np.float32) / 255.0


def train_decoder(model_dir: str | Path, data: str | Path, run: str | Path, dconfig: DecoderConfig,
                  settings: DecoderTrainSettings, resume: bool = False, log=print) -> tuple[PixelDecoder, dict]:
    """Train (or resume) a decoder for the model folder's frozen encoder; returns it (eval mode) and facts about
    its training (for the model folder's config.json)."""
    run = Path(run)
    checkpoint = run / CHECKPOINT
    if not resume and checkpoint.exists():
        raise UserError(f"{run} already holds a decoder checkpoint: resume it, or train into another run folder")
    if resume and not checkpoint.exists():
        raise UserError(f"nothing to resume in {run}: no checkpoint folder there")
    step, elapsed_before = 0, 0.0
    state = None
    if resume:
        state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
        dconfig = DecoderConfig.from_dict(state["decoder_config"])
        step, elapsed_before = int(state["step"]), float(state["elapsed_s"])

    pairs = embed_dataset(model_dir, data, run / LATENTS, settings.val_fraction)
    if pairs.z.shape[1] != dconfig.latent_dim or pairs.frames.shape[1] != dconfig.image_size:
        raise UserError(f"the decoder is for latent_dim {dconfig.latent_dim} and {dconfig.image_size} px; the model "
                        f"and data give {pairs.z.shape[1]} and {pairs.frames.shape[1]} px")
    frames = torch.from_numpy(pairs.frames)
    z = torch.from_numpy(pairs.z)
    background = torch.from_numpy(background_frame(pairs.frames[pairs.train_rows]))

    torch.manual_seed(settings.seed * 1_000_003 + step)
    rng = np.random.default_rng([settings.seed, step])
    decoder = PixelDecoder(dconfig)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if state is not None:
        decoder.load_state_dict(load_file(str(checkpoint / "decoder.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
    else:
        decoder.standardise_with(z[torch.from_numpy(pairs.train_rows)])
        decoder.start_from(background)
    run.mkdir(parents=True, exist_ok=True)
    (run / "settings.json").write_text(json.dumps({"model": str(model_dir), "dataset": str(data),
                                                   "decoder": dconfig.to_dict(), **asdict(settings)}, indent=2))
    val_rows = pairs.val_rows[np.linspace(0, len(pairs.val_rows) - 1, min(256, len(pairs.val_rows))).astype(int)]
    record: dict = {}
    log_file = open(run / "log.jsonl", "a")
    start = time.perf_counter() - elapsed_before
    bar = tqdm(total=settings.steps, initial=step, desc="train-decoder", unit="step")
    decoder.train()
    try:
        while step < settings.steps:
            elapsed = time.perf_counter() - start
            if not begin_step(optimizer, settings, step, elapsed, log):
                break
            index = torch.from_numpy(rng.choice(pairs.train_rows, settings.batch_size))
            target = frames[index].float() / 255.0
            pred = decoder(z[index], clamp=False)
            loss, parts = decoder_loss(pred, target, background, settings.salience_weight, settings.edge_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step % settings.checkpoint_every == 0:
                record = _checkpoint(run, decoder, optimizer, step, time.perf_counter() - start, loss.item(), parts,
                                     frames, z, val_rows, log_file, log)
    finally:
        bar.close()
    if not record or record["step"] != step:
        record = _checkpoint(run, decoder, optimizer, step, time.perf_counter() - start,
                             loss.item() if step else float("nan"), parts if step else {}, frames, z, val_rows,
                             log_file, log)
    log_file.close()
    facts = {"trained": {"dataset": str(data), "frames": int(len(pairs.train_rows)), "steps": step,
                         "batch_size": settings.batch_size, "minutes": round(record["wall_s"] / 60, 1),
                         "loss": f"salience-weighted (weight {settings.salience_weight}) L1 + 4 x squared error, + "
                                 f"{settings.edge_weight} x L1 of image gradients",
                         "held_out_frames": int(len(val_rows)), "held_out_psnr_db": record["val_psnr_db"]}}
    return decoder.eval(), facts


def _checkpoint(run: Path, decoder: PixelDecoder, optimizer, step: int, elapsed_s: float, loss: float, parts: dict,
                frames: torch.Tensor, z: torch.Tensor, val_rows: np.ndarray, log_file, log) -> dict:
    decoder.eval()
    with torch.no_grad():
        index = torch.from_numpy(val_rows)
        pred = to_uint8(decoder(z[index]).numpy())
    decoder.train()
    record = {"step": step, "wall_s": round(elapsed_s, 1), "loss": loss, **parts,
              "val_psnr_db": float(psnr(pred, frames[index].numpy()).mean())}
    tmp, final, old = run / f"{CHECKPOINT}.tmp", run / CHECKPOINT, run / f"{CHECKPOINT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in decoder.state_dict().items()}, str(tmp / "decoder.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed_s,
                "decoder_config": decoder.config.to_dict()}, tmp / "trainer_state.pt")
    if final.exists():  # swap the whole new folder in: a kill at any moment leaves one complete checkpoint
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()
    log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    return record
