"""Every size and statistic needed to build and run a LeWM, as one dataclass stored as JSON.

No torch here: the monitor and the ONNX runtime read model folders' config.json through this file.
The defaults are the paper's released PushT configuration (ARCHITECTURE.md, "The model"); PRESETS holds
smaller variants for CPU training and tests.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lewm_errors import UserError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# Published statistics of the official PushT dataset's raw env actions (per action dimension).
PUSHT_ACTION_MEAN = [-0.0078, 0.0069]
PUSHT_ACTION_STD = [0.2085, 0.2068]


@dataclass
class ModelConfig:
    # encoder: "vit" (the paper's), "cnn" (convolutions only, model.py's ConvEncoder) or "keypoints" (convolutions and
    # a spatial soft-argmax, model.py's KeypointEncoder); for both of ours enc_depth, enc_heads and enc_mlp are unused
    # and patch_size is the size of the last grid's cells
    encoder: str = "vit"
    image_size: int = 224
    patch_size: int = 14
    stem: str = "patch"  # "patch": the ViT's one strided convolution; "conv": stride-2 3x3 convolutions (model.py)
    enc_width: int = 192
    enc_depth: int = 12
    enc_heads: int = 3
    enc_mlp: int = 768
    # projector (and pred_proj): enc_width -> proj_hidden -> latent_dim
    latent_dim: int = 192
    proj_hidden: int = 2048
    # actions: one model step = frameskip env steps of action_dim each
    action_dim: int = 2
    frameskip: int = 5
    history: int = 3
    act_hidden: int = 768
    # predictor
    pred_depth: int = 6
    pred_heads: int = 16
    pred_head_dim: int = 64
    pred_mlp: int = 2048
    dropout: float = 0.1
    # input statistics
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    action_mean: list[float] = field(default_factory=lambda: [0.0, 0.0])
    action_std: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # keys written by other tools (e.g. an "onnx" section): kept as they are through load/save
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise UserError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.stem not in ("patch", "conv"):
            raise UserError(f"unknown stem {self.stem!r}; choose patch or conv")
        if self.encoder not in ("vit", "cnn", "keypoints"):
            raise UserError(f"unknown encoder {self.encoder!r}; choose vit, cnn or keypoints")
        if self.encoder != "vit" and (self.patch_size & (self.patch_size - 1) or self.patch_size < 2):
            raise UserError(f"the {self.encoder} encoder halves the image log2(patch_size) times: patch_size must be a "
                            f"power of two (got {self.patch_size})")
        if self.stem == "conv" and (self.patch_size & (self.patch_size - 1) or self.patch_size < 2
                                    or self.enc_width % self.patch_size):
            raise UserError(f"the conv stem halves the image log2(patch_size) times and doubles its width up to "
                            f"enc_width: patch_size must be a power of two (got {self.patch_size}) and enc_width a "
                            f"multiple of it (got {self.enc_width})")
        if self.enc_width % self.enc_heads:
            raise UserError(f"enc_width {self.enc_width} is not a multiple of enc_heads {self.enc_heads}")
        for name in ("image_mean", "image_std"):
            if len(getattr(self, name)) != 3:
                raise UserError(f"{name} must have 3 values (RGB), got {getattr(self, name)}")
        for name in ("action_mean", "action_std"):
            if len(getattr(self, name)) != self.action_dim:
                raise UserError(f"{name} must have action_dim={self.action_dim} values, got {getattr(self, name)}")
        if min(self.action_std) <= 0:
            raise UserError(f"action_std must be positive, got {self.action_std}")

    @property
    def action_block_dim(self) -> int:
        """Width of one model-step action block: frameskip env actions, concatenated in time order."""
        return self.frameskip * self.action_dim

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict[str, Any]:
        """Known fields first, then the extra keys at top level (as they were in the file)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out = json.loads(json.dumps(out))  # deep copy of the lists
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        try:
            return cls(**known, extra=extra)
        except TypeError as err:
            raise UserError(f"bad model config: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(read_json_object(path, "model config"))


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON file holding an object, or a UserError naming what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return data


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": dict(image_size=64, patch_size=8, enc_width=128, enc_depth=4, enc_heads=4, enc_mlp=512,
                  latent_dim=128, proj_hidden=512, pred_depth=4, pred_heads=4, pred_head_dim=32, pred_mlp=512,
                  act_hidden=256, history=3, frameskip=5),
    "tiny": dict(image_size=32, patch_size=8, enc_width=32, enc_depth=2, enc_heads=2, enc_mlp=64,
                 latent_dim=32, proj_hidden=64, pred_depth=2, pred_heads=2, pred_head_dim=16, pred_mlp=64,
                 act_hidden=32),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset's config with some fields replaced, e.g. preset("small", history=4)."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
