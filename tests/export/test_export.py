"""The ONNX export: files, config section, parity with torch, failure handling, the command."""
import json

import numpy as np
import pytest

from export.engine import OnnxEngine
from export.onnx_export import ParityError, export_model_folder, make_random_model_folder, verify_parity
from lewm.torch_backend import TorchBackend


def test_export_writes_the_files_and_config_section(exported_tiny):
    import onnx

    names = {"encoder.onnx", "predictor.onnx", "rollout.onnx", "predictor.weights"}
    assert names <= {p.name for p in exported_tiny.iterdir()}
    assert not list(exported_tiny.glob("*.data")) and not list(exported_tiny.glob("*.folded"))

    def external(graph):
        return {t.name for t in onnx.load(str(exported_tiny / graph), load_external_data=False).graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL}

    assert not external("encoder.onnx")  # one self-contained file
    section = json.loads((exported_tiny / "config.json").read_text())["onnx"]
    assert section["encoder"] == "encoder.onnx" and section["predictor"] == "predictor.onnx"
    assert section["rollout"] == {"file": "rollout.onnx", "context": 1, "horizon": 5}
    # the predictor's and the rollout's weights are stored once, in the shared file
    sharing = section["shared_weights"]
    assert external("predictor.onnx") and external("rollout.onnx")
    assert sharing["bytes_written"] == (exported_tiny / "predictor.weights").stat().st_size
    assert sharing["bytes_written"] < 0.6 * sharing["bytes_held_by_graphs"], sharing
    assert section["opset"] == 18 and section["exporter"].startswith("torch.onnx dynamo")
    assert "rollout: torch.onnx legacy TorchScript" in section["exporter"]
    assert section["action_normalisation"] == "inside predictor graph"
    assert section["verification"]["predictor_max_abs_diff"] <= 1e-4


def test_graph_inputs_are_dynamic(exported_tiny):
    engine = OnnxEngine.from_folder(exported_tiny)
    enc_in = engine._encoder.get_inputs()[0]
    z_in, a_in = engine._predictor.get_inputs()
    assert (enc_in.name, enc_in.type, enc_in.shape[1:]) == ("frames", "tensor(uint8)", [32, 32, 3])
    assert not isinstance(enc_in.shape[0], int)
    assert (z_in.name, a_in.name) == ("z_window", "action_blocks")
    assert not isinstance(z_in.shape[0], int) and not isinstance(z_in.shape[1], int)
    assert z_in.shape[2] == 32 and a_in.shape[2] == 10


@pytest.mark.parametrize("batch", [1, 5])
def test_parity_with_torch_every_window_length(exported_tiny, batch):
    torch_side, onnx_side = TorchBackend.from_folder(exported_tiny), OnnxEngine.from_folder(exported_tiny)
    config = torch_side.config
    rng = np.random.default_rng(batch)
    frames = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    assert np.abs(onnx_side.encode(frames) - torch_side.encode(frames)).max() <= 1e-4
    mean = np.tile(config.action_mean, config.frameskip)
    std = np.tile(config.action_std, config.frameskip)
    for t in range(1, config.history + 1):
        z = rng.standard_normal((batch, t, config.latent_dim)).astype(np.float32)
        actions = (mean + std * rng.standard_normal((batch, t, config.action_block_dim))).astype(np.float32)
        ort_out, torch_out = onnx_side.predict(z, actions), torch_side.predict(z, actions)
        assert ort_out.shape == (batch, config.latent_dim) and ort_out.dtype == np.float32
        assert np.abs(ort_out - torch_out).max() <= 1e-4, f"T={t}"
    z = rng.standard_normal((batch, 1, config.latent_dim)).astype(np.float32)
    plan = (mean + std * rng.standard_normal((batch, 5, config.action_block_dim))).astype(np.float32)
    ort_out, torch_out = onnx_side.rollout(z, plan), torch_side.rollout(z, plan)
    assert ort_out.shape == (batch, 5, config.latent_dim) and np.abs(ort_out - torch_out).max() <= 1e-4


def test_action_normalisation_is_inside_the_graph(exported_tiny):
    """Raw actions go in: the graph z-scores them with the folder's action statistics, so its prediction from raw
    blocks is torch's prediction from blocks z-scored here, and not the one from the raw numbers themselves."""
    import torch

    from lewm.checkpoint import load_model_folder

    model = load_model_folder(exported_tiny).eval()
    config = model.config
    onnx_side = OnnxEngine.from_folder(exported_tiny)
    rng = np.random.default_rng(0)
    mean = np.tile(config.action_mean, config.frameskip).astype(np.float32)
    std = np.tile(config.action_std, config.frameskip).astype(np.float32)
    z = rng.standard_normal((2, 3, 32)).astype(np.float32)
    raw = (mean + std * rng.standard_normal((2, 3, 10))).astype(np.float32)

    def torch_predict(blocks):
        with torch.no_grad():
            return model.predict(torch.from_numpy(z), model.embed_actions(torch.from_numpy(blocks)))[:, -1].numpy()

    assert np.abs(std - 1).min() > 0.1  # statistics that change the numbers
    z_scored = torch_predict((raw - mean) / std)
    unscored_gap = np.abs(torch_predict(raw) - z_scored).max()  # small: a fresh AdaLN-zero predictor
    onnx_gap = np.abs(onnx_side.predict(z, raw) - z_scored).max()
    assert onnx_gap <= 1e-4 and onnx_gap < 0.1 * unscored_gap, (onnx_gap, unscored_gap)


def test_verify_raises_beyond_tolerance(exported_tiny):
    with pytest.raises(ParityError, match="disagree"):
        verify_parity(exported_tiny, tolerance=0.0)


def test_failed_verification_removes_the_files(tmp_path, monkeypatch):
    import export.onnx_export as onnx_export

    def disagree(*args, **kwargs):
        raise ParityError("disagree (test)")

    folder = make_random_model_folder("tiny", tmp_path / "model")
    monkeypatch.setattr(onnx_export, "verify_parity", disagree)
    with pytest.raises(ParityError):
        export_model_folder(folder)
    assert not [p.name for p in folder.iterdir() if p.suffix in (".onnx", ".weights")]
    assert "onnx" not in json.loads((folder / "config.json").read_text())


def test_the_rollout_falls_back_to_the_dynamo_exporter(tmp_path, monkeypatch):
    """The rollout graph is made by the TorchScript exporter; where that fails, dynamo makes it, and it holds."""
    import torch

    real_export = torch.onnx.export

    def export(module, *args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("TorchScript exporter unavailable (test)")
        return real_export(module, *args, dynamo=dynamo, **kwargs)

    folder = make_random_model_folder("tiny", tmp_path / "model")
    monkeypatch.setattr(torch.onnx, "export", export)
    with pytest.warns(UserWarning, match="using dynamo"):
        section = export_model_folder(folder)
    assert section["exporter"].endswith("rollout: torch.onnx dynamo (torch " + torch.__version__ + ")")
    assert section["verification"]["rollout_max_abs_diff"] <= 1e-4
    assert OnnxEngine.from_folder(folder).fits_rollout(1, 5)


def test_export_command_random_weights(tmp_path, capsys):
    from lewm_cli import main

    out = tmp_path / "random-tiny"
    assert main(["export", "--preset", "tiny", "--random-weights", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max |diff|" in printed and (out / "encoder.onnx").is_file()


def test_export_command_checks_its_model_folder(tmp_path, capsys):
    from lewm_cli import main

    assert main(["export", "--model", str(tmp_path / "none")]) == 2
    assert "argument --model" in capsys.readouterr().err


@pytest.mark.parametrize("encoder", ["cnn", "keypoints"])
def test_our_encoders_export_and_agree_with_torch(tmp_path, encoder):
    from export.onnx_export import export_model_folder, save_model_folder
    from lewm.config import preset
    from lewm.model import LeWM

    config = preset("tiny", encoder=encoder)
    folder = save_model_folder(LeWM(config).eval(), config, tmp_path / encoder, card=f"# {encoder}\n")
    section = export_model_folder(folder)  # raises ParityError beyond 1e-4
    assert (folder / "encoder.onnx").is_file() and section["verification"]["encoder_max_abs_diff"] < 1e-4
