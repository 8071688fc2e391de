"""The torch implementation of the two-call model interface (ARCHITECTURE.md) on numpy arrays.

It calls LeWM.encode_frames / LeWM.predict_next (and LeWM.rollout), the same methods the ONNX export wraps,
so both backends run one computation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lewm.checkpoint import load_model_folder
from lewm.model import LeWM


class TorchBackend:
    def __init__(self, model: LeWM):
        self.model = model.eval()
        self.config = model.config
        self.latent_dim = self.config.latent_dim
        self.history = self.config.history
        self.frameskip = self.config.frameskip
        self.image_size = self.config.image_size
        self.device = next(model.parameters()).device
        self.name = f"torch-{self.device.type}"

    @classmethod
    def from_folder(cls, path: str | Path, device: str = "cpu") -> TorchBackend:
        return cls(load_model_folder(path, device=device))

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, latent_dim) float32."""
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8)).to(self.device)
        return self.model.encode_frames(x).float().cpu().numpy()

    @torch.inference_mode()
    def predict(self, z_window: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(B, T<=history, D) latents and (B, T, A) raw action blocks -> (B, D) float32."""
        z = torch.from_numpy(np.ascontiguousarray(z_window, dtype=np.float32)).to(self.device)
        a = torch.from_numpy(np.ascontiguousarray(action_blocks, dtype=np.float32)).to(self.device)
        return self.model.predict_next(z, a).float().cpu().numpy()

    def fits_rollout(self, context: int, horizon: int) -> bool:
        """Any context of at most history latents and any horizon: torch runs LeWM.rollout as it is."""
        return 1 <= context <= self.history and horizon >= 1

    @torch.inference_mode()
    def rollout(self, z_context: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(B, C, D) latents and (B, C - 1 + H, A) raw action blocks -> (B, H, D): the latent after each block."""
        z = torch.from_numpy(np.ascontiguousarray(z_context, dtype=np.float32)).to(self.device)
        a = torch.from_numpy(np.ascontiguousarray(action_blocks, dtype=np.float32)).to(self.device)
        return self.model.rollout(z, a).float().cpu().numpy()
