import json

import numpy as np
import pytest
import torch

from lewm.checkpoint import load_model_folder, save_model_folder
from lewm.sigreg import lewm_loss
from lewm.torch_backend import TorchBackend
from lewm_errors import UserError


@pytest.fixture
def trained(make_model, make_frames):
    """A tiny model after one training step, so BatchNorm running statistics are not the defaults."""
    model = make_model().train()
    total = lewm_loss(model, make_frames(4, 4), torch.randn(4, 4, 10)).total
    total.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.01 * p.grad
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path, trained, make_frames):
    trained.config.extra["onnx"] = {"encoder": "encoder.onnx"}
    save_model_folder(trained, trained.config, tmp_path / "m", card="# tiny\n")
    loaded = load_model_folder(tmp_path / "m")
    assert not loaded.training
    assert loaded.config == trained.config
    assert (tmp_path / "m" / "README.md").read_text() == "# tiny\n"
    assert json.loads((tmp_path / "m" / "config.json").read_text())["onnx"] == {"encoder": "encoder.onnx"}
    frames, actions = make_frames(3), torch.randn(1, 3, 10)
    with torch.no_grad():
        z = trained.encode_frames(frames)
        torch.testing.assert_close(loaded.encode_frames(frames), z, rtol=0, atol=0)
        torch.testing.assert_close(loaded.predict_next(z[None], actions), trained.predict_next(z[None], actions),
                                   rtol=0, atol=0)


def test_clear_errors_for_missing_folder_and_files(tmp_path, trained):
    with pytest.raises(UserError, match="not found"):
        load_model_folder(tmp_path / "nothing")
    save_model_folder(trained, trained.config, tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").unlink()
    with pytest.raises(UserError, match="lacks weights.safetensors"):
        load_model_folder(tmp_path / "m")


def test_config_that_does_not_match_the_weights_names_the_keys(tmp_path, trained):
    save_model_folder(trained, trained.config, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["pred_depth"] = 3
    config["pred_mlp"] = 48
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as err:
        load_model_folder(tmp_path / "m")
    message = str(err.value)
    assert "missing: predictor.transformer.layers.2.attn.norm.weight" in message
    assert "mis-shaped: predictor.transformer.layers.0.mlp.net.1.weight (64, 32) (expected (48, 32))" in message


def test_torch_backend_matches_predict_next(tmp_path, trained, make_frames):
    save_model_folder(trained, trained.config, tmp_path / "m")
    backend = TorchBackend.from_folder(tmp_path / "m")
    assert (backend.name, backend.latent_dim, backend.history, backend.frameskip, backend.image_size) == \
        ("torch-cpu", 32, 3, 5, 32)
    frames = make_frames(5).numpy()
    z = backend.encode(frames)
    assert z.dtype == np.float32 and z.shape == (5, 32)
    with torch.no_grad():
        np.testing.assert_array_equal(z, trained.encode_frames(torch.from_numpy(frames)).numpy())
    for t in range(1, backend.history + 1):
        window, actions = np.stack([z[:t], z[1:t + 1]]), np.random.default_rng(t).normal(size=(2, t, 10))
        out = backend.predict(window, actions)
        assert out.dtype == np.float32 and out.shape == (2, 32)
        with torch.no_grad():
            expected = trained.predict_next(torch.from_numpy(window), torch.from_numpy(actions).float())
        np.testing.assert_allclose(out, expected.numpy(), rtol=0, atol=1e-6)
