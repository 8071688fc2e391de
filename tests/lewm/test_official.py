import json
import re

import h5py
import numpy as np
import pytest
import torch

from lewm.checkpoint import load_model_folder
from lewm.config import PUSHT_ACTION_MEAN, preset
from lewm.model import LeWM
from lewm.official import import_official
from lewm_errors import UserError

PAPER_HYDRA = {
    "_target_": "source.model.lewm.jepa.JEPA",
    "encoder": {"_target_": "stable_pretraining.backbone.utils.vit_hf", "size": "tiny", "patch_size": 14,
                "image_size": 224, "pretrained": False},
    "predictor": {"_target_": "source.model.lewm.modules.ARPredictor", "num_frames": 3, "input_dim": "${embed_dim}",
                  "depth": 6, "heads": 16, "mlp_dim": 2048, "dim_head": 64, "dropout": 0.1},
    "action_encoder": {"_target_": "source.model.lewm.modules.Embedder", "input_dim": 10, "emb_dim": 192},
}
TINY_HYDRA = {"model": {"encoder": {"num_attention_heads": 2}, "predictor": {"heads": 2, "dim_head": 16}}}


def to_v5_names(state: dict) -> dict:
    renames = [("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
               ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj."),
               ("intermediate.dense.", "mlp.fc1."), ("output.dense.", "mlp.fc2.")]
    out = {}
    for key, value in state.items():
        m = re.match(r"encoder\.encoder\.layer\.(\d+)\.(.*)", key)
        if m:
            index, rest = m.groups()
            for old, new in renames:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = f"encoder.layers.{index}.{rest}"
        out[key] = value
    return out


def official_like(config) -> LeWM:
    """A model with every tensor non-trivial (AdaLN modulation, BatchNorm running statistics), in eval mode."""
    model = LeWM(config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "adaLN_modulation" in name or "running_mean" in name:
                tensor.normal_(std=0.05)
            elif "running_var" in name:
                tensor.uniform_(0.5, 2.0)
    return model.eval()


def write_official(folder, state, hydra):
    folder.mkdir()
    torch.save(state, folder / "weights.pt")
    (folder / "config.json").write_text(json.dumps(hydra))
    return folder


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return official_like(preset("paper"))


@pytest.mark.parametrize("naming", ["4.x", "5.x"])
def test_import_of_the_paper_checkpoint_gives_the_same_outputs(tmp_path, paper_model, naming, capsys):
    state = paper_model.state_dict()
    state = {"state_dict": to_v5_names(state)} if naming == "5.x" else state
    write_official(tmp_path / "official", state, PAPER_HYDRA)
    import_official(tmp_path / "official", tmp_path / "ours")
    assert "warning" in capsys.readouterr().err
    loaded = load_model_folder(tmp_path / "ours")
    expected = preset("paper", action_mean=[-0.0078, 0.0069], action_std=[0.2085, 0.2068])
    assert loaded.config.to_dict() == expected.to_dict()
    card = (tmp_path / "ours" / "README.md").read_text()
    assert f"transformers {naming}" in card and "published PushT" in card
    frames, actions = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8), torch.randn(1, 3, 10)
    with torch.no_grad():
        z = paper_model.encode_frames(frames)
        paper_model.action_mean.copy_(torch.tensor(PUSHT_ACTION_MEAN * 5))
        paper_model.action_std.copy_(torch.tensor([0.2085, 0.2068] * 5))
        torch.testing.assert_close(loaded.encode_frames(frames), z, rtol=0, atol=0)
        torch.testing.assert_close(loaded.predict_next(z[None], actions), paper_model.predict_next(z[None], actions),
                                   rtol=0, atol=0)


def test_action_statistics_come_from_the_dataset(tmp_path):
    model = official_like(preset("tiny"))
    write_official(tmp_path / "official", model.state_dict(), TINY_HYDRA)
    actions = np.random.default_rng(0).normal([0.5, -1.0], [2.0, 0.5], size=(1000, 2))
    actions[[99, 499, 999]] = np.nan
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("action", data=actions, chunks=(64, 2))
    import_official(tmp_path / "official", tmp_path / "ours", dataset=tmp_path / "data.h5")
    config = load_model_folder(tmp_path / "ours").config
    finite = actions[np.isfinite(actions).all(axis=1)]
    np.testing.assert_allclose(config.action_mean, finite.mean(axis=0))
    np.testing.assert_allclose(config.action_std, finite.std(axis=0))
    assert (config.enc_heads, config.pred_heads, config.pred_head_dim, config.image_size) == (2, 2, 16, 32)


def test_a_wrong_file_names_the_bad_keys(tmp_path):
    state = LeWM(preset("tiny")).state_dict()
    del state["encoder.encoder.layer.1.layernorm_after.bias"]
    state["predictor.extra.weight"] = torch.zeros(3)
    state["pred_proj.net.1.running_mean"] = torch.zeros(7)
    write_official(tmp_path / "official", state, TINY_HYDRA)
    with pytest.raises(UserError) as err:
        import_official(tmp_path / "official", tmp_path / "ours", dataset=None)
    message = str(err.value)
    assert "missing: encoder.encoder.layer.1.layernorm_after.bias" in message
    assert "unexpected: predictor.extra.weight" in message
    assert "mis-shaped: pred_proj.net.1.running_mean (7,) (expected (64,))" in message
    assert not (tmp_path / "ours").exists()


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "weights.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "official" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="weights_only"):
        import_official(tmp_path / "official", tmp_path / "ours")
    with pytest.raises(UserError, match="not found"):
        import_official(tmp_path / "nothing", tmp_path / "ours")


def test_the_subcommand_imports_torch_only_when_run(tmp_path):
    import argparse
    import subprocess
    import sys

    probe = "import sys, lewm_cli.commands.import_official; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True)

    from lewm_cli.commands import import_official as command

    write_official(tmp_path / "official", official_like(preset("tiny")).state_dict(), TINY_HYDRA)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "official"), "--out", str(tmp_path / "ours")])
    assert command.run(args) == 0
    assert (tmp_path / "ours" / "weights.safetensors").is_file()
