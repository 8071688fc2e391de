"""Tuning the predictor on the frozen encoder: the clips it learns from, what trains and what stays, and the command."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lewm.checkpoint import load_model_folder
from lewm.config import ModelConfig
from lewm.training.predictor_tuning import (Clips, TuneSettings, clip_losses, episode_clips, plan_clips, plan_jobs,
                                            rollout_error)
from lewm_cli import main
from lewm_errors import UserError
from scenes.collect import collect
from scenes.dataset import EpisodeDataset


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from export.onnx_export import export_model_folder, make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path_factory.mktemp("tune") / "tiny", seed=0)
    export_model_folder(folder)
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_folder):
    path = tmp_path_factory.mktemp("tune-data") / "d.h5"
    size = ModelConfig.load(tiny_folder / "config.json").image_size
    collect(path, episodes=4, steps=60, image_size=size, seed=0, mix={"expert": 1.0})
    return path


def test_episode_clips_are_latents_one_model_step_apart_with_the_blocks_between_them(tiny_folder, dataset, tmp_path):
    model = load_model_folder(tiny_folder)
    skip, length = model.config.frameskip, model.config.history + 5
    with EpisodeDataset(dataset, image_size=model.config.image_size) as data:
        clips = episode_clips(model, data, length, 0.25, tmp_path / "latents.npz", {"k": 1})
        first = data.rows(0).start
        frames = data.frames_at(first + skip * np.arange(length))
        actions = np.asarray(data.action[first:first + skip * (length - 1)], np.float32)
        per_episode = [(data.ep_len[e] + skip - 1) // skip - length + 1 for e in range(data.num_episodes)]
    with torch.no_grad():
        z = model.encode_frames(torch.from_numpy(frames)).numpy()
    assert clips.z.shape == (sum(per_episode), length, model.config.latent_dim)
    assert np.allclose(clips.z[0], z, atol=1e-5)
    assert np.array_equal(clips.blocks[0], actions.reshape(length - 1, -1))
    assert clips.held.sum() == per_episode[-1]  # the last of 4 episodes


def test_the_latents_are_cached_for_the_same_key_only(tiny_folder, dataset, tmp_path):
    model = load_model_folder(tiny_folder)
    cache = tmp_path / "latents.npz"
    with EpisodeDataset(dataset, image_size=model.config.image_size) as data:
        first = episode_clips(model, data, 8, 0.25, cache, {"k": 1})
        stamp = cache.stat().st_mtime_ns
        episode_clips(model, data, 8, 0.25, cache, {"k": 1})
        assert cache.stat().st_mtime_ns == stamp
        again = episode_clips(model, data, 8, 0.25, cache, {"k": 2})
    assert cache.stat().st_mtime_ns != stamp
    assert np.allclose(first.z, again.z)


def test_the_losses_train_the_predictor_and_leave_the_encoder(tiny_folder):
    model = load_model_folder(tiny_folder)
    length = model.config.history + 5
    z = torch.randn(6, length, model.config.latent_dim)
    blocks = torch.randn(6, length - 1, model.config.action_block_dim)
    model.train()
    losses = clip_losses(model, z, blocks, 5)
    assert set(losses) == {"one_step", "rollout_from_1", "rollout_from_history"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    # the rollout from one latent is the planner's: the same numbers as the model's rollout
    model.eval()
    with torch.no_grad():
        rolled = model.rollout(z[:, :1], blocks[:, :5])
        one = clip_losses(model, z, blocks, 5)["rollout_from_1"]
    assert torch.isclose(one, ((rolled - z[:, 1:6]) ** 2).mean())


def test_rollout_error_is_one_for_a_model_that_copies_the_last_latent(tiny_folder):
    model = load_model_folder(tiny_folder)
    z = np.random.default_rng(0).standard_normal((5, 8, model.config.latent_dim)).astype(np.float32)
    clips = Clips(z, np.zeros((5, 7, model.config.action_block_dim), np.float32), np.ones(5, bool), np.arange(5))
    model.rollout = lambda context, blocks: context[:, -1:].expand(-1, blocks.shape[1], -1)
    assert rollout_error(model, clips, np.arange(5), 5) == [1.0] * 5


def test_plan_clips_are_what_the_model_planned_and_what_the_simulator_then_did(tiny_folder, dataset, tmp_path):
    from lewm.planning.planner import LatentPlanner, PlannerSettings
    from lewm.torch_backend import TorchBackend
    from scenes.dataset import replay
    from scenes.render import draw_states

    model = load_model_folder(tiny_folder)
    skip, horizon = model.config.frameskip, 2
    settings = TuneSettings(branches=0, branch_share=0.0, plans=3, plan_share=0.25, plan_solvers="cem",
                            horizon=horizon)
    with EpisodeDataset(dataset, image_size=model.config.image_size) as data:
        episodes = episode_clips(model, data, model.config.history + horizon, 0.25, tmp_path / "latents.npz", {"k": 1})
        clips, gap, _ = plan_clips(model, tiny_folder, data, episodes, settings, tmp_path / "plans.npz", {"k": 1}, 1)
        picks, jobs = plan_jobs(data, episodes, 3, 1, horizon, skip, settings.seed)
        start = np.asarray(data.state[episodes.start_row[picks[0]]], np.float64)
    assert len(clips.z) == 3 and set(gap) == {"train", "held_out"}
    # the first blocks are the plan the model makes from the clip's start toward its latent `horizon` steps on
    planner = LatentPlanner(TorchBackend.from_folder(tiny_folder),
                            PlannerSettings(horizon=horizon, receding_horizon=horizon))
    plan = planner.plan(episodes.z[picks[0], :1], np.zeros((0, planner.block_dim), np.float32),
                        episodes.z[picks[0], horizon], np.random.default_rng(jobs[0][4]))
    assert np.allclose(clips.blocks[0, :horizon], plan.blocks)
    assert np.array_equal(clips.start_row, episodes.start_row[picks])
    # and the latents are those of the frames the simulator reached under the whole clip's actions
    states = replay(start, clips.blocks[0].reshape(-1, model.config.action_dim))[::skip]
    with torch.no_grad():
        z = model.encode_frames(torch.from_numpy(draw_states(states, model.config.image_size))).numpy()
    assert np.allclose(clips.z[0], z, atol=1e-4)
    assert np.abs(clips.z[0, 0] - episodes.z[picks[0], 0]).max() < 0.01  # the same state, set anew


def test_plans_with_an_uncertainty_penalty_need_an_ensemble_and_say_so_before_any_work(tiny_folder, dataset,
                                                                                      tmp_path):
    from lewm.training.predictor_tuning import tune_predictor

    settings = TuneSettings(steps=1, branches=0, branch_share=0.0, plans=2, plan_share=0.2, plan_solvers="icem+d0.3")
    with pytest.raises(UserError, match="train-ensemble"):
        tune_predictor(tiny_folder, dataset, tmp_path, settings, log=lambda line: None)
    assert not (tmp_path / "latents.npz").exists()


def test_settings_refuse_a_branch_share_without_branches():
    with pytest.raises(UserError, match="--branches"):
        TuneSettings(branches=0, branch_share=0.3)


def test_tune_predictor_writes_a_tuned_exported_copy_and_keeps_the_encoder(tiny_folder, dataset, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "tuned"
    args = ["tune-predictor", "--model", str(tiny_folder), "--data", str(dataset), "--run", str(run), "--out",
            str(out), "--steps", "30", "--batch-size", "8", "--branches", "12", "--plans", "6", "--plan-solvers", "cem",
            "--threads", "1"]
    assert main(args) == 0
    before, after = load_file(tiny_folder / "weights.safetensors"), load_file(out / "weights.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "projector.")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("predictor."))
    section = json.loads((out / "config.json").read_text())["predictor_tuning"]
    assert section["steps"] == 30 and section["clips"]["branches"] > 0 and section["clips"]["plans"] > 0
    assert set(section["plans_realised_over_forecast_end_cost"]) == {"train", "held_out", "held_out_after"}
    assert section["command"].startswith(f"lewm tune-predictor --model {tiny_folder}")
    assert section["command"].endswith("--plans 6 --plan-solvers cem")
    assert (out / "rollout.onnx").stat().st_mtime > (tiny_folder / "rollout.onnx").stat().st_mtime
    assert "is ready" in capsys.readouterr().out
    assert main(args) == 2  # the run holds a checkpoint and --out holds files: refused, nothing overwritten
    assert "--force" in capsys.readouterr().err


def test_a_stopped_tuning_resumes_from_its_checkpoint(tiny_folder, dataset, tmp_path):
    from lewm.training.predictor_tuning import tune_predictor

    settings = dict(batch_size=8, branches=0, branch_share=0.0, horizon=2, checkpoint_every=5)
    tune_predictor(tiny_folder, dataset, tmp_path, TuneSettings(steps=10, **settings), log=lambda line: None)
    with pytest.raises(UserError, match="resume"):
        tune_predictor(tiny_folder, dataset, tmp_path, TuneSettings(steps=10, **settings), log=lambda line: None)
    _, facts = tune_predictor(tiny_folder, dataset, tmp_path, TuneSettings(steps=15, **settings), resume=True,
                              log=lambda line: None)
    assert facts["steps"] == 15
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [10, 15]  # each run's closing figures; no step logged twice


def test_a_run_ended_by_its_time_budget_reports_the_steps_it_took(tiny_folder, dataset, tmp_path):
    from lewm.training.predictor_tuning import tune_predictor

    settings = TuneSettings(steps=50, batch_size=8, branches=0, branch_share=0.0, horizon=2,
                            time_budget_minutes=1e-9)
    _, facts = tune_predictor(tiny_folder, dataset, tmp_path, settings, log=lambda line: None)
    assert facts["steps"] == 0 and facts["settings"]["steps"] == 50
