"""A model folder behind the two-call interface (encode / predict), by backend name: the torch weights or the
ONNX Runtime engine. Commands pick the backend here and hand the model to the parts (probes and the like),
which never import an implementation themselves."""
from __future__ import annotations

from pathlib import Path

from scenes.errors import UserError

BACKENDS = ("torch", "onnx")


def load_backend(model_dir: str | Path, backend: str = "torch"):
    """torch: lewm.torch_backend.TorchBackend on the weights; onnx: export.engine.OnnxEngine on the ONNX files."""
    if backend == "torch":
        from lewm.torch_backend import TorchBackend

        return TorchBackend.from_folder(model_dir)
    if backend == "onnx":
        from export.engine import OnnxEngine

        return OnnxEngine.from_folder(model_dir)
    raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
