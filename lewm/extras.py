"""What to install when a command needs an optional extra that the monitor's install leaves out: the training extras
(torch, onnx) or Rerun's SDK (rerun-sdk)."""
from __future__ import annotations

TRAIN_EXTRA = {"torch", "onnx", "onnxscript", "onnxconverter_common"}  # pyproject's [train]
INSTALL = "pip install -e '.[train]'"
RERUN_INSTALL = "pip install -e '.[rerun]'"  # pyproject's [rerun]


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The one-line message for a module of an optional extra that is not installed; None for any other module."""
    name = (err.name or "").split(".")[0]
    if name == "rerun":
        return f"this command needs rerun-sdk (Rerun's SDK), an optional extra the base install leaves out: " \
               f"{RERUN_INSTALL}"
    if name not in TRAIN_EXTRA:
        return None
    return f"this command needs {name}, one of the training extras the base install leaves out: {INSTALL}"
