"""SIGReg and the LeWM training loss (ARCHITECTURE.md, "The model").

SIGReg pushes the batch of embeddings towards an isotropic Gaussian: along random 1-D directions it compares
the empirical characteristic function with the Gaussian's (the Epps-Pulley statistic). In data-parallel training
it is computed on the global batch: every rank's embeddings, gathered with their gradients, along directions that
every rank draws alike from a generator seeded by the step.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.decoder.model import PixelDecoder, decoder_loss
from lewm.training.distributed import gather_batch
from lewm.model import LeWM

SIGREG_WEIGHT = 0.09


def sigreg(z: Tensor, num_proj: int = 1024, knots: int = 17, t_max: float = 3.0,
           generator: torch.Generator | None = None) -> Tensor:
    """Epps-Pulley statistic of z (N, D) or (T, N, D) on random projections, times N, averaged over T and
    projections. An isotropic Gaussian batch scores about 1; a collapsed batch of N rows about N / 2.5.
    The directions come from `generator` (on its device), else from the global RNG."""
    if z.dim() == 2:
        z = z.unsqueeze(0)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()  # half-precision batches: the statistic needs float32 (float64 stays float64)
    # and so do its projections and their cos / sin, which autocast would otherwise compute in bfloat16
    with torch.autocast(z.device.type, enabled=False):
        t = torch.linspace(0, t_max, knots, device=z.device, dtype=z.dtype)
        phi = torch.exp(-t.square() / 2)
        dt = t_max / (knots - 1)
        weights = torch.full((knots,), 2 * dt, device=z.device, dtype=z.dtype)
        weights[[0, -1]] = dt
        weights = weights * phi
        device = generator.device if generator is not None else z.device
        directions = torch.randn(z.shape[-1], num_proj, device=device, generator=generator, dtype=torch.float32)
        directions = directions.to(z.device, z.dtype)
        directions = directions / directions.norm(dim=0)
        x = (z @ directions).unsqueeze(-1) * t  # (T, N, P, K)
        err = (x.cos().mean(dim=-3) - phi).square() + x.sin().mean(dim=-3).square()  # (T, P, K)
        return ((err @ weights) * z.shape[-2]).mean()


class Loss(NamedTuple):
    total: Tensor
    pred: Tensor
    sigreg: Tensor
    reconstruction: Tensor | None  # None without a decoder


def lewm_loss(model: LeWM, frames: Tensor, action_blocks: Tensor, sigreg_weight: float = SIGREG_WEIGHT,
              generator: torch.Generator | None = None, rollout_steps: int = 1, decoder: PixelDecoder | None = None,
              reconstruction_weight: float = 0.0) -> Loss:
    """frames (B, T+1, H, W, 3) uint8 and raw action blocks (B, >=T, A), T <= history -> the loss and its parts.

    rollout_steps k > 1 adds passes that feed predictions back: pass j (2..k) sees the window [z_0, pass j-1's
    outputs for z_1 .. z_{T-1}], so its output at position j-1 predicts z_j from z_0 by j steps of the model's own
    predictions, as a rollout does; its outputs from position j-1 on are scored, and pred is the mean of the passes'
    errors (multi-step losses make a model that a planner's rollouts cannot exploit as easily).

    Action rows that are NaN (past an episode's end) become 0 after z-scoring, i.e. the mean action.
    In a process group, pred is this rank's mean (DDP averages the gradients over the ranks) and SIGReg is that
    of all ranks' embeddings together, so the averaged gradient is that of one process holding every rank's clips.
    `generator` draws SIGReg's directions (give every rank the same one).

    With a `decoder`, every frame is also painted back from its latent (decoder.decoder_loss, against the decoder's
    background) and reconstruction_weight times that error joins the total: a pixel term that makes the latent
    keep what the pixels show (the block's angle among it) where prediction and SIGReg alone leave it out."""
    b, n = frames.shape[:2]
    t = n - 1
    if not 1 <= t <= model.config.history:
        raise ValueError(f"need 2..{model.config.history + 1} frames per clip, got {n}")
    emb = model.encode(model.preprocess_frames(frames.flatten(0, 1))).view(b, n, -1)
    actions = torch.nan_to_num(model.normalise_actions(action_blocks[:, :t]), nan=0.0)
    act_emb = model.embed_actions(actions)
    pred = model.predict(emb[:, :t], act_emb)
    pred_loss = F.mse_loss(pred.float(), emb[:, 1:].float())
    passes, fed_back = [pred_loss], pred
    for j in range(2, min(rollout_steps, t) + 1):
        fed_back = model.predict(torch.cat([emb[:, :1], fed_back[:, :t - 1]], dim=1), act_emb)
        passes.append(F.mse_loss(fed_back[:, j - 1:].float(), emb[:, j:].float()))
    pred_loss = sum(passes) / len(passes)
    reg = sigreg(gather_batch(emb).transpose(0, 1), generator=generator)
    total, reconstruction = pred_loss + sigreg_weight * reg, None
    if decoder is not None:
        painted = decoder(emb.flatten(0, 1).float(), clamp=False)
        reconstruction, _ = decoder_loss(painted, frames.flatten(0, 1).float() / 255.0,
                                         decoder.background.permute(1, 2, 0))
        total = total + reconstruction_weight * reconstruction
    return Loss(total, pred_loss, reg, reconstruction)


class LeWMObjective(nn.Module):
    """lewm_loss as a module's forward, the form DistributedDataParallel wraps (it syncs the gradients of what
    its forward computes)."""

    def __init__(self, model: LeWM, sigreg_weight: float = SIGREG_WEIGHT, rollout_steps: int = 1,
                 decoder: PixelDecoder | None = None, reconstruction_weight: float = 0.0):
        super().__init__()
        self.model = model
        self.decoder = decoder  # a submodule: DistributedDataParallel syncs its gradients too
        self.sigreg_weight = sigreg_weight
        self.rollout_steps = rollout_steps
        self.reconstruction_weight = reconstruction_weight

    def forward(self, frames: Tensor, action_blocks: Tensor, generator: torch.Generator | None = None) -> Loss:
        return lewm_loss(self.model, frames, action_blocks, self.sigreg_weight, generator, self.rollout_steps,
                         self.decoder, self.reconstruction_weight)
