"""The names of the ONNX files in a model folder, and the config facts stamped into them.

Shared by the export side (torch) and the runtime side (numpy + onnxruntime): no heavy imports here.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any

from lewm.config import ModelConfig

ENCODER_INPUTS = ["frames"]
ENCODER_OUTPUTS = ["z"]
PREDICTOR_INPUTS = ["z_window", "action_blocks"]
PREDICTOR_OUTPUTS = ["z_next"]
ROLLOUT_INPUTS = ["z_context", "action_blocks"]
ROLLOUT_OUTPUTS = ["z_future"]
DECODER_INPUTS = ["z"]
DECODER_OUTPUTS = ["frames", "frames_uint8"]  # the engine reads the second
ENSEMBLE_INPUTS = ["z", "action_block"]
ENSEMBLE_OUTPUTS = ["uncertainty"]
PRECISIONS = ("fp32", "fp16", "int8")

# metadata_props key holding the JSON of the config the graph was exported from
CONFIG_KEY = "lewm_config"
WEIGHTS_KEY = "lewm_weights_sha256"
# the fields whose values are baked into the graphs: the architecture and the normalisation statistics
BAKED_FIELDS = ("image_size", "patch_size", "enc_width", "enc_depth", "enc_heads", "enc_mlp", "latent_dim",
                "proj_hidden", "action_dim", "frameskip", "history", "act_hidden", "pred_depth", "pred_heads",
                "pred_head_dim", "pred_mlp", "image_mean", "image_std", "action_mean", "action_std")


def onnx_files(folder: str | Path, precision: str = "fp32") -> tuple[Path, Path]:
    """(encoder, predictor) paths for a precision: encoder.onnx, or encoder.int8.onnx / encoder.fp16.onnx."""
    folder, suffix = Path(folder), _suffix(precision)
    return folder / f"encoder{suffix}.onnx", folder / f"predictor{suffix}.onnx"


def _suffix(precision: str) -> str:
    if precision not in PRECISIONS:
        from lewm_errors import UserError
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return "" if precision == "fp32" else f".{precision}"


def rollout_onnx_file(folder: str | Path) -> Path:
    """The planner's fused rollout graph (fp32 only): several predictor steps in one call."""
    return Path(folder) / "rollout.onnx"


def shared_weights_file(folder: str | Path) -> Path:
    """The ONNX external-data file that holds the weights of predictor.onnx and rollout.onnx, each tensor once."""
    return Path(folder) / "predictor.weights"


def ensemble_onnx_file(folder: str | Path) -> Path:
    """The uncertainty ensemble's graph (fp32; its weights are read from ensemble.safetensors)."""
    return Path(folder) / "ensemble.onnx"


def decoder_onnx_file(folder: str | Path, precision: str = "fp32") -> Path:
    """The pixel decoder's graph for a precision: decoder.onnx, or decoder.int8.onnx / decoder.fp16.onnx."""
    return Path(folder) / f"decoder{_suffix(precision)}.onnx"


def remove_reduced_copies(folder: str | Path) -> list[Path]:
    """Delete the int8 / fp16 files of a folder (made from its previous fp32 export, they would be stale after a
    new one); returns those removed."""
    removed = []
    for precision in PRECISIONS[1:]:
        for path in (*onnx_files(folder, precision), decoder_onnx_file(folder, precision)):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def safetensors_problem(path: str | Path) -> str | None:
    """Why a safetensors file cannot be read whole (a truncated or garbled file), or None if it can. numpy only."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():
                handle.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types, and OSError
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def baked_config(config: ModelConfig) -> dict[str, Any]:
    """The part of the config a graph depends on (compared at load with the folder's config.json)."""
    data = config.to_dict()
    return {name: data[name] for name in BAKED_FIELDS}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def quiet_logger(name: str = ""):
    """Raise a logger to ERROR for the block ("" is the root logger): the exporter and the quantiser are chatty."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
