"""SIGReg and the LeWM training loss (ARCHITECTURE.md, "The model").

SIGReg pushes the batch of embeddings towards an isotropic Gaussian: along random 1-D directions it compares
the empirical characteristic function with the Gaussian's (the Epps-Pulley statistic).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lewm.model import LeWM

SIGREG_WEIGHT = 0.09


def sigreg(z: Tensor, num_proj: int = 1024, knots: int = 17, t_max: float = 3.0) -> Tensor:
    """Epps-Pulley statistic of z (N, D) or (T, N, D) on fresh random projections, times N, averaged over T and
    projections. An isotropic Gaussian batch scores about 1; a collapsed batch of N rows about N / 2.5."""
    if z.dim() == 2:
        z = z.unsqueeze(0)
    z = z.float()
    t = torch.linspace(0, t_max, knots, device=z.device)
    phi = torch.exp(-t.square() / 2)
    dt = t_max / (knots - 1)
    weights = torch.full((knots,), 2 * dt, device=z.device)
    weights[[0, -1]] = dt
    weights = weights * phi
    directions = torch.randn(z.shape[-1], num_proj, device=z.device)
    directions = directions / directions.norm(dim=0)
    x = (z @ directions).unsqueeze(-1) * t  # (T, N, P, K)
    err = (x.cos().mean(dim=-3) - phi).square() + x.sin().mean(dim=-3).square()  # (T, P, K)
    return ((err @ weights) * z.shape[-2]).mean()


def lewm_loss(model: LeWM, frames: Tensor, action_blocks: Tensor,
              sigreg_weight: float = SIGREG_WEIGHT) -> tuple[Tensor, Tensor, Tensor]:
    """frames (B, T+1, H, W, 3) uint8 and raw action blocks (B, >=T, A), T <= history -> (total, pred, sigreg).

    Action rows that are NaN (past an episode's end) become 0 after z-scoring, i.e. the mean action."""
    b, n = frames.shape[:2]
    t = n - 1
    if not 1 <= t <= model.config.history:
        raise ValueError(f"need 2..{model.config.history + 1} frames per clip, got {n}")
    emb = model.encode(model.preprocess_frames(frames.flatten(0, 1))).view(b, n, -1)
    actions = torch.nan_to_num(model.normalise_actions(action_blocks[:, :t]), nan=0.0)
    pred = model.predict(emb[:, :t], model.embed_actions(actions))
    pred_loss = F.mse_loss(pred, emb[:, 1:])
    reg = sigreg(emb.transpose(0, 1))
    return pred_loss + sigreg_weight * reg, pred_loss, reg
