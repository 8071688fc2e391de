"""The model's uncertainty about one predicted step: an ensemble of small predictors on the frozen encoder's latents.

Each of K members is an MLP that takes a latent z_t and the raw action block taken after it and gives a Gaussian over
the next latent z_{t+1}: a mean z_t + delta and one variance shared by the latent's dimensions. The members are trained
on the same transitions from different initial weights and different draws of batches (lewm/ensemble/training.py), so
they agree where the data were dense and disagree where they were thin. For one step (z, block) the ensemble reports, in
the units of the planner's cost (squared L2 in latent space):

- disagreement: the mean over members of |mean_k - mean of the means|^2, the spread of their forecasts (epistemic:
  what more data of this kind would remove);
- noise: the mean over members of D x variance_k, the squared error each member expects of its own forecast
  (aleatoric: how hard this kind of step is to call);

and their sum is the uncertainty. The world model itself is untouched: the ensemble forecasts beside it, and its
figures say where LeWM's own one-step forecast is likely to be wrong (`lewm probe uncertainty` measures how well).

Members see only the newest latent and block (not the history window), so the same estimate serves the planner
(context 1) and the stream. The members' weights are stacked (K, in, out) so that one batched product runs them all.
In a model folder: ensemble.safetensors and the "ensemble" section of config.json (sizes and how it was trained),
written by save_ensemble and read by load_ensemble.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lewm.checkpoint import CONFIG, load_state_strict
from lewm.config import ModelConfig
from lewm_errors import UserError

ENSEMBLE_WEIGHTS = "ensemble.safetensors"
ENSEMBLE_KEY = "ensemble"  # the config.json section
UNCERTAINTY_PARTS = ("disagreement", "noise")  # the columns of uncertainty(); their sum is the uncertainty
LOG_VAR_RANGE = (-12.0, 4.0)  # a member's log variance per latent dimension is held inside this range


@dataclass
class EnsembleConfig:
    latent_dim: int
    block_dim: int  # frameskip x action_dim raw actions per block
    members: int = 5
    hidden: int = 128
    action_mean: list = dataclasses.field(default_factory=list)  # (block_dim,) the model's action statistics,
    action_std: list = dataclasses.field(default_factory=list)  # repeated along the block

    def __post_init__(self) -> None:
        if self.members < 2:
            raise UserError(f"an ensemble needs at least 2 members to disagree, got {self.members}")
        if self.hidden < 1:
            raise UserError(f"the members' hidden width must be at least 1, got {self.hidden}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def for_model(cls, config: ModelConfig, **sizes: Any) -> EnsembleConfig:
        fs = config.frameskip
        return cls(latent_dim=config.latent_dim, block_dim=config.action_block_dim,
                   action_mean=list(np.tile(config.action_mean, fs).astype(float)),
                   action_std=list(np.tile(config.action_std, fs).astype(float)), **sizes)


class LatentEnsemble(nn.Module):
    """K MLPs (z, block) -> (mean of z_next, log variance), stacked: two hidden layers of `hidden` SiLU units."""

    def __init__(self, config: EnsembleConfig):
        super().__init__()
        self.config = config
        k, d, a, h = config.members, config.latent_dim, config.block_dim, config.hidden

        def stacked(fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
            bound = 1.0 / fan_in ** 0.5
            return (nn.Parameter(torch.empty(k, fan_in, fan_out).uniform_(-bound, bound)),
                    nn.Parameter(torch.empty(k, 1, fan_out).uniform_(-bound, bound)))

        self.w0, self.b0 = stacked(d + a, h)
        self.w1, self.b1 = stacked(h, h)
        self.w2, self.b2 = stacked(h, d + 1)
        with torch.no_grad():  # start from "nothing changes" with a moderate variance
            self.w2.mul_(0.1)
            self.b2.zero_()
        self.register_buffer("action_mean", torch.tensor(config.action_mean or [0.0] * a, dtype=torch.float32))
        self.register_buffer("action_std", torch.tensor(config.action_std or [1.0] * a, dtype=torch.float32))

    def forward(self, z: Tensor, blocks: Tensor) -> tuple[Tensor, Tensor]:
        """z (N, D), raw blocks (N, A) -> means (K, N, D) of z_next and log variances (K, N) per dimension. Given
        (K, N, D) and (K, N, A), member k runs on row set k alone (training: each member its own batch)."""
        if z.dim() == 2:
            z, blocks = z.unsqueeze(0), blocks.unsqueeze(0)
        x = torch.cat([z, (blocks - self.action_mean) / self.action_std], dim=-1)
        x = nn.functional.silu(x @ self.w0 + self.b0)
        x = nn.functional.silu(x @ self.w1 + self.b1)
        out = x @ self.w2 + self.b2
        low, high = LOG_VAR_RANGE
        log_var = low + (high - low) * torch.sigmoid(out[..., -1])
        return z + out[..., :-1], log_var

    def uncertainty(self, z: Tensor, blocks: Tensor) -> Tensor:
        """(N, 2): disagreement and noise (UNCERTAINTY_PARTS) of the step from z under the block."""
        means, log_var = self(z, blocks)
        disagreement = ((means - means.mean(0, keepdim=True)) ** 2).sum(-1).mean(0)
        noise = (self.config.latent_dim * torch.exp(log_var)).mean(0)
        return torch.stack([disagreement, noise], dim=-1)


def gaussian_nll(means: Tensor, log_var: Tensor, target: Tensor) -> Tensor:
    """Per member and row: the negative log likelihood (up to a constant) of target (K, N, D) under N(mean, var I)."""
    d = means.shape[-1]
    return 0.5 * (((target - means) ** 2).sum(-1) * torch.exp(-log_var) + d * log_var)


class TorchEnsemble:
    """uncertainty(z (N, D), blocks (N, A)) -> (N, 2) float32 on numpy arrays: the ONNX engine's call, in torch."""

    def __init__(self, ensemble: LatentEnsemble):
        self.ensemble = ensemble.eval()

    @torch.inference_mode()
    def uncertainty(self, z: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
        a = torch.from_numpy(np.ascontiguousarray(blocks, dtype=np.float32))
        return self.ensemble.uncertainty(z, a).numpy()


def total_uncertainty(parts: np.ndarray) -> np.ndarray:
    """The uncertainty of each row of uncertainty()'s (..., 2) parts: their sum."""
    return np.asarray(parts, np.float64).sum(-1)


# ---------------------------------------------------------------------- model folder
def has_ensemble(folder: str | Path) -> bool:
    return (Path(folder) / ENSEMBLE_WEIGHTS).is_file()


def save_ensemble(ensemble: LatentEnsemble, folder: str | Path, facts: dict[str, Any] | None = None) -> Path:
    """Write FOLDER/ensemble.safetensors and the "ensemble" section of FOLDER/config.json (its sizes and `facts`
    about its training). An earlier ensemble's graph is removed (export again)."""
    folder = Path(folder)
    (folder / "ensemble.onnx").unlink(missing_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in ensemble.state_dict().items()}
    save_file(state, str(folder / ENSEMBLE_WEIGHTS), metadata={"format": "pt"})
    config = ModelConfig.load(folder / CONFIG)
    config.extra[ENSEMBLE_KEY] = {"weights": ENSEMBLE_WEIGHTS, **ensemble.config.to_dict(),
                                  "parameters": sum(p.numel() for p in ensemble.parameters()), **(facts or {})}
    config.save(folder / CONFIG)
    return folder / ENSEMBLE_WEIGHTS


def load_ensemble(folder: str | Path) -> LatentEnsemble:
    """The ensemble of a model folder, in eval mode; a UserError when there is none or it does not fit."""
    folder = Path(folder)
    config = ModelConfig.load(folder / CONFIG)
    section = config.extra.get(ENSEMBLE_KEY)
    path = folder / ENSEMBLE_WEIGHTS
    if section is None or not path.is_file():
        raise UserError(f"model folder {folder} has no uncertainty ensemble; train one with "
                        f"`lewm train-ensemble --model {folder} --data DATA.h5`")
    econfig = EnsembleConfig.from_dict(section)
    if (econfig.latent_dim, econfig.block_dim) != (config.latent_dim, config.action_block_dim):
        raise UserError(f"the ensemble in {folder} is for latent_dim {econfig.latent_dim}, action blocks of "
                        f"{econfig.block_dim}, but the model has {config.latent_dim}, {config.action_block_dim}; "
                        f"retrain it")
    ensemble = LatentEnsemble(econfig)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    load_state_strict(ensemble, state, source=f"{path} (with the ensemble section of {folder / CONFIG})")
    return ensemble.eval()

