"""A model folder's pixel decoder -> decoder.onnx (float32 latents (N, latent_dim) -> float32 frames (N, H, W, 3)
in [0, 1], and the same frames rounded to uint8), checked against torch like the encoder and predictor; and its
int8 / fp16 copies.

The graph wraps PixelDecoder.forward exactly and rounds its frames in the graph as lewm.decoder.pixels.to_uint8
does (the engine serves those: rounding in numpy afterwards cost about a tenth of decoding a model step's
look-ahead). The verification and the
reduced-precision agreement are recorded in config.json's "decoder" section, under "onnx" (a retrained decoder
replaces that section, so a stale record cannot outlive its weights).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.files import DECODER_INPUTS, DECODER_OUTPUTS, decoder_onnx_file, quiet_logger, sha256_file
from lewm.checkpoint import CONFIG
from lewm.config import ModelConfig
from lewm.decoder.model import DECODER_KEY, DECODER_WEIGHTS, PixelDecoder, load_decoder

TOLERANCE = 1e-4
EXAMPLE_BATCH = 2  # not 1: an example batch of 1 lets the exporter specialise the batch dimension
MAX_BATCH = 1 << 16
CHECK_LATENTS, CHECK_SEED = 16, 0  # reduced-precision agreement: latents ~ N(0, 1) (SIGReg's target distribution)


class RoundedDecoder(torch.nn.Module):
    """The exported graph: the decoder's float frames, and those frames rounded to uint8 (to_uint8's arithmetic)."""

    def __init__(self, decoder: PixelDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.decoder(z)
        return frames, (frames * 255.0 + 0.5).clamp(0.0, 255.0).to(torch.uint8)


def export_decoder(folder: str | Path, opset: int = 18, verify: bool = True) -> dict[str, Any]:
    """Write FOLDER/decoder.onnx, verify it against torch (ParityError and no file beyond 1e-4), record it in
    config.json's "decoder" section; return that section's "onnx" entry."""
    from export.onnx_export import ParityError, stamp_onnx_file

    folder = Path(folder)
    decoder = load_decoder(folder)
    path = decoder_onnx_file(folder)
    path.unlink(missing_ok=True)
    with torch.no_grad():
        exporter = _export(decoder, path, opset)
    config = ModelConfig.load(folder / CONFIG)
    stamp_onnx_file(path, config, sha256_file(folder / DECODER_WEIGHTS))
    entry: dict[str, Any] = {"fp32": path.name, "opset": opset, "exporter": exporter,
                             "inputs": {"z": "float32 (N, latent_dim)"},
                             "outputs": {"frames": "float32 (N, H, W, 3) in [0, 1], H = W = image_size",
                                         "frames_uint8": "uint8 (N, H, W, 3): frames rounded (what the engine "
                                                         "serves)"}}
    if verify:
        diff = max(_max_diff(decoder, path, batch) for batch in (1, 3))
        entry["verification"] = {"max_abs_diff": diff, "batches": [1, 3], "tolerance": TOLERANCE}
        if not diff <= TOLERANCE:  # also catches NaN
            path.unlink(missing_ok=True)
            raise ParityError(f"ONNX Runtime and torch disagree on {path}: max |diff| {diff:.3g}, tolerance "
                              f"{TOLERANCE:g}. The file was removed.")
    _record(folder, entry)
    return entry


def _export(decoder: PixelDecoder, path: Path, opset: int) -> str:
    example = torch.randn(EXAMPLE_BATCH, decoder.config.latent_dim)
    try:
        chatter = io.StringIO()
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), quiet_logger("torch.onnx"):
            warnings.simplefilter("ignore")
            torch.onnx.export(RoundedDecoder(decoder.eval()), (example,), str(path), dynamo=True, external_data=False,
                              opset_version=opset, input_names=DECODER_INPUTS, output_names=DECODER_OUTPUTS,
                              dynamic_shapes={"z": {0: batch}}, verbose=False)
        if not path.is_file():
            raise RuntimeError(f"the exporter wrote no {path.name}; its output:\n{chatter.getvalue()}")
        return f"torch.onnx dynamo (torch {torch.__version__})"
    except Exception as err:  # the exporter raises many kinds; any of them means: try the other one
        warnings.warn(f"dynamo ONNX export of the decoder failed ({type(err).__name__}: {err}); using the legacy "
                      "exporter")
        path.unlink(missing_ok=True)
        torch.onnx.export(RoundedDecoder(decoder.eval()), (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=DECODER_INPUTS, output_names=DECODER_OUTPUTS,
                          dynamic_axes={name: {0: "batch"} for name in DECODER_INPUTS + DECODER_OUTPUTS})
        return f"torch.onnx legacy TorchScript (torch {torch.__version__})"


def _max_diff(decoder: PixelDecoder, path: Path, batch: int, seed: int = 0) -> float:
    """Largest |ONNX - torch| of the float frames; infinite where the graph's uint8 frames are not exactly its
    float frames rounded by to_uint8."""
    import onnxruntime as ort

    from lewm.decoder.pixels import to_uint8

    z = np.random.default_rng([seed, batch]).standard_normal((batch, decoder.config.latent_dim)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got, rounded = session.run(DECODER_OUTPUTS, {DECODER_INPUTS[0]: z})
    with torch.no_grad():
        want = decoder(torch.from_numpy(z)).numpy()
    if got.shape != want.shape or not np.array_equal(rounded, to_uint8(got)):
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


def reduce_decoder(folder: str | Path, precision: str) -> dict[str, Any]:
    """Write decoder.int8.onnx (dynamic int8 weights of its Gemm and Conv; the transposed convolutions stay fp32,
    ONNX Runtime has no dynamic int8 kernel for them) or decoder.fp16.onnx (float32 input and output kept) from
    decoder.onnx, and record its agreement with fp32 (PSNR of the uint8 frames) in config.json."""
    import onnx

    folder = Path(folder)
    source, target = decoder_onnx_file(folder), decoder_onnx_file(folder, precision)
    if not source.is_file():
        from lewm_errors import UserError
        raise UserError(f"model folder {folder} lacks {source.name}: run `lewm export --model {folder}` first")
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with quiet_logger():
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm", "Conv"])
        method = "onnxruntime.quantization.quantize_dynamic (QInt8 weights, per channel, Gemm/Conv)"
    else:
        from onnxconverter_common import float16

        model = onnx.load(str(source))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            converted = float16.convert_float_to_float16(model, keep_io_types=True,
                                                         node_block_list=_rounding_nodes(model.graph))
        onnx.save(converted, str(target))
        method = "onnxconverter_common.float16 (keep_io_types; the rounding to uint8 kept fp32)"
    from export.quantize import _copy_metadata
    _copy_metadata(source, target)
    entry = {"file": target.name, "method": method, "agreement_with_fp32": _agreement(folder, source, target)}
    section = ModelConfig.load(folder / CONFIG).extra[DECODER_KEY].get("onnx", {})
    section[precision] = entry
    _record(folder, section)
    return entry


def _rounding_nodes(graph) -> list[str]:
    """Names of the nodes between the float frames and the uint8 frames (the converter cannot type them in fp16)."""
    after, names = {DECODER_OUTPUTS[0]}, []
    for node in graph.node:  # topologically sorted
        if after.intersection(node.input):
            names.append(node.name)
            after.update(node.output)
    return names


def _agreement(folder: Path, source: Path, target: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from lewm.decoder.pixels import psnr

    config = ModelConfig.load(folder / CONFIG)
    z = np.random.default_rng(CHECK_SEED).standard_normal((CHECK_LATENTS, config.latent_dim)).astype(np.float32)
    frames = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run([DECODER_OUTPUTS[1]], {"z": z})[0]
              for p in (source, target)]
    values = psnr(frames[1], frames[0])
    return {"psnr_db_mean": float(values.mean()), "psnr_db_min": float(values.min()),
            "max_abs_diff_uint8": int(np.abs(frames[1].astype(int) - frames[0]).max()),
            "latents": f"{CHECK_LATENTS} latents ~ N(0, 1), seed {CHECK_SEED}", "measured_on": "CPUExecutionProvider"}


def _record(folder: Path, entry: dict[str, Any]) -> None:
    config = ModelConfig.load(folder / CONFIG)
    config.extra[DECODER_KEY]["onnx"] = entry
    config.save(folder / CONFIG)
