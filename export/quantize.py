"""Reduced-precision copies of a model folder's ONNX files, and how closely they agree with fp32.

- int8: onnxruntime.quantization.quantize_dynamic of the fp32 files (int8 weights of MatMul/Gemm, activations
  quantised on the fly) -> encoder.int8.onnx, predictor.int8.onnx. For the CPU.
- fp16: onnxconverter-common's float16 conversion with float32 inputs/outputs kept -> encoder.fp16.onnx,
  predictor.fp16.onnx. For the GPU; needs onnxconverter-common (in the `train` extra).
Both are made from the fp32 files (run `lewm export --model DIR` first). Needs the `onnx` package, not torch.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from export.files import onnx_files, quiet_logger
from lewm.config import ModelConfig
from scenes.errors import UserError

AGREEMENT_TARGET = 0.999


def quantize_model_folder(folder: str | Path) -> dict[str, Any]:
    """Write FOLDER/encoder.int8.onnx and FOLDER/predictor.int8.onnx; record them and their agreement with fp32 in
    config.json's "onnx" section (returned)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    sources, targets = _sources(folder), onnx_files(folder, "int8")
    for source, target in zip(sources, targets):
        with quiet_logger():  # it advises a shape-inference pre-pass on every call; the dynamo graphs have shapes
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"])
        _copy_metadata(source, target)
    return _record(folder, "int8", targets, "onnxruntime.quantization.quantize_dynamic (QInt8 weights, "
                   "per channel, MatMul/Gemm)")


def fp16_available(raise_if_not: bool = False) -> bool:
    """Whether this machine can make fp16 files (onnxconverter-common installed)."""
    import importlib.util

    if importlib.util.find_spec("onnxconverter_common") is not None:
        return True
    if raise_if_not:
        raise UserError("fp16 files are not available on this machine: they need the onnxconverter-common package "
                        "(`pip install onnxconverter-common`), which is not installed. fp16 is for the GPU; "
                        "on the CPU use fp32 or --int8.")
    return False


def convert_fp16_model_folder(folder: str | Path) -> dict[str, Any]:
    """Write FOLDER/encoder.fp16.onnx and FOLDER/predictor.fp16.onnx (float32 inputs and outputs kept)."""
    fp16_available(raise_if_not=True)
    import onnx
    from onnxconverter_common import float16

    folder = Path(folder)
    sources, targets = _sources(folder), onnx_files(folder, "fp16")
    # Cast nodes stay fp32 (with casts around them): the converter retypes a Cast's output to fp16 but keeps its
    # `to` attribute, and ONNX Runtime then refuses the file (the encoder's uint8 -> float Cast of the frames).
    keep_fp32 = list(float16.DEFAULT_OP_BLOCK_LIST) + ["Cast"]
    for source, target in zip(sources, targets):
        with warnings.catch_warnings():  # it warns for each constant it clips to fp16 range (mask fills: -1e4)
            warnings.simplefilter("ignore", UserWarning)
            converted = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True,
                                                         op_block_list=keep_fp32)
        onnx.save(converted, str(target))
        _copy_metadata(source, target)
    return _record(folder, "fp16", targets, "onnxconverter_common.float16 (keep_io_types; Cast kept fp32)")


def precision_agreement(folder: str | Path, precision: str, frames: int = 16, seed: int = 0,
                        providers: list[str] | None = None) -> dict[str, float]:
    """Cosine similarity between the `precision` engine's and the fp32 engine's outputs on the same random inputs:
    latents of random uint8 frames, and predictions from windows of those latents with raw actions ~ N(mean, std)
    at every T = 1..history. Returns mean and min cosine, over both calls and per call."""
    from export.engine import OnnxEngine

    reference = OnnxEngine.from_folder(folder, providers=providers, precision="fp32")
    reduced = OnnxEngine.from_folder(folder, providers=providers, precision=precision)
    config = reference.config
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (frames, config.image_size, config.image_size, 3), dtype=np.uint8)
    z = reference.encode(images)
    enc_cos = _cosines(reduced.encode(images), z)
    mean = np.tile(np.asarray(config.action_mean, np.float32), config.frameskip)
    std = np.tile(np.asarray(config.action_std, np.float32), config.frameskip)
    pred_cos = []
    for t in range(1, config.history + 1):
        starts = np.arange(frames - t + 1)
        windows = np.stack([z[s:s + t] for s in starts])
        actions = (mean + std * rng.standard_normal((len(starts), t, config.action_block_dim))).astype(np.float32)
        pred_cos.append(_cosines(reduced.predict(windows, actions), reference.predict(windows, actions)))
    pred_cos = np.concatenate(pred_cos)
    both = np.concatenate([enc_cos, pred_cos])
    return {"mean_cos": float(both.mean()), "min_cos": float(both.min()),
            "encode_mean_cos": float(enc_cos.mean()), "encode_min_cos": float(enc_cos.min()),
            "predict_mean_cos": float(pred_cos.mean()), "predict_min_cos": float(pred_cos.min()),
            "target": AGREEMENT_TARGET}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def _sources(folder: Path) -> tuple[Path, Path]:
    sources = onnx_files(folder, "fp32")
    missing = [p.name for p in sources if not p.is_file()]
    if missing:
        raise UserError(f"model folder {folder} lacks {', '.join(missing)}: run `lewm export --model {folder}` first")
    return sources


def _copy_metadata(source: Path, target: Path) -> None:
    """Carry the config stamp (metadata_props) of the fp32 file over to its reduced copy."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    proto = onnx.load(str(target))
    have = {p.key for p in proto.metadata_props}
    for key, value in props.items():
        if key not in have:
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))


def _record(folder: Path, precision: str, targets: tuple[Path, Path], method: str) -> dict[str, Any]:
    # Measured on the CPU provider, which runs fp16 graphs too (fp16 is meant for the GPU, where it is faster).
    agreement = precision_agreement(folder, precision, providers=["CPUExecutionProvider"])
    config = ModelConfig.load(folder / "config.json")
    section = config.extra.setdefault("onnx", {})
    section[precision] = {"encoder": targets[0].name, "predictor": targets[1].name, "method": method,
                          "agreement_with_fp32": {**agreement, "measured_on": "CPUExecutionProvider"}}
    if agreement["min_cos"] < AGREEMENT_TARGET:
        warnings.warn(f"{precision} files agree with fp32 at min cosine {agreement['min_cos']:.5f} "
                      f"(target {AGREEMENT_TARGET})", RuntimeWarning, stacklevel=3)
    config.save(folder / "config.json")
    return section
