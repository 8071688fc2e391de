"""Fixtures for the export tests: one torch thread (the machine's cores are shared) and a tiny random-weight model
folder exported once per session (copy it before changing it)."""
import shutil
from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def exported_tiny(tmp_path_factory) -> Path:
    """A tiny random-weight model folder with its fp32 ONNX files (do not modify: use copy_folder)."""
    import torch

    torch.set_num_threads(1)
    from export.onnx_export import export_model_folder, make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path_factory.mktemp("tiny") / "model")
    export_model_folder(folder)
    return folder


@pytest.fixture
def copy_folder(tmp_path) -> Callable[[Path], Path]:
    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(folder, tmp_path / "copy"))
    return copy
