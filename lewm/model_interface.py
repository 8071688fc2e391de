"""The model interface every part runs a model through, implemented twice: `lewm.torch_backend.TorchBackend` on the
weights and `export.engine.OnnxEngine` on the ONNX files (tests/lewm/test_model_interface.py holds both to it).

Two calls always exist, `encode` and `predict`; the optional ones are declared in `capabilities` and asked for by
name (`DECODE in model.capabilities`), never found by probing for attributes."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lewm.config import ModelConfig

DECODE = "decode"  # decode(z) -> frames: the model folder has a pixel decoder
ROLLOUT = "rollout"  # rollout(z_context, action_blocks) -> latents: predict on a sliding window, one call
UNCERTAINTY = "uncertainty"  # uncertainty(z, action_blocks) -> (N, 2): the ensemble's disagreement and expected error


@runtime_checkable
class WorldModel(Protocol):
    config: ModelConfig
    image_size: int  # frames are (N, image_size, image_size, 3) uint8
    latent_dim: int
    history: int  # the most latents predict takes
    frameskip: int  # env steps per model step: an action block is frameskip raw actions
    name: str  # short: "torch-cpu", "onnxruntime-CPUExecutionProvider"
    precision: str  # "fp32", or the reduced precision of the ONNX files run
    folder: Path | None  # the model folder it was loaded from
    capabilities: frozenset[str]  # which of DECODE, ROLLOUT and UNCERTAINTY it offers

    def describe(self) -> str:
        """One line: what runs the model, and on what."""

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 frames -> (N, latent_dim) float32 latents."""

    def predict(self, z_window: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(B, T <= history, D) latents and (B, T, A) raw action blocks -> (B, D): the next latent."""

    def fits_rollout(self, context: int, horizon: int) -> bool:
        """Whether rollout runs this context and horizon (False without ROLLOUT)."""

    def rollout(self, z_context: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """ROLLOUT: (B, C, D) latents and (B, C - 1 + H, A) raw action blocks -> (B, H, D)."""

    def decode(self, z: np.ndarray) -> np.ndarray:
        """DECODE: (N, D) latents -> (N, H, W, 3) uint8 frames."""

    def uncertainty(self, z: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """UNCERTAINTY: (N, D) latents and (N, A) raw action blocks -> (N, 2): disagreement and expected error of the
        forecast of one step, in squared latent distance."""
