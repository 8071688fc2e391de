"""What the engine refuses in a model folder, each with a one-line reason: corrupt weights, reduced copies left
from an earlier export, and a config.json whose architecture is not the graphs'."""
import json
import shutil

import pytest

from export.engine import OnnxEngine
from export.onnx_export import export_model_folder
from lewm_errors import UserError


def test_corrupt_weights_are_reported_as_corrupt(exported_tiny, copy_folder):
    folder = copy_folder(exported_tiny)
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a cut copy
    with pytest.raises(UserError, match="weights.safetensors is corrupt") as caught:
        OnnxEngine.from_folder(folder)
    assert "other weights" not in str(caught.value)


def test_an_export_without_int8_removes_the_int8_files_of_the_previous_one(exported_tiny, copy_folder):
    folder = copy_folder(exported_tiny)
    for graph in ("encoder", "predictor"):  # reduced copies of the graphs as they are (quick stand-ins for int8)
        shutil.copy(folder / f"{graph}.onnx", folder / f"{graph}.int8.onnx")
    OnnxEngine.from_folder(folder, precision="int8")
    export_model_folder(folder, verify=False)
    assert not (folder / "encoder.int8.onnx").exists() and not (folder / "predictor.int8.onnx").exists()
    with pytest.raises(UserError, match="lacks encoder.int8.onnx"):
        OnnxEngine.from_folder(folder, precision="int8")


@pytest.mark.parametrize("field", ["enc_depth", "pred_depth", "enc_mlp"])
def test_a_config_whose_architecture_is_not_the_graphs_is_refused(exported_tiny, copy_folder, field):
    folder = copy_folder(exported_tiny)
    config = json.loads((folder / "config.json").read_text())
    config[field] += 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=f"exported with {field}="):
        OnnxEngine.from_folder(folder)
