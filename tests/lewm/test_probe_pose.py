"""The pose probe: its probes read a known-good embedding (near 1) and not noise (near 0 or below); the fitting and
scored frames never share a seed or a frame; and `lewm probe pose` runs end to end on a tiny model and on the
bundled one, refusing bad values with one line."""
import json

import numpy as np
import pytest
import torch

from lewm.bundled import BUNDLED_MODEL as BUNDLED
from lewm.checkpoint import save_model_folder
from lewm.config import preset
from lewm.model import LeWM
from lewm.probes.common import jsonable
from lewm.probes.pose import TARGETS, run_pose, score_embeddings, targets_of
from lewm.torch_backend import TorchBackend
from scenes.pose_states import pose_states


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = preset("tiny")
    return save_model_folder(LeWM(config).eval(), config, tmp_path_factory.mktemp("model"))


class RecordingModel:
    """The real model, noting every batch of frames it is asked to encode."""

    def __init__(self, model):
        self.model, self.batches = model, []
        self.image_size = model.image_size

    def encode(self, frames):
        self.batches.append(np.array(frames))
        return self.model.encode(frames)


def scored_on(embed, fit_count: int = 1500, count: int = 400) -> dict:
    """score_embeddings on an embedding made from states: fitting states from seeds 0.., scored from 10000.."""
    fit, _ = pose_states(0, fit_count, fit_count // 4)
    scored, _ = pose_states(10_000, count, count // 4)
    touching = np.arange(count) >= count - count // 4
    return score_embeddings(embed(fit), fit, embed(scored), scored, touching)


SCALE = np.array([100.0, 100.0, 100.0, 100.0, 1.0, 1.0])  # world px to about unit spread, as sin and cos have


def test_a_random_linear_map_of_the_targets_is_read_near_perfectly():
    mixing = np.random.default_rng(1).normal(size=(6, 32))
    result = scored_on(lambda states: targets_of(states) / SCALE @ mixing)
    for probe in ("linear", "mlp"):
        for subset in ("all", "reset", "touching"):
            for target, r2 in result["r2"][probe][subset].items():
                assert r2 > 0.97, (probe, subset, target, r2)
        low, high = result["r2_interval"][probe]["all"]["block_angle"]
        assert low <= result["r2"][probe]["all"]["block_angle"] <= high
    assert result["angle_error_deg"]["linear"]["all"] < 1


def test_the_mlp_reads_what_the_ridge_cannot():
    """The raw state (angle as a number in [0, 2pi)) mixed linearly: sin and cos of it need the MLP."""
    mixing = np.random.default_rng(2).normal(size=(5, 24))
    result = scored_on(lambda states: states[:, :5] / SCALE[:5] @ mixing)
    assert result["r2"]["linear"]["all"]["agent_xy"] > 0.99 and result["r2"]["linear"]["all"]["block_xy"] > 0.99
    assert result["r2"]["linear"]["all"]["block_angle"] < 0.5
    assert result["r2"]["mlp"]["all"]["block_angle"] > 0.9


def test_noise_is_read_as_nothing():
    rng = np.random.default_rng(3)
    result = scored_on(lambda states: rng.normal(size=(len(states), 32)))
    for probe in ("linear", "mlp"):
        for target, r2 in result["r2"][probe]["all"].items():
            assert r2 < 0.05, (probe, target, r2)
            assert result["r2_interval"][probe]["all"][target][0] < 0.05
    assert result["fit_r2"]["linear"]["agent_xy"] < 0.1  # ridge cannot fit noise either


def test_fitting_and_scored_frames_never_share_a_seed_or_a_frame(model_dir, tmp_path):
    model = RecordingModel(TorchBackend.from_folder(model_dir))
    result = json.loads(json.dumps(jsonable(run_pose(model, seed=5_000_000, frames=24, fit_frames=80,
                                                     out=tmp_path)), allow_nan=False))
    settings = result["settings"]
    assert settings["scored_seeds"] == [5_000_000, 5_000_023] and settings["fit_seeds"] == [5_100_000, 5_100_079]
    assert settings["touching_frames"] == {"scored": 6, "fit": 20} and settings["image_size"] == 32
    encoded = np.concatenate(model.batches)
    assert len(encoded) == 104  # each frame encoded once
    fit, scored = {f.tobytes() for f in encoded[:80]}, {f.tobytes() for f in encoded[80:]}
    assert len(fit) == 80 and len(scored) == 24 and not fit & scored
    for probe in ("linear", "mlp"):
        assert set(result["r2"][probe]) == {"all", "reset", "touching"}
        for subset in result["r2"][probe].values():
            assert set(subset) == set(TARGETS) and all(np.isfinite(list(subset.values())))
    assert json.loads((tmp_path / "pose.json").read_text())["probe"] == "pose"
    assert (tmp_path / "pose.png").stat().st_size > 10_000


def test_bundled_model_reads_the_whole_pose(tmp_path):
    """Agent, block and the block's angle, read linearly from one frame's latent (the card: ridge R^2 0.96 for the
    angle on 4,000 fitted frames; a model that does not see the T's angle, as the earlier pusht-small, reads 0.1)."""
    from export.engine import OnnxEngine

    result = run_pose(OnnxEngine.from_folder(BUNDLED), seed=7_000_000, frames=200, fit_frames=600)
    linear = result["r2"]["linear"]["all"]
    assert linear["agent_xy"] > 0.9 and linear["block_xy"] > 0.9 and linear["block_angle"] > 0.8
    assert result["r2"]["mlp"]["all"]["agent_xy"] > 0.9


def test_cli(model_dir, tmp_path, capsys):
    from lewm_cli import main

    out = tmp_path / "pose"
    args = ["probe", "pose", "--model", str(model_dir), "--out", str(out), "--frames", "16", "--fit-frames", "60"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert set(printed["r2"]) == {"linear", "mlp"} and set(printed["touching_r2"]["mlp"]) == set(TARGETS)
    before = (out / "pose.json").read_bytes()
    assert main(args) == 2 and (out / "pose.json").read_bytes() == before  # not overwritten without --force
    capsys.readouterr()
    for bad in (["--frames", "4"], ["--frames", "200000"], ["--fit-frames", "10"]):
        assert main([*args[:6], *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and bad[0] in err and "Traceback" not in err
