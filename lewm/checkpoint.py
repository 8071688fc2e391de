"""Model folders: weights.safetensors + config.json (ModelConfig) + README.md (the model card).

Other tools add files to the same folder (ONNX files, probe results) and sections to config.json;
the config keeps unknown sections, so saving over a folder does not lose them. Nothing here unpickles.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lewm.config import ModelConfig
from lewm.model import LeWM
from lewm_errors import UserError

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def save_model_folder(model: LeWM, config: ModelConfig, folder: str | Path, card: str | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    config.save(folder / CONFIG)
    if card is not None:
        (folder / CARD).write_text(card)
    return folder


def load_model_folder(folder: str | Path, device: str | torch.device = "cpu") -> LeWM:
    """The model of a folder written by save_model_folder, in eval mode on `device`; model.config is its config."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}")
    missing = [name for name in (WEIGHTS, CONFIG) if not (folder / name).is_file()]
    if missing:
        raise UserError(f"model folder {folder} lacks {', '.join(missing)}")
    config = ModelConfig.load(folder / CONFIG)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise UserError(f"cannot read {folder / WEIGHTS}: {err}") from None
    model = LeWM(config)
    load_state_strict(model, state, source=f"{folder / WEIGHTS} (with {folder / CONFIG})")
    return model.to(device).eval()


def load_state_strict(model: LeWM, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True), but a mismatch raises a UserError naming the missing, unexpected and
    mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{label}: {_listing(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys]
    if problems:
        raise UserError(f"weights in {source} do not match the model config; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def _listing(keys: list[str], limit: int = 12) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
