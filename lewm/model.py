"""LeWM in torch: a ViT encoder, a projector, an action encoder and an AdaLN-zero causal predictor.

Attribute names follow the released checkpoint (ARCHITECTURE.md, "The model"), so its transformers-4.x state dict
loads with strict=True: the ViT parts are named like HuggingFace's ViTModel, the rest like le-wm.
`LeWM.encode_frames` and `LeWM.predict_next` are the computation used everywhere (training probes, the torch
backend, the ONNX export); the other methods are the pieces they are built from.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lewm.config import ModelConfig

VIT_LN_EPS = 1e-12
ADALN_EPS = 1e-6


# ----------------------------------------------------------------------------- ViT encoder (HF ViTModel)

def strided_convolutions(widths: list[int]) -> nn.Sequential:
    """RGB -> widths[-1] channels by one stride-2 3x3 convolution per width (GroupNorm, GELU after each)."""
    channels = [3] + widths
    return nn.Sequential(*(layer for c_in, c_out in zip(channels, channels[1:]) for layer in (
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.GroupNorm(math.gcd(8, c_out), c_out),
        nn.GELU())))

class ViTPatchEmbeddings(nn.Module):
    """Pixels -> one token per patch. The "patch" stem (the ViT's) is one strided convolution of patch size; the
    "conv" stem (Xiao et al. 2021, "Early convolutions help transformers see better") reaches the same grid by
    log2(patch) stride-2 3x3 convolutions (GroupNorm, GELU; widths doubling up to enc_width), then a 1x1
    projection: edges and corners are seen at full resolution before the pixels are pooled into a token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.stem == "conv":
            stages = cfg.patch_size.bit_length() - 1
            self.stem = strided_convolutions([cfg.enc_width >> (stages - i) for i in range(1, stages + 1)])
            self.projection = nn.Conv2d(cfg.enc_width, cfg.enc_width, 1)
        else:
            self.stem = nn.Identity()
            self.projection = nn.Conv2d(3, cfg.enc_width, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.projection(self.stem(pixels)).flatten(2).transpose(1, 2)  # (N, patches, W)


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


class ConvEncoder(nn.Module):
    """The "cnn" encoder: no transformer. log2(patch_size) stride-2 3x3 convolutions (widths 32, 64, ... up to
    enc_width) bring the frame to a grid of patch_size-pixel cells, which is flattened (so each cell keeps its place)
    and projected to enc_width, then LayerNorm. It reads the agent sooner and forecasts better than the conv-stem ViT
    at the same cost (BENCHMARKS.md, "Design runs: a convolutional encoder, SIGReg's weight ...")."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        stages = cfg.patch_size.bit_length() - 1
        self.trunk = strided_convolutions([min(cfg.enc_width, 32 << i) for i in range(stages)])
        cells = cfg.num_patches * cfg.enc_width
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cells, cfg.enc_width), nn.LayerNorm(cfg.enc_width))

    def forward(self, pixels: Tensor) -> Tensor:
        return self.head(self.trunk(pixels))


def spatial_soft_argmax(maps: Tensor, grid_xy: Tensor) -> Tensor:
    """(N, K, cells) map scores -> (N, K, 2): each map's softmax over the cells, as weights on the cells' (x, y)."""
    return torch.softmax(maps, dim=-1) @ grid_xy


class KeypointEncoder(nn.Module):
    """The "keypoints" encoder: the cnn encoder's stride-2 convolutions down to a grid of patch_size-pixel cells, one
    more 3x3 convolution there, then a spatial soft-argmax (Levine, Finn et al. 2016, "End-to-end training of deep
    visuomotor policies"): a 1x1 convolution makes enc_width / 2 maps, each turned into the expected (x, y) in
    [-1, 1] of what it responds to. Positions reach the latent as coordinates, and the T's angle as differences of
    coordinates on a rigid body (proportional to its cos and sin), both linear reads, where a flattened grid leaves
    them to be untangled. The keypoints and the grid's mean features (what is there, wherever it is) are projected to
    enc_width, then LayerNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        stages = cfg.patch_size.bit_length() - 1
        widths = [min(cfg.enc_width, 32 << i) for i in range(stages)]
        c = widths[-1]
        self.trunk = nn.Sequential(strided_convolutions(widths), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                   nn.GroupNorm(math.gcd(8, c), c), nn.GELU())
        self.keypoint_maps = nn.Conv2d(c, cfg.enc_width // 2, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))  # sharpens the maps' softmax as it grows
        grid = cfg.image_size // cfg.patch_size
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2 - 1
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("grid_xy", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)
        self.head = nn.Sequential(nn.Linear(cfg.enc_width + c, cfg.enc_width), nn.LayerNorm(cfg.enc_width))

    def keypoints(self, features: Tensor) -> Tensor:
        """The trunk's features (N, C, G, G) -> (N, K, 2): where each of the K maps finds what it responds to."""
        maps = self.keypoint_maps(features).flatten(2) * self.log_temperature.exp()  # (N, K, G * G)
        return spatial_soft_argmax(maps, self.grid_xy)

    def forward(self, pixels: Tensor) -> Tensor:
        features = self.trunk(pixels)
        return self.head(torch.cat([self.keypoints(features).flatten(1), features.mean(dim=(2, 3))], dim=1))


ENCODERS = {"vit": ViTEncoder, "cnn": ConvEncoder, "keypoints": KeypointEncoder}  # ModelConfig.encoder's choices


def _init_vit_weights(module: nn.Module) -> None:
    """HF ViT initialisation: truncated normal 0.02 for weights and embeddings, zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, ViTEmbeddings):
        nn.init.trunc_normal_(module.cls_token, std=0.02)
        nn.init.trunc_normal_(module.position_embeddings, std=0.02)


# ----------------------------------------------------------------------------- projector, action encoder

class Projector(nn.Module):
    """Linear -> BatchNorm1d -> GELU -> Linear on (N, in_dim) rows."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(),
                                 nn.Linear(hidden, out_dim))

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

    def forward(self, x: Tensor, last_only: bool = False, cache: KVCache | None = None) -> Tensor:
        """(B, T, D) -> (B, T, D); with last_only, (B, 1, D): the last position's output alone (it sees every
        position, so it needs no mask). With a cache, x holds the positions after those whose keys and values the
        cache holds (either all of a window, or one new position), and the cache keeps the new ones too."""
        b, t, _ = x.shape
        qkv = self.to_qkv(self.norm(x)).chunk(3, dim=-1)
        q, k, v = (part.view(b, t, self.heads, -1).transpose(1, 2) for part in qkv)
        one_query = last_only or (cache is not None and cache.keys is not None)  # it sees every key: no mask
        if cache is not None:
            k, v = cache.extend(k, v)
        if last_only:
            q, t = q[:, :, -1:], 1
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                             is_causal=not one_query)
        return self.to_out(out.transpose(1, 2).reshape(b, t, -1))


class KVCache:
    """The keys and values of the positions one attention layer has seen so far in a rollout: a window that only
    grows (positions keep their place) lets each step compute its one new position alone."""

    def __init__(self):
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions' (B, heads, n, head_dim) keys and values; return all of them."""
        if self.keys is not None:
            if k.shape[2] != 1:
                raise ValueError("after the first call, a cached attention takes one new position at a time")
            k, v = torch.cat([self.keys, k], dim=2), torch.cat([self.values, v], dim=2)
        self.keys, self.values = k, v
        return k, v


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
        return self.modulated(x, self.adaLN_modulation(c), last_only)

    def modulated(self, x: Tensor, modulation: Tensor, last_only: bool = False, cache: KVCache | None = None) -> Tensor:
        """forward, given the conditions' (B, T, 6D) modulation (a rollout computes each action's once)."""
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation.chunk(6, dim=-1)
        attended = self.attn(self.norm1(x) * (1 + scale_a) + shift_a, last_only, cache)
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
        return self.modulated(x, self.modulations(c), last_only)

    def modulations(self, c: Tensor) -> list[Tensor]:
        """Each layer's (B, T, 6D) modulation of the conditions c (B, T, D)."""
        return [layer.adaLN_modulation(c) for layer in self.layers]

    def modulated(self, x: Tensor, modulations: list[Tensor], last_only: bool = False,
                  caches: list[KVCache] | None = None) -> Tensor:
        """forward, given the modulations; with caches (one per layer), x holds only positions after the cached."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer.modulated(x, modulations[i], last_only and i == last, None if caches is None else caches[i])
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
        self.encoder = ENCODERS[config.encoder](config)
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

    def rollout(self, z_context: Tensor, action_blocks: Tensor) -> Tensor:
        """(B, C<=history, D) latents and (B, C - 1 + H, A) raw action blocks (the C - 1 taken between the latents,
        then H to take) -> (B, H, D), the latent predicted after each of the H blocks.

        The same numbers as H predict_next calls on a window of the newest `history` latents, real then predicted,
        with less work: each block's modulations are computed once, and while the window grows (positions keep
        their place) a step computes its one new position alone, the earlier ones' keys and values cached."""
        transformer, positions, history = self.predictor.transformer, self.predictor.pos_embedding, self.config.history
        modulations = transformer.modulations(self.embed_actions(self.normalise_actions(action_blocks)))
        caches: list[KVCache] | None = [KVCache() for _ in transformer.layers]
        window = new = z_context  # the latents the next prediction sees; `new`: those the caches have not seen
        first = 0  # the index of the window's first position among the action blocks
        predictions = []
        for _ in range(action_blocks.shape[1] - z_context.shape[1] + 1):
            t, n = window.shape[1], new.shape[1]
            step = [m[:, first + t - n:first + t] for m in modulations]
            z_next = self.pred_proj(transformer.modulated(new + positions[:, t - n:t], step, True, caches)[:, 0])
            predictions.append(z_next)
            if t < history:  # the window grows: only the new position is left to compute
                window, new = torch.cat([window, z_next[:, None]], dim=1), z_next[:, None]
            else:  # it slides: every position moves, so the whole window is computed again
                window = new = torch.cat([window[:, 1:], z_next[:, None]], dim=1)
                first, caches = first + 1, None
        return torch.stack(predictions, dim=1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
