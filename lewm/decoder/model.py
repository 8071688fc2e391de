"""A pixel decoder for a frozen LeWM: one latent (latent_dim) -> one frame (image_size x image_size RGB).

LeWM never predicts pixels; the decoder is trained afterwards on the frozen encoder's latents of dataset frames
(lewm/decoder/training.py) and then turns any latent, including the predictor's forecasts, into a picture of what the
model expects. It never changes the world model.

Architecture ("residual"): the latent standardised with the training latents' per-dimension mean and std (kept
as buffers, so the decoder works at any latent scale); a linear map to a seed_channels x S x S grid (S = image_size /
(2 * patch)); a 3x3 convolution to `width` channels; a 2x2 stride-2 transposed convolution to fine_width channels
at 2S (each seed cell writes its own 2x2 patch); `refine` 3x3 convolutions there; and a patch x patch stride-patch
transposed convolution to RGB at full size (each fine cell paints its own patch x patch block). What it paints is a
residual added to a fixed background, the per-pixel median frame of the training data (a buffer), and the sum is
clamped to [0, 1]: the floor, the walls and the goal T are the same in every frame, so the network spends its
capacity and its training time on the agent and the block only, and it starts from the exact static scene (its
head starts at zero). Why this shape: decoding runs live in the monitor (5 frames per model step on one CPU
thread), where full-size element-wise work costs as much as the convolutions, so almost all the work happens on
the small grids, the upsamplings are non-overlapping transposed convolutions (one matrix product each; ONNX
Runtime's DepthToSpace, the other way to a sub-pixel output, costs more than the convolutions on the CPU), and the
full-size tail is one addition, the clamp and the change to channels last. (The decoder before it painted RGB and
an opacity through a sigmoid and blended them over the background: the same grids, and 1.2 times the time of this
one in ONNX Runtime.)

In a model folder: decoder.safetensors (weights) and the "decoder" section of config.json (sizes and how it was
trained), written by save_decoder and read by load_decoder.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lewm.checkpoint import CONFIG, WEIGHTS, load_state_strict
from lewm.config import ModelConfig
from lewm.decoder.pixels import to_uint8
from lewm_errors import UserError

DECODER_WEIGHTS = "decoder.safetensors"
DECODER_KEY = "decoder"  # the config.json section
ARCHITECTURE = "residual"


@dataclass
class DecoderConfig:
    latent_dim: int
    image_size: int
    architecture: str = ARCHITECTURE
    seed_channels: int = 16  # channels of the linear map's grid
    width: int = 32  # channels of the 3x3 convolution on the seed grid
    fine_width: int = 16  # channels of the doubled grid
    refine: int = 1  # 3x3 convolutions on the doubled grid
    patch: int = 4  # side of the block each doubled-grid cell paints

    def __post_init__(self) -> None:
        if self.architecture != ARCHITECTURE:
            raise UserError(f"this decoder has architecture {self.architecture!r}; this version reads "
                            f"{ARCHITECTURE!r} decoders only: retrain it with `lewm train-decoder`")
        if self.image_size < 2 or self.latent_dim < 1:
            raise UserError(f"decoder needs image_size >= 2 and latent_dim >= 1, got {self.image_size}, "
                            f"{self.latent_dim}")
        if min(self.width, self.seed_channels, self.fine_width, self.patch) < 1 or self.refine < 0:
            raise UserError("decoder widths and patch must be positive, refine at least 0")
        if self.image_size % (2 * self.patch):
            raise UserError(f"the decoder's image size {self.image_size} is not a multiple of 2 x patch "
                            f"({2 * self.patch}): choose a --patch that divides {self.image_size // 2}")

    @property
    def seed_side(self) -> int:
        return self.image_size // (2 * self.patch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderConfig:
        if "architecture" not in data:
            raise UserError("this decoder predates the decoder architectures (no \"architecture\" in its config): "
                            "retrain it with `lewm train-decoder`")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise UserError(f"bad decoder config: {err}") from None

    @classmethod
    def for_model(cls, config: ModelConfig, **sizes: Any) -> DecoderConfig:
        return cls(latent_dim=config.latent_dim, image_size=config.image_size, **sizes)


class PixelDecoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        c, side = config, config.seed_side
        self.register_buffer("z_mean", torch.zeros(c.latent_dim))
        self.register_buffer("z_std", torch.ones(c.latent_dim))
        self.register_buffer("background", torch.ones(3, c.image_size, c.image_size))  # channels first
        self.fc = nn.Linear(c.latent_dim, c.seed_channels * side * side)
        self.body = nn.Conv2d(c.seed_channels, c.width, 3, padding=1)
        self.up = nn.ConvTranspose2d(c.width, c.fine_width, 2, stride=2)
        self.refine = nn.ModuleList(nn.Conv2d(c.fine_width, c.fine_width, 3, padding=1) for _ in range(c.refine))
        self.head = nn.ConvTranspose2d(c.fine_width, 3, c.patch, stride=c.patch)  # the RGB residual

    @torch.no_grad()
    def standardise_with(self, z: Tensor) -> None:
        """Take the per-dimension mean and std of latents z (N, latent_dim) as the input standardisation."""
        self.z_mean.copy_(z.mean(0))
        self.z_std.copy_(z.std(0).clamp_min(1e-6))

    @torch.no_grad()
    def start_from(self, background: Tensor) -> None:
        """Take `background` (H, W, 3) in [0, 1] as the fixed background, and start from painting it exactly (a
        zero residual)."""
        self.background.copy_(background.permute(2, 0, 1))
        self.head.weight.zero_()
        self.head.bias.zero_()

    def forward(self, z: Tensor, clamp: bool = True) -> Tensor:
        """(N, latent_dim) latents -> (N, H, W, 3) frames in [0, 1] (channels last, like the frames encoded).
        clamp=False (training) leaves the sum unclamped, so that a pixel painted past 0 or 1 still gets a gradient."""
        c = self.config
        x = self.fc((z - self.z_mean) / self.z_std).view(-1, c.seed_channels, c.seed_side, c.seed_side)
        x = torch.relu(self.up(torch.relu(self.body(x))))
        for conv in self.refine:
            x = torch.relu(conv(x))
        frames = self.background + self.head(x)
        return (frames.clamp(0.0, 1.0) if clamp else frames).permute(0, 2, 3, 1)


def decoder_loss(pred: Tensor, target: Tensor, background: Tensor, salience_weight: float = 8.0,
                 edge_weight: float = 1.0, squared_weight: float = 4.0) -> tuple[Tensor, dict[str, float]]:
    """Salience-weighted L1 and squared error plus an L1 on the image gradients; pred and target (N, H, W, 3) in
    [0, 1].

    Why not MSE: on PushT about nine pixels in ten are the static background (white floor, walls, the goal T), so
    a plain pixel loss is mostly spent on them, and for a thin structure whose exact place is uncertain (the agent,
    the T's edges) its optimum is a blur. So:
    - L1, whose optimum is a median: a pixel is either agent or floor, not a grey average of both;
    - squared_weight * the squared error, with the same weights: L1 alone traps a fresh decoder in painting the
      background only (where the agent will be is uncertain at first, and the median of "mostly floor" is floor;
      measured: held-out PSNR flat at the background's 24.0 dB for 90 steps), the squared error's mean pulls it
      out; once positions are right, L1 and the edge term dominate the sharpness;
    - each pixel weighted by 1 + salience_weight * |target - background| (largest channel; `background` is the
      per-pixel median frame of the training data), normalised to mean 1: the pixels of the moving agent and
      block, a few percent of the frame, get a share of the loss like their share of what matters;
    - edge_weight * L1 between the horizontal and vertical finite differences of pred and target: a soft edge
      costs directly, so edges stay as sharp as the latent allows.
    Returns the loss and its parts (floats, for the log)."""
    weight = 1.0 + salience_weight * (target - background).abs().amax(-1, keepdim=True)
    weight = weight / weight.mean()
    pixel = (weight * (pred - target).abs()).mean()
    squared = (weight * (pred - target) ** 2).mean()
    edge = ((pred.diff(dim=1) - target.diff(dim=1)).abs().mean() + (pred.diff(dim=2) - target.diff(dim=2)).abs().mean())
    loss = pixel + squared_weight * squared + edge_weight * edge
    return loss, {"pixel_l1": float(pixel.detach()), "squared": float(squared.detach()),
                  "edge_l1": float(edge.detach())}


class TorchDecoder:
    """decode(z (N, latent_dim)) -> (N, H, W, 3) uint8 frames on numpy arrays: the ONNX engine's third call, in
    torch (for the probes' torch backend)."""

    def __init__(self, decoder: PixelDecoder):
        self.decoder = decoder.eval()

    @classmethod
    def from_folder(cls, folder: str | Path) -> TorchDecoder:
        return cls(load_decoder(folder))

    @torch.inference_mode()
    def decode(self, z: np.ndarray) -> np.ndarray:
        return to_uint8(self.decoder(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))).numpy())


# ---------------------------------------------------------------------- model folder
def has_decoder(folder: str | Path) -> bool:
    return (Path(folder) / DECODER_WEIGHTS).is_file()


def save_decoder(decoder: PixelDecoder, folder: str | Path, facts: dict[str, Any] | None = None) -> Path:
    """Write FOLDER/decoder.safetensors and the "decoder" section of FOLDER/config.json (its sizes, the hash of the
    encoder weights it was trained on, and `facts` about its training). Other sections are kept; the ONNX graphs
    of an earlier decoder are removed (export again)."""
    folder = Path(folder)
    for stale in folder.glob("decoder*.onnx"):  # graphs of an earlier decoder
        stale.unlink()
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    save_file(state, str(folder / DECODER_WEIGHTS), metadata={"format": "pt"})
    config = ModelConfig.load(folder / CONFIG)
    config.extra[DECODER_KEY] = {"weights": DECODER_WEIGHTS, **decoder.config.to_dict(),
                                 "parameters": sum(p.numel() for p in decoder.parameters()),
                                 "encoder_weights_sha256": encoder_sha256(folder), **(facts or {})}
    config.save(folder / CONFIG)
    return folder / DECODER_WEIGHTS


def load_decoder(folder: str | Path, device: str | torch.device = "cpu") -> PixelDecoder:
    """The decoder of a model folder, in eval mode; a UserError when there is none or it does not fit."""
    folder = Path(folder)
    config = ModelConfig.load(folder / CONFIG)
    section = config.extra.get(DECODER_KEY)
    path = folder / DECODER_WEIGHTS
    if section is None or not path.is_file():
        raise UserError(f"model folder {folder} has no decoder; train one with "
                        f"`lewm train-decoder --model {folder} --data DATA.h5`")
    dconfig = DecoderConfig.from_dict(section)
    if (dconfig.latent_dim, dconfig.image_size) != (config.latent_dim, config.image_size):
        raise UserError(f"the decoder in {folder} is for latent_dim {dconfig.latent_dim}, image_size "
                        f"{dconfig.image_size}, but the model has {config.latent_dim}, {config.image_size}; retrain it")
    decoder = PixelDecoder(dconfig)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    load_state_strict(decoder, state, source=f"{path} (with the decoder section of {folder / CONFIG})")
    return decoder.to(device).eval()


def decoder_matches_encoder(folder: str | Path) -> bool:
    """Whether the folder's decoder was trained on its current encoder weights (False after a retrain)."""
    folder = Path(folder)
    section = ModelConfig.load(folder / CONFIG).extra.get(DECODER_KEY, {})
    return section.get("encoder_weights_sha256") == encoder_sha256(folder)


def encoder_sha256(folder: str | Path) -> str:
    """SHA-256 of the folder's weights.safetensors (the weights the decoder's latents come from)."""
    return hashlib.sha256((Path(folder) / WEIGHTS).read_bytes()).hexdigest()
