"""The uncertainty ensemble: its two parts, its training command, and the torch and ONNX backends serving it alike."""
import json

import numpy as np
import pytest
import torch

from export.backends import load_backend
from lewm.config import ModelConfig
from lewm.ensemble.model import EnsembleConfig, LatentEnsemble, load_ensemble
from lewm.model_interface import UNCERTAINTY
from lewm_cli import main
from scenes.collect import collect


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from export.onnx_export import export_model_folder, make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path_factory.mktemp("ens") / "tiny", seed=0, ensemble=True)
    export_model_folder(folder)
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_folder):
    path = tmp_path_factory.mktemp("ens-data") / "d.h5"
    size = ModelConfig.load(tiny_folder / "config.json").image_size
    collect(path, episodes=4, steps=40, image_size=size, seed=0, mix={"expert": 0.5, "random": 0.5})
    return path


def test_disagreement_is_the_spread_of_the_members_forecasts_and_noise_their_expected_error():
    config = EnsembleConfig(latent_dim=4, block_dim=2, members=3, hidden=8)
    ensemble = LatentEnsemble(config)
    z, blocks = torch.randn(5, 4), torch.randn(5, 2)
    means, log_var = ensemble(z, blocks)
    parts = ensemble.uncertainty(z, blocks)
    for row in range(5):
        spread = np.mean([((means[k, row] - means[:, row].mean(0)) ** 2).sum().item() for k in range(3)])
        assert parts[row, 0].item() == pytest.approx(spread, rel=1e-5)
        assert parts[row, 1].item() == pytest.approx(4 * torch.exp(log_var[:, row]).mean().item(), rel=1e-5)
    with torch.no_grad():  # members made equal agree exactly
        for name in ("w0", "b0", "w1", "b1", "w2", "b2"):
            getattr(ensemble, name)[:] = getattr(ensemble, name)[0]
    assert torch.all(ensemble.uncertainty(z, blocks)[:, 0] < 1e-10)


def test_torch_and_onnx_serve_the_same_uncertainty(tiny_folder):
    torch_model, onnx_model = load_backend(tiny_folder, "torch"), load_backend(tiny_folder, "onnx")
    assert UNCERTAINTY in torch_model.capabilities and UNCERTAINTY in onnx_model.capabilities
    rng = np.random.default_rng(3)
    z = rng.standard_normal((17, torch_model.latent_dim)).astype(np.float32)
    blocks = rng.uniform(-1, 1, (17, torch_model.config.action_block_dim)).astype(np.float32)
    a, b = torch_model.uncertainty(z, blocks), onnx_model.uncertainty(z, blocks)
    assert a.shape == (17, 2) and np.all(a > 0)
    assert np.allclose(a, b, rtol=1e-4, atol=1e-7)
    assert np.allclose(onnx_model.with_threads(2).uncertainty(z, blocks), b, rtol=1e-6)


def test_the_graph_reads_its_weights_from_the_safetensors_file(tiny_folder):
    import onnx

    proto = onnx.load(str(tiny_folder / "ensemble.onnx"), load_external_data=False)
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert len(external) >= 6  # the three stacked weight matrices and biases
    assert {e.value for t in external for e in t.external_data if e.key == "location"} == {"ensemble.safetensors"}
    weights = sum(p.numel() for p in load_ensemble(tiny_folder).parameters()) * 4
    assert (tiny_folder / "ensemble.onnx").stat().st_size < weights


def test_train_ensemble_saves_exports_and_records_the_command(tiny_folder, dataset, tmp_path, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    args = ["train-ensemble", "--model", str(folder), "--data", str(dataset), "--run", str(tmp_path / "run"),
            "--steps", "60", "--members", "3", "--hidden", "16", "--batch-size", "32", "--threads", "1"]
    assert main(args) == 2  # the folder already has one
    assert "--force" in capsys.readouterr().err
    before = (folder / "ensemble.safetensors").read_bytes()
    assert main(args + ["--force"]) == 0
    assert (folder / "ensemble.safetensors").read_bytes() != before
    config = json.loads((folder / "config.json").read_text())
    section = config["ensemble"]
    assert section["members"] == 3 and section["trained"]["steps"] == 60
    assert section["trained"]["command"].startswith("lewm train-ensemble --model")
    assert section["onnx"]["verification"]["max_relative_diff"] <= 1e-4
    assert -1 <= config["action_bounds"]["low"][0] < config["action_bounds"]["high"][0] <= 1
    held = section["trained"]["held_out"]
    assert np.isfinite(held["nll"]) and -1 <= held["spearman_uncertainty_vs_error"] <= 1
    engine = load_backend(folder, "onnx")
    assert "uncertainty ensemble" in engine.describe()
    z = np.zeros((2, engine.latent_dim), np.float32)
    blocks = np.zeros((2, engine.config.action_block_dim), np.float32)
    assert np.allclose(engine.uncertainty(z, blocks), load_backend(folder, "torch").uncertainty(z, blocks),
                       rtol=1e-4)


def test_a_folder_without_an_ensemble_says_how_to_make_one(tmp_path, capsys):
    from export.onnx_export import make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path / "plain", seed=1)
    model = load_backend(folder, "torch")
    assert UNCERTAINTY not in model.capabilities
    assert main(["probe", "uncertainty", "--model", str(folder), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "lewm train-ensemble" in err and err.count("\n") == 1


def test_probe_uncertainty_ranks_errors_and_compares_novelty_with_ordinary_surprise(tiny_folder, tmp_path):
    out = tmp_path / "probe"
    assert main(["probe", "uncertainty", "--model", str(tiny_folder), "--out", str(out), "--episodes", "2",
                 "--steps", "60"]) == 0
    result = json.loads((out / "uncertainty.json").read_text())
    error = result["error"]
    assert error["frames"] == 2 * (61 - 5)  # every frame with a one-step forecast
    assert error["interval_95"][0] <= error["spearman"] <= error["interval_95"][1]
    typical = min(200, error["frames"] - 2 * (15 - 5))  # frames after a full context
    for kind in ("wall", "far", "corner"):
        assert result["off_distribution"][kind]["frames"] == typical
        assert 0 <= result["off_distribution"][kind]["auroc"] <= 1
    novelty = result["novelty"]
    assert novelty["ordinary_frames"] > 0 and novelty["sliding_square"]["frames"] > 0
    assert novelty["teleport"]["frames"] in (0, 5, 10)  # one model step of frames per episode that fits an event
    assert (out / "uncertainty.png").stat().st_size > 10_000


def test_off_distribution_states_are_what_they_say():
    import shapely.geometry

    from lewm.probes.uncertainty import off_distribution_states
    from scenes.pusht import t_polygon

    rng = np.random.default_rng(0)
    for state in off_distribution_states("wall", 20, rng):
        x0, y0, x1, y1 = t_polygon(*state[2:5]).bounds
        assert min(x0 - 8, y0 - 8, 503 - x1, 503 - y1) == pytest.approx(3, abs=1e-6)
    for state in off_distribution_states("far", 20, rng):
        assert np.hypot(*(state[:2] - state[2:4])) >= 300
    for state in off_distribution_states("corner", 20, rng):
        assert sum(v < 90 or v > 422 for v in state[2:4]) == 2
        assert not t_polygon(*state[2:5]).intersects(shapely.geometry.Point(*state[:2]).buffer(15))
