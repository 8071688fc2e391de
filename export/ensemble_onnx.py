"""A model folder's uncertainty ensemble -> ensemble.onnx: latents z (N, latent_dim) and raw action blocks
(N, block_dim) -> uncertainty (N, 2), its disagreement and noise parts (lewm/ensemble/model.py), checked against torch.

The graph keeps no copy of the weights: its initialisers are ONNX external data at the byte offsets where
ensemble.safetensors holds the same tensors (safetensors stores each tensor's little-endian bytes contiguously after
a JSON header, which is what ONNX's external data reads), so the ensemble counts once against the folder's size.
The verification is recorded in config.json's "ensemble" section, under "onnx".
"""
from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.files import ENSEMBLE_INPUTS, ENSEMBLE_OUTPUTS, ensemble_onnx_file
from lewm.checkpoint import CONFIG
from lewm.config import ModelConfig
from lewm.ensemble.model import ENSEMBLE_KEY, ENSEMBLE_WEIGHTS, LatentEnsemble, load_ensemble

TOLERANCE = 1e-4  # relative to the largest value compared
CHECK_BATCHES = (1, 7)


class UncertaintyGraph(torch.nn.Module):
    def __init__(self, ensemble: LatentEnsemble):
        super().__init__()
        self.ensemble = ensemble

    def forward(self, z: torch.Tensor, action_block: torch.Tensor) -> torch.Tensor:
        return self.ensemble.uncertainty(z, action_block)


def export_ensemble(folder: str | Path, opset: int = 18, verify: bool = True) -> dict[str, Any]:
    """Write FOLDER/ensemble.onnx (weights read from ensemble.safetensors), verify it against torch (ParityError and
    no file beyond the tolerance), record it in config.json's "ensemble" section; return that record."""
    import onnx

    from export.onnx_export import ParityError

    folder = Path(folder)
    ensemble = load_ensemble(folder)
    path = ensemble_onnx_file(folder)
    path.unlink(missing_ok=True)
    z = torch.randn(2, ensemble.config.latent_dim)
    a = torch.randn(2, ensemble.config.block_dim)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(UncertaintyGraph(ensemble), (z, a), str(path), dynamo=False, opset_version=opset,
                          input_names=ENSEMBLE_INPUTS, output_names=ENSEMBLE_OUTPUTS,
                          dynamic_axes={name: {0: "batch"} for name in ENSEMBLE_INPUTS + ENSEMBLE_OUTPUTS})
    proto = onnx.load(str(path))
    pointed = _point_at_safetensors(proto, folder / ENSEMBLE_WEIGHTS)
    onnx.save(proto, str(path))
    entry: dict[str, Any] = {
        "file": path.name, "opset": opset, "exporter": f"torch.onnx legacy TorchScript (torch {torch.__version__})",
        "weights": f"external data in {ENSEMBLE_WEIGHTS} ({pointed} tensors)",
        "inputs": {"z": "float32 (N, latent_dim)", "action_block": "float32 (N, block_dim), raw env actions"},
        "outputs": {"uncertainty": "float32 (N, 2): disagreement, noise (squared L2 in latent space)"}}
    if verify:
        diff = max(_relative_diff(ensemble, path, batch) for batch in CHECK_BATCHES)
        entry["verification"] = {"max_relative_diff": diff, "batches": list(CHECK_BATCHES), "tolerance": TOLERANCE}
        if not diff <= TOLERANCE:
            path.unlink(missing_ok=True)
            raise ParityError(f"ONNX Runtime and torch disagree on {path}: max relative |diff| {diff:.3g}, "
                              f"tolerance {TOLERANCE:g}. The file was removed.")
    config = ModelConfig.load(folder / CONFIG)
    config.extra[ENSEMBLE_KEY]["onnx"] = entry
    config.save(folder / CONFIG)
    return entry


def _point_at_safetensors(proto, weights: Path) -> int:
    """Make every initialiser whose bytes ensemble.safetensors holds an external-data reference into that file;
    returns how many."""
    import onnx
    from onnx.external_data_helper import set_external_data

    blob = weights.read_bytes()
    header_size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + header_size])
    where = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        where[blob[8 + header_size + begin:8 + header_size + end]] = 8 + header_size + begin
    pointed = 0
    for tensor in proto.graph.initializer:
        offset = where.get(tensor.raw_data) if tensor.raw_data else None
        if offset is None or len(tensor.raw_data) < 64:
            continue
        set_external_data(tensor, location=weights.name, offset=offset, length=len(tensor.raw_data))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        pointed += 1
    return pointed


def _relative_diff(ensemble: LatentEnsemble, path: Path, batch: int, seed: int = 0) -> float:
    """Largest |ONNX - torch| over latents ~ N(0, 1) and blocks of the model's action scale, relative to the largest
    torch value."""
    import onnxruntime as ort

    rng = np.random.default_rng([seed, batch])
    z = rng.standard_normal((batch, ensemble.config.latent_dim)).astype(np.float32)
    a = rng.uniform(-1, 1, (batch, ensemble.config.block_dim)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(ENSEMBLE_OUTPUTS, dict(zip(ENSEMBLE_INPUTS, (z, a))))[0]
    with torch.no_grad():
        want = ensemble.uncertainty(torch.from_numpy(z), torch.from_numpy(a)).numpy()
    if got.shape != want.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(1e-12, float(np.abs(want).max())))
