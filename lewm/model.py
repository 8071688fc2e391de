"""LeWM in torch: a ViT encoder, a projector, an action encoder and an AdaLN-zero causal predictor.

Attribute names follow the released checkpoint (ARCHITECTURE.md, "The model"), so its transformers-4.x state dict
loads with strict=True: the ViT parts are named like HuggingFace's ViTModel, the rest like le-wm.
`LeWM.encode_frames` and `LeWM.predict_next` are the computation used everywhere (training probes, the torch
backend, the ONNX export); the other methods are the pieces they are built from.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lewm.config import ModelConfig

VIT_LN_EPS = 1e-12
ADALN_EPS = 1e-6


# ----------------------------------------------------------------------------- ViT encoder (HF ViTModel)

class ViTPatchEmbeddings(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.projection = nn.Conv2d(3, cfg.enc_width, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.projection(pixels).flatten(2).transpose(1, 2)  # (N, patches, W)


class ViTEmbeddings(nn.Module):
    """Patch tokens with a CLS token in front, plus learned positions."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.enc_width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.enc_width))
        self.patch_embeddings = ViTPatchEmbeddings(cfg)

    def forward(self, pixels: Tensor) -> Tensor:
        patches = self.patch_embeddings(pixels)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embeddings


class ViTSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.enc_heads
        self.query = nn.Linear(cfg.enc_width, cfg.enc_width)
        self.key = nn.Linear(cfg.enc_width, cfg.enc_width)
        self.value = nn.Linear(cfg.enc_width, cfg.enc_width)

    def forward(self, x: Tensor) -> Tensor:
        n, t, w = x.shape
        q, k, v = (proj(x).view(n, t, self.heads, w // self.heads).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(n, t, w)


class ViTSelfOutput(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.enc_width, cfg.enc_width)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(x)


class ViTAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention = ViTSelfAttention(cfg)
        self.output = ViTSelfOutput(cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.attention(x))


class ViTIntermediate(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.enc_width, cfg.enc_mlp)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))


class ViTOutput(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.enc_mlp, cfg.enc_width)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(x)


class ViTLayer(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(cfg.enc_width, eps=VIT_LN_EPS)
        self.attention = ViTAttention(cfg)
        self.layernorm_after = nn.LayerNorm(cfg.enc_width, eps=VIT_LN_EPS)
        self.intermediate = ViTIntermediate(cfg)
        self.output = ViTOutput(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output(self.intermediate(self.layernorm_after(x)))


class ViTLayerStack(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layer = nn.ModuleList(ViTLayer(cfg) for _ in range(cfg.enc_depth))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class ViTEncoder(nn.Module):
    """HF ViTModel without pooler; returns the CLS token after the final LayerNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embeddings = ViTEmbeddings(cfg)
        self.encoder = ViTLayerStack(cfg)
        self.layernorm = nn.LayerNorm(cfg.enc_width, eps=VIT_LN_EPS)
        self.apply(_init_vit_weights)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.layernorm(self.encoder(self.embeddings(pixels)))[:, 0]


def _init_vit_weights(module: nn.Module) -> None:
    """HF ViT initialisation: truncated normal 0.02 for weights and embeddings, zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, ViTEmbeddings):
        nn.init.trunc_normal_(module.cls_token, std=0.02)
        nn.init.trunc_normal_(module.position_embeddings, std=0.02)


# ----------------------------------------------------------------------------- projector, action encoder

class Projector(nn.Module):
    """Linear -> BatchNorm1d -> GELU -> Linear on (N, in_dim) rows."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ActionEncoder(nn.Module):
    """(B, T, A) z-scored action blocks -> (B, T, D): a per-token Conv1d(A, A, 1), then an MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        a = cfg.action_block_dim
        self.patch_embed = nn.Conv1d(a, a, kernel_size=1)
        self.embed = nn.Sequential(nn.Linear(a, cfg.act_hidden), nn.SiLU(), nn.Linear(cfg.act_hidden, cfg.latent_dim))

    def forward(self, actions: Tensor) -> Tensor:
        x = self.patch_embed(actions.transpose(1, 2)).transpose(1, 2)
        return self.embed(x)


# ----------------------------------------------------------------------------- predictor

class CausalSelfAttention(nn.Module):
    """Its own affine LayerNorm, then multi-head causal attention (qkv without bias)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, inner = cfg.latent_dim, cfg.pred_heads * cfg.pred_head_dim
        self.heads = cfg.pred_heads
        self.dropout = cfg.dropout
        self.norm = nn.LayerNorm(d)
        self.to_qkv = nn.Linear(d, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, d), nn.Dropout(cfg.dropout))

    def forward(self, x: Tensor, last_only: bool = False) -> Tensor:
        """(B, T, D) -> (B, T, D); with last_only, (B, 1, D): the last position's output alone (it sees every
        position, so it needs no mask)."""
        b, t, _ = x.shape
        q, k, v = (part.view(b, t, self.heads, -1).transpose(1, 2) for part in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        if last_only:
            q, t = q[:, :, -1:], 1
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                             is_causal=not last_only)
        return self.to_out(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.latent_dim
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.pred_mlp), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.pred_mlp, d), nn.Dropout(cfg.dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class AdaLNZeroBlock(nn.Module):
    """Transformer block conditioned on c through shift/scale/gate; the gates start at zero (identity block)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.latent_dim
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=ADALN_EPS)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=ADALN_EPS)
        self.mlp = FeedForward(cfg)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(self, x: Tensor, c: Tensor, last_only: bool = False) -> Tensor:
        """(B, T, D) tokens and conditions -> (B, T, D); with last_only, (B, 1, D): the last position alone (the
        others still give their keys and values)."""
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=-1)
        attended = self.attn(self.norm1(x) * (1 + scale_a) + shift_a, last_only)
        if last_only:
            x, gate_a, shift_m, scale_m, gate_m = (v[:, -1:] for v in (x, gate_a, shift_m, scale_m, gate_m))
        x = x + gate_a * attended
        return x + gate_m * self.mlp(self.norm2(x) * (1 + scale_m) + shift_m)


class ConditionalTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(AdaLNZeroBlock(cfg) for _ in range(cfg.pred_depth))
        self.norm = nn.LayerNorm(cfg.latent_dim)

    def forward(self, x: Tensor, c: Tensor, last_only: bool = False) -> Tensor:
        """(B, T, D) -> (B, T, D), or (B, 1, D) with last_only: the last layer then computes the last position only."""
        for i, layer in enumerate(self.layers):
            x = layer(x, c, last_only and i == len(self.layers) - 1)
        return self.norm(x)


class Predictor(nn.Module):
    """(B, T<=history, D) embeddings, each token conditioned on its action embedding -> (B, T, D)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.history, cfg.latent_dim))  # le-wm's init: std 1
        self.transformer = ConditionalTransformer(cfg)

    def forward(self, z: Tensor, act_emb: Tensor, last_only: bool = False) -> Tensor:
        """(B, T, D) -> (B, T, D), or (B, 1, D) with last_only (the prediction after the last token alone)."""
        return self.transformer(z + self.pos_embedding[:, :z.shape[1]], act_emb, last_only)


# ----------------------------------------------------------------------------- the world model

class LeWM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = ViTEncoder(config)
        self.projector = Projector(config.enc_width, config.proj_hidden, config.latent_dim)
        self.action_encoder = ActionEncoder(config)
        self.predictor = Predictor(config)
        self.pred_proj = Projector(config.latent_dim, config.proj_hidden, config.latent_dim)
        self.register_buffer("image_mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)
        # raw env-action statistics tiled to the block layout [a_0, a_1, ..., a_{frameskip-1}]
        self.register_buffer("action_mean", torch.tensor(config.action_mean).repeat(config.frameskip), persistent=False)
        self.register_buffer("action_std", torch.tensor(config.action_std).repeat(config.frameskip), persistent=False)

    # --- input normalisation
    def preprocess_frames(self, frames_uint8: Tensor) -> Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float, ImageNet-normalised."""
        x = frames_uint8.permute(0, 3, 1, 2).float() / 255.0
        return (x - self.image_mean) / self.image_std

    def normalise_actions(self, action_blocks: Tensor) -> Tensor:
        """Raw (..., A) action blocks -> z-scored with the stored statistics."""
        return (action_blocks.float() - self.action_mean) / self.action_std

    # --- training-time pieces
    def encode(self, pixels: Tensor) -> Tensor:
        """(N, 3, H, W) normalised pixels -> (N, latent_dim)."""
        return self.projector(self.encoder(pixels))

    def embed_actions(self, actions: Tensor) -> Tensor:
        """(B, T, A) z-scored action blocks -> (B, T, latent_dim)."""
        return self.action_encoder(actions)

    def predict(self, z: Tensor, act_emb: Tensor) -> Tensor:
        """(B, T, D) embeddings and action embeddings -> (B, T, D); token t predicts z_{t+1} (causal)."""
        b, t, d = z.shape
        return self.pred_proj(self.predictor(z, act_emb).reshape(b * t, d)).reshape(b, t, d)

    # --- the two inference calls (the interface of ARCHITECTURE.md; exported to ONNX as they are)
    def encode_frames(self, frames_uint8: Tensor) -> Tensor:
        """(N, H, W, 3) uint8 frames -> (N, latent_dim) latents."""
        return self.encode(self.preprocess_frames(frames_uint8))

    def predict_next(self, z_window: Tensor, action_blocks: Tensor) -> Tensor:
        """(B, T<=history, D) latents and (B, T, A) raw action blocks -> (B, D), the prediction after the last.
        The same numbers as predict(...)[:, -1], without the work that only the other positions' outputs need: the
        last layer and the projector run on the last position only (about a tenth of a T = 3 call)."""
        act_emb = self.embed_actions(self.normalise_actions(action_blocks))
        return self.pred_proj(self.predictor(z_window, act_emb, last_only=True)[:, 0])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
