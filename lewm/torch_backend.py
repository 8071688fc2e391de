"""The torch implementation of the model interface (lewm.model_interface.WorldModel) on numpy arrays.

It calls LeWM.encode_frames / LeWM.predict_next (and LeWM.rollout), the same methods the ONNX export wraps, so both
backends run one computation; where the model folder has a pixel decoder, decode runs it in torch. Where the model
folder has an uncertainty ensemble (lewm/ensemble/model.py), it also serves uncertainty(z, action_blocks) (UNCERTAINTY),
as the engine does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lewm.checkpoint import load_model_folder
from lewm.model import LeWM
from lewm.model_interface import DECODE, ROLLOUT, UNCERTAINTY


class TorchBackend:
    precision = "fp32"

    def __init__(self, model: LeWM, folder: Path | None = None, decoder=None, ensemble=None):
        """decoder: a lewm.decoder.model.TorchDecoder for decode; ensemble: a lewm.ensemble.model.TorchEnsemble for
        uncertainty
        (None: the model has none)."""
        self.model = model.eval()
        self.folder = folder
        self._decoder = decoder
        self._ensemble = ensemble
        self.capabilities = frozenset({ROLLOUT, *([DECODE] if decoder is not None else []),
                                       *([UNCERTAINTY] if ensemble is not None else [])})
        self.config = model.config
        self.latent_dim = self.config.latent_dim
        self.history = self.config.history
        self.frameskip = self.config.frameskip
        self.image_size = self.config.image_size
        self.device = next(model.parameters()).device
        self.name = f"torch-{self.device.type}"

    @classmethod
    def from_folder(cls, path: str | Path, device: str = "cpu") -> TorchBackend:
        from lewm.decoder.model import TorchDecoder, has_decoder

        from lewm.ensemble.model import TorchEnsemble, has_ensemble, load_ensemble

        decoder = TorchDecoder.from_folder(path) if has_decoder(path) else None
        ensemble = TorchEnsemble(load_ensemble(path)) if has_ensemble(path) else None
        return cls(load_model_folder(path, device=device), folder=Path(path), decoder=decoder, ensemble=ensemble)

    def describe(self) -> str:
        where = f" from {self.folder}" if self.folder else ""
        decoder = ", with a pixel decoder" if self._decoder is not None else ""
        return f"torch {torch.__version__} on {self.device.type} ({torch.get_num_threads()} threads{decoder}){where}"

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

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(N, D) latents -> (N, H, W, 3) uint8 frames, by the model folder's pixel decoder (DECODE)."""
        if self._decoder is None:
            raise ValueError("this model has no pixel decoder (DECODE is not in its capabilities)")
        return self._decoder.decode(z)

    def uncertainty(self, z: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(N, D) latents and (N, A) raw action blocks -> (N, 2): the disagreement and noise of the ensemble's
        forecast of the step (lewm.ensemble.model.UNCERTAINTY_PARTS; UNCERTAINTY)."""
        if self._ensemble is None:
            raise ValueError("this model has no uncertainty ensemble (UNCERTAINTY is not in its capabilities)")
        return self._ensemble.uncertainty(z, action_blocks)
