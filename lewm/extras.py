"""What to install when a command needs the training extras (torch, onnx) that the monitor's install leaves out."""
from __future__ import annotations

TRAIN_EXTRA = {"torch", "onnx", "onnxscript", "onnxconverter_common"}  # pyproject's [train]
INSTALL = "pip install -e '.[train]'"


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The one-line message for a training-extra module that is not installed; None for any other module."""
    name = (err.name or "").split(".")[0]
    if name not in TRAIN_EXTRA:
        return None
    return f"this command needs {name}, one of the training extras the base install leaves out: {INSTALL}"
