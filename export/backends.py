"""A model folder behind the two-call interface (encode / predict), by backend name: the torch weights or the
ONNX Runtime engine. Commands pick the backend here and hand the model to the parts (probes and the like),
which never import an implementation themselves."""
from __future__ import annotations

from pathlib import Path

from lewm_errors import UserError

BACKENDS = ("torch", "onnx")


def load_backend(model_dir: str | Path, backend: str = "torch", threads: int | None = None):
    """torch: lewm.torch_backend.TorchBackend on the weights; onnx: export.engine.OnnxEngine on the ONNX files.
    `threads`: CPU threads for the backend (torch's intra-op threads, process-wide; for the engine, the threads
    that each run a slice of a call's batch); default: each backend's own (torch: all cores; the engine: 1, as the
    monitor runs it)."""
    if threads is not None and threads < 1:
        raise UserError(f"a backend needs at least 1 thread, got {threads}")
    if backend == "torch":
        from lewm.torch_backend import TorchBackend

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return TorchBackend.from_folder(model_dir)
    if backend == "onnx":
        from export.engine import OnnxEngine

        return OnnxEngine.from_folder(model_dir, threads=threads)
    raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def load_engine(model: str | Path, provider: str | None = None, precision: str = "fp32"):
    """The ONNX Runtime engine of a model folder as the monitor runs it: `provider` tried first (default: the best
    available), the ONNX files of `precision`."""
    folder = Path(model)
    if not folder.is_dir():
        hint = ("the bundled model is made by `lewm train` + `lewm export`; or import the released one with "
                "`lewm import-official` then `lewm export --model DIR`; or make a random-weight one with "
                "`lewm export --preset small --random-weights --out DIR`")
        raise UserError(f"model folder not found: {folder} ({hint})")
    from export.engine import OnnxEngine

    providers = None if provider is None else [provider]
    return OnnxEngine.from_folder(folder, providers=providers, precision=precision)
