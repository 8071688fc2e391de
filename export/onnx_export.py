"""Model folder -> encoder.onnx + predictor.onnx (+ rollout.onnx), checked against torch before they are kept.

The graphs wrap exactly LeWM.encode_frames and LeWM.predict_next (the two inference calls), so the uint8 -> [0,1]
-> mean/std normalisation of frames sits inside the encoder graph and the z-scoring of raw action blocks inside the
predictor graph; resizing frames to image_size is the caller's job. Batch is dynamic in both; the predictor's window
length T is dynamic from 1 to history. The encoder is one self-contained file.

rollout.onnx wraps LeWM.rollout for the planner's default context and horizon (1 real latent, 5 blocks): a CEM
iteration's whole rollout in one call, with the work a loop of predictor calls repeats left out. It is made of the
predictor's weights, so predictor.onnx and rollout.onnx keep them in one shared file, predictor.weights (ONNX
external data; export/shared_weights.py).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.files import (CONFIG_KEY, ENCODER_INPUTS, ENCODER_OUTPUTS, PREDICTOR_INPUTS, PREDICTOR_OUTPUTS,
                          ROLLOUT_INPUTS, ROLLOUT_OUTPUTS, WEIGHTS_KEY, baked_config, onnx_files, quiet_logger,
                          remove_reduced_copies, rollout_onnx_file, sha256_file, shared_weights_file)
from export.decoder_onnx import export_decoder, reduce_decoder
from export.ensemble_onnx import export_ensemble
from export.shared_weights import share_weights
from lewm.checkpoint import CONFIG, WEIGHTS, load_model_folder, save_model_folder
from lewm.config import PUSHT_ACTION_MEAN, PUSHT_ACTION_STD, ModelConfig, preset
from lewm.decoder.model import has_decoder
from lewm.ensemble.model import has_ensemble
from lewm.model import LeWM
from lewm.planning.planner import PlannerSettings

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
EXAMPLE_BATCH = 2  # not 1: an example batch of 1 lets the exporter specialise the batch dimension
MAX_BATCH = 1 << 16


class ParityError(RuntimeError):
    """ONNX Runtime and torch disagree on the exported graphs beyond the tolerance."""


# One module per inference method: the exporters trace a module's forward, and dynamo matches dynamic_shapes to the
# names of its arguments.
class _EncodeFrames(torch.nn.Module):
    def __init__(self, model: LeWM):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(frames)


class _PredictNext(torch.nn.Module):
    def __init__(self, model: LeWM):
        super().__init__()
        self.model = model

    def forward(self, z_window: torch.Tensor, action_blocks: torch.Tensor) -> torch.Tensor:
        return self.model.predict_next(z_window, action_blocks)


class _Rollout(torch.nn.Module):
    def __init__(self, model: LeWM):
        super().__init__()
        self.model = model

    def forward(self, z_context: torch.Tensor, action_blocks: torch.Tensor) -> torch.Tensor:
        return self.model.rollout(z_context, action_blocks)


def export_model_folder(folder: str | Path, opset: int = 18, verify: bool = True, int8: bool = False) -> dict[str, Any]:
    """Write FOLDER/encoder.onnx and FOLDER/predictor.onnx, verify them against torch (ParityError and no files
    if they disagree by more than 1e-4), record an "onnx" section in FOLDER/config.json; return that section.
    A folder with a pixel decoder also gets decoder.onnx, verified the same way (export/decoder_onnx.py), and one with
    an uncertainty ensemble ensemble.onnx (export/ensemble_onnx.py).
    int8=True also writes the dynamically quantised encoder.int8.onnx / predictor.int8.onnx (and decoder.int8.onnx).
    The int8 / fp16 files of an earlier export are removed (made from the graphs this export replaces)."""
    folder = Path(folder)
    model = load_model_folder(folder)
    config = model.config
    enc_path, pred_path = onnx_files(folder)
    roll_path, shared = rollout_onnx_file(folder), shared_weights_file(folder)
    written = (enc_path, pred_path, roll_path, shared)
    for path in written:
        path.unlink(missing_ok=True)
    remove_reduced_copies(folder)  # made from the previous graphs: remade below (int8) or by the command (fp16)
    with torch.no_grad():
        exporter = _export_graphs(model, enc_path, pred_path, roll_path, opset)
    for path in (enc_path, pred_path, roll_path):
        _stamp(path, config, folder)
    sharing = share_weights([pred_path, roll_path], shared)

    section: dict[str, Any] = {
        "encoder": enc_path.name,
        "predictor": pred_path.name,
        "rollout": {"file": roll_path.name, "context": ROLLOUT.context, "horizon": ROLLOUT.horizon},
        "shared_weights": {"file": shared.name, "graphs": [pred_path.name, roll_path.name], **sharing},
        "opset": opset,
        "exporter": exporter,
        "inputs": {"encoder": {"frames": "uint8 (N, H, W, 3), H = W = image_size"},
                   "predictor": {"z_window": "float32 (B, T, latent_dim), 1 <= T <= history",
                                 "action_blocks": "float32 (B, T, frameskip * action_dim), raw env actions"},
                   "rollout": {"z_context": "float32 (B, context, latent_dim)",
                               "action_blocks": "float32 (B, context - 1 + horizon, frameskip * action_dim), raw: "
                                                "those taken between the context latents, then those to take"}},
        "outputs": {"encoder": {"z": "float32 (N, latent_dim)"}, "predictor": {"z_next": "float32 (B, latent_dim)"},
                    "rollout": {"z_future": "float32 (B, horizon, latent_dim), the latent after each block"}},
        "image_normalisation": "inside encoder graph (uint8 / 255, then image_mean / image_std); no resizing",
        "action_normalisation": "inside predictor graph",
        "weights_sha256": sha256_file(folder / WEIGHTS),
    }
    if verify:
        try:
            section["verification"] = verify_parity(folder, model)
        except ParityError:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    config.extra["onnx"] = section
    config.save(folder / CONFIG)
    decoder = has_decoder(folder)
    if decoder:
        export_decoder(folder, opset=opset, verify=verify)
    if has_ensemble(folder):
        export_ensemble(folder, opset=opset, verify=verify)
    if int8:
        from export.quantize import quantize_model_folder
        section = quantize_model_folder(folder)
        if decoder:
            reduce_decoder(folder, "int8")
    return section


def _export_graphs(model: LeWM, enc_path: Path, pred_path: Path, roll_path: Path, opset: int) -> str:
    """Export with the dynamo exporter; fall back to the legacy TorchScript exporter if dynamo fails. The rollout
    graph goes the other way round (_export_rollout)."""
    try:
        _export_dynamo(model, enc_path, pred_path, opset)
        exporter = f"torch.onnx dynamo (torch {torch.__version__})"
    except Exception as err:  # the exporter raises many kinds; any of them means: try the other one
        warnings.warn(f"dynamo ONNX export failed ({type(err).__name__}: {err}); using the legacy exporter")
        for path in (enc_path, pred_path):
            path.unlink(missing_ok=True)
        _export_legacy(model, enc_path, pred_path, opset)
        exporter = f"torch.onnx legacy TorchScript (torch {torch.__version__})"
    return f"{exporter}; rollout: {_export_rollout(model, roll_path, opset)}"


def _export_rollout(model: LeWM, path: Path, opset: int) -> str:
    """rollout.onnx by the TorchScript exporter, or by dynamo if that fails. TorchScript first, as the rollout's loop
    of predictor steps is unrolled into the graph: on the tiny model TorchScript took 0.7 s and dynamo 12 s (which
    made the test suite's exports three times slower), and its graph planned 5-10% faster (BENCHMARKS.md)."""
    _, _, _, z_context, plan = _examples(model.config)
    module = _Rollout(model).eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (z_context, plan), str(path), dynamo=False, opset_version=opset,
                              input_names=ROLLOUT_INPUTS, output_names=ROLLOUT_OUTPUTS,
                              dynamic_axes={name: {0: "batch"} for name in ROLLOUT_INPUTS + ROLLOUT_OUTPUTS})
        return f"torch.onnx legacy TorchScript (torch {torch.__version__})"
    except Exception as err:  # as above: any failure means try the other exporter
        warnings.warn(f"TorchScript ONNX export of the rollout failed ({type(err).__name__}: {err}); using dynamo")
        path.unlink(missing_ok=True)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    _dynamo_export(module, (z_context, plan), path, ROLLOUT_INPUTS, ROLLOUT_OUTPUTS,
                   {name: {0: batch} for name in ROLLOUT_INPUTS}, opset)
    return f"torch.onnx dynamo (torch {torch.__version__})"


ROLLOUT = PlannerSettings()  # the rollout graph is made for the planner's default context and horizon


def _examples(config: ModelConfig) -> tuple[torch.Tensor, ...]:
    b, t, s = EXAMPLE_BATCH, config.history, config.image_size
    frames = torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8)
    z = torch.randn(b, t, config.latent_dim)
    actions = torch.randn(b, t, config.action_block_dim)
    z_context = torch.randn(b, ROLLOUT.context, config.latent_dim)
    plan = torch.randn(b, ROLLOUT.context - 1 + ROLLOUT.horizon, config.action_block_dim)
    return frames, z, actions, z_context, plan


def _export_dynamo(model: LeWM, enc_path: Path, pred_path: Path, opset: int) -> None:
    config = model.config
    frames, z, actions, _, _ = _examples(config)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    steps = torch.export.Dim("T", min=1, max=config.history) if config.history > 1 else None
    window_dims = {0: batch, 1: steps} if steps is not None else {0: batch}
    _dynamo_export(_EncodeFrames(model).eval(), (frames,), enc_path, ENCODER_INPUTS, ENCODER_OUTPUTS,
                   {"frames": {0: batch}}, opset)
    _dynamo_export(_PredictNext(model).eval(), (z, actions), pred_path, PREDICTOR_INPUTS,
                   PREDICTOR_OUTPUTS, {"z_window": window_dims, "action_blocks": window_dims}, opset)


def _dynamo_export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                   dynamic: dict, opset: int) -> None:
    """One graph by the dynamo exporter, into one file (no external data), its chatter kept for the error only."""
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=True, external_data=False, opset_version=opset,
                          input_names=inputs, output_names=outputs, dynamic_shapes=dynamic, verbose=False)
    if not path.is_file():
        raise RuntimeError(f"the exporter wrote no {path.name}; its output:\n{chatter.getvalue()}")


def _export_legacy(model: LeWM, enc_path: Path, pred_path: Path, opset: int) -> None:
    frames, z, actions, _, _ = _examples(model.config)
    torch.onnx.export(_EncodeFrames(model).eval(), (frames,), str(enc_path), dynamo=False,
                      opset_version=opset, input_names=ENCODER_INPUTS, output_names=ENCODER_OUTPUTS,
                      dynamic_axes={"frames": {0: "batch"}, "z": {0: "batch"}})
    torch.onnx.export(_PredictNext(model).eval(), (z, actions), str(pred_path), dynamo=False,
                      opset_version=opset, input_names=PREDICTOR_INPUTS, output_names=PREDICTOR_OUTPUTS,
                      dynamic_axes={"z_window": {0: "batch", 1: "T"}, "action_blocks": {0: "batch", 1: "T"},
                                    "z_next": {0: "batch"}})


def stamp_onnx_file(path: Path, config: ModelConfig, weights_sha256: str | None) -> None:
    """Write the baked config (and the weights' hash) into the file's metadata_props, read back at load."""
    import json

    import onnx

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[CONFIG_KEY] = json.dumps(baked_config(config))
    if weights_sha256:
        props[WEIGHTS_KEY] = weights_sha256
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = proto.producer_name or "lewm export"
    onnx.save(proto, str(path))


def _stamp(path: Path, config: ModelConfig, folder: Path) -> None:
    stamp_onnx_file(path, config, sha256_file(folder / WEIGHTS))


def verify_parity(folder: str | Path, model: LeWM | None = None, tolerance: float = TOLERANCE,
                  seed: int = 0) -> dict[str, Any]:
    """Max |ORT - torch| over random uint8 frames, random latents and raw actions ~ N(mean, std), for
    T = 1..history and batch 1 and 3, and for the rollout graph where there is one. Raises ParityError beyond
    `tolerance`; returns the differences."""
    from export.engine import OnnxEngine
    from lewm.torch_backend import TorchBackend

    folder = Path(folder)
    torch_side = TorchBackend(model if model is not None else load_model_folder(folder))
    onnx_side = OnnxEngine.from_folder(folder, providers=["CPUExecutionProvider"])
    config = torch_side.config
    rng = np.random.default_rng(seed)
    mean = np.tile(np.asarray(config.action_mean, np.float32), config.frameskip)
    std = np.tile(np.asarray(config.action_std, np.float32), config.frameskip)
    encoder_diff, predictor_diff, rollout_diff, per_t = 0.0, 0.0, 0.0, {}
    fused = onnx_side.rollout_shape
    for batch in (1, 3):
        frames = rng.integers(0, 256, (batch, config.image_size, config.image_size, 3), dtype=np.uint8)
        encoder_diff = max(encoder_diff, _max_diff(onnx_side.encode(frames), torch_side.encode(frames)))
        for t in range(1, config.history + 1):
            z = rng.standard_normal((batch, t, config.latent_dim)).astype(np.float32)
            actions = (mean + std * rng.standard_normal((batch, t, config.action_block_dim))).astype(np.float32)
            diff = _max_diff(onnx_side.predict(z, actions), torch_side.predict(z, actions))
            per_t[str(t)] = max(per_t.get(str(t), 0.0), diff)
            predictor_diff = max(predictor_diff, diff)
        if fused is not None:
            context, horizon = fused
            z = rng.standard_normal((batch, context, config.latent_dim)).astype(np.float32)
            shape = (batch, context - 1 + horizon, config.action_block_dim)
            actions = (mean + std * rng.standard_normal(shape)).astype(np.float32)
            rollout_diff = max(rollout_diff, _max_diff(onnx_side.rollout(z, actions), torch_side.rollout(z, actions)))
    result = {"encoder_max_abs_diff": encoder_diff, "predictor_max_abs_diff": predictor_diff,
              "predictor_max_abs_diff_by_T": per_t, "batches": [1, 3], "tolerance": tolerance}
    if fused is not None:
        result["rollout_max_abs_diff"] = rollout_diff
    if not (encoder_diff <= tolerance and predictor_diff <= tolerance and rollout_diff <= tolerance):  # and NaN
        raise ParityError(f"ONNX Runtime and torch disagree on {folder}: encoder max |diff| {encoder_diff:.3g}, "
                          f"predictor max |diff| {predictor_diff:.3g} (by T: {per_t}), rollout max |diff| "
                          f"{rollout_diff:.3g}; tolerance {tolerance:g}. The ONNX files were removed.")
    return result


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def make_random_model_folder(preset_name: str, out: str | Path, seed: int = 0, ensemble: bool = False) -> Path:
    """A model folder with random weights of a preset's sizes (for benchmarks and parity checks only): PushT action
    statistics, and AdaLN modulations perturbed off zero so that the predictor blocks are not identities. With
    `ensemble`, also a small random uncertainty ensemble (3 members of 16 hidden units), so that it serves
    uncertainty()."""
    torch.manual_seed(seed)
    config = preset(preset_name, action_mean=list(PUSHT_ACTION_MEAN), action_std=list(PUSHT_ACTION_STD))
    model = LeWM(config)
    with torch.no_grad():
        for block in model.predictor.transformer.layers:
            block.adaLN_modulation[1].weight.normal_(std=0.02)
            block.adaLN_modulation[1].bias.normal_(std=0.02)
    card = (f"# Random-weight LeWM ({preset_name} preset)\n\nRandom weights (seed {seed}), for inference benchmarks "
            "and export parity checks only. It has learned nothing.\n")
    folder = save_model_folder(model.eval(), config, out, card=card)
    if ensemble:
        from lewm.ensemble.model import EnsembleConfig, LatentEnsemble, save_ensemble

        save_ensemble(LatentEnsemble(EnsembleConfig.for_model(config, members=3, hidden=16)), folder,
                      {"trained": "random weights"})
    return folder
