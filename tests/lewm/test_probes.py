"""The probes on a tiny random model and a few very short episodes: each JSON has its keys and finite numbers,
the horizon probe's numbers are the stream's, and `lewm probe` runs end to end."""
import json
import math

import numpy as np
import pytest
import torch

from lewm.checkpoint import save_model_folder
from lewm.config import preset
from lewm.model import LeWM
from lewm.probes import (run_actions, run_horizon, run_latent, run_physics, run_stream, run_surprise, run_voe,
                         scene_episodes)
from lewm.probes.common import dataset_episodes, jsonable, shuffle_banks
from lewm.torch_backend import TorchBackend

SEED = 1_000_000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = preset("tiny", action_mean=[0.0, 0.0], action_std=[0.2, 0.2])
    model = LeWM(config)
    with torch.no_grad():  # AdaLN-zero: a fresh predictor ignores its actions; make them matter
        for name, p in model.named_parameters():
            if "adaLN_modulation" in name:
                p.normal_(0, 0.3)
    return save_model_folder(model.eval(), config, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def model(model_dir):
    return TorchBackend.from_folder(model_dir)


@pytest.fixture(scope="module")
def episodes():
    return scene_episodes("expert", 2, SEED, 32, steps=35)


def as_json(result: dict) -> dict:
    """What the probe writes: strict JSON (NaN would fail here)."""
    return json.loads(json.dumps(jsonable(result), allow_nan=False))


def assert_finite(values):
    values = np.asarray(values, dtype=float)  # None -> NaN
    assert values.size and np.all(np.isfinite(values)), values


def test_horizon_is_the_stream(model, episodes):
    H = 3
    result = as_json(run_horizon(model, episodes, horizon=H))
    for key in ("mean", "median", "std", "q25", "q75", "count", "copy_last_mean", "copy_last_median",
                "ratio_to_copy_last"):
        assert len(result[key]) == H
        assert_finite(result[key])
    assert result["horizons"] == [1, 2, 3] and result["definitions"]
    # h=1 from a full context: the one-step surprise of every frame t with t - 5 >= 5 * (history - 1)
    runs = run_stream(model, episodes, horizon=H)
    first = 5 * model.history
    surprise = np.concatenate([r.surprise[first:, 0] for r in runs])
    assert result["count"][0] == len(surprise)
    assert result["mean"][0] == pytest.approx(float(np.mean(surprise)), rel=1e-9)
    copy = np.concatenate([r.copy_last_error[first:, 0] for r in runs])
    assert result["copy_last_mean"][0] == pytest.approx(float(np.mean(copy)), rel=1e-9)
    # a start at frame s contributes to h when s + 5h is in the episode: counts fall by 5 per episode per step
    assert np.diff(result["count"]).tolist() == [-5 * len(episodes)] * (H - 1)


def test_actions_and_latent_share_one_run(model, episodes):
    runs = run_stream(model, episodes, horizon=2)
    actions = as_json(run_actions(model, episodes, horizon=2, runs=runs))
    for stream in ("real", "shuffled", "zero"):
        assert_finite(actions["mean"][stream])
    for stream in ("shuffled", "zero"):
        assert_finite(actions["ratio_to_real"][stream])
        assert_finite(actions["gap"][stream])
    assert actions["mean"]["real"] == pytest.approx(as_json(run_horizon(model, episodes, 2, runs=runs))["mean"])
    assert actions["ratio_to_real"]["zero"][0] != pytest.approx(1.0)  # the actions reach the predictor

    latent = as_json(run_latent(model, episodes, runs=runs))
    assert latent["points"] == sum(len(range(0, len(e.frames), 5)) for e in episodes)
    for key in ("time_rho_mean", "time_rho_median", "silhouette_pca2", "silhouette_latent"):
        assert_finite(latent[key])
    assert 0 <= latent["time_rho_mean"] <= 1 and -1 <= latent["silhouette_pca2"] <= 1


def test_shuffle_bank_holds_only_other_episodes(episodes):
    banks = shuffle_banks(episodes, 5)
    own = {tuple(b) for b in episodes[0].actions[:35].reshape(7, 10)}
    assert len(banks[0]) == 7 and not own & {tuple(b) for b in banks[0]}


def test_surprise(model):
    episodes = scene_episodes("seed-artifact", 2, SEED, 32, steps=70)
    result = as_json(run_surprise(model, episodes))
    assert result["window"] == [5, 14] and result["steps"] == list(range(15))
    conditions = ("baseline", "perturbed", "perturbed_context")
    for c in conditions:
        assert result["mean"][c][0] is None  # no prediction at step 0
        assert_finite(result["mean"][c][1:])
        assert_finite([result["window_mean"][c], result["peak"][c]["value"]])
        assert 5 <= result["peak"][c]["step"] <= 14
    assert_finite(list(result["ratio_to_baseline"].values()))
    assert set(result["return_step"]) == {"perturbed", "perturbed_context"}
    # before the square enters the three conditions see the same frames
    for c in conditions[1:]:
        assert result["mean"][c][1:5] == pytest.approx(result["mean"]["baseline"][1:5])
        assert result["mean"][c][6] != pytest.approx(result["mean"]["baseline"][6])


def test_voe(model, tmp_path):
    from lewm.probes.voe import EVENTS

    episodes = scene_episodes("expert", 3, SEED, 32, steps=40)
    result = as_json(run_voe(model, episodes, SEED, out=tmp_path))
    assert (tmp_path / "voe.png").stat().st_size > 0
    assert json.loads((tmp_path / "voe.json").read_text()) == result
    assert result["events"] == list(EVENTS) and result["window"] == [0, 9]
    offsets = result["offsets"]
    assert offsets == list(range(-10, 21))
    before, at = offsets.index(-1), offsets.index(0)
    for kind in EVENTS:
        r = result["results"][kind]
        for s in ("max", "mean"):
            assert 0 <= r["auroc"][s] <= 1 and 0 <= r["pairwise_accuracy"][s] <= 1
            assert 0 <= r["ttest"][s]["p"] <= 1 and 0 <= r["wilcoxon"][s]["p"] <= 1
            assert_finite([r["mean_ratio"][s], r["ratio_of_means"][s], r["ttest"][s]["t"]])
        trials = r["trials"]
        assert trials and sorted([t["episode"] for t in trials] + r["skipped"]) == [0, 1, 2]
        assert r["skipped"] == [] or kind in ("rotation", "both")  # only a turn can be blocked by the agent
        assert all(15 <= t["event_step"] <= 31 for t in trials)  # full context before, the window inside
        for t in trials:
            assert t["score"]["event"]["max"] >= t["score"]["event"]["mean"] > 0
        shifts, turns = [t["shift"] for t in trials], [abs(t["turn_deg"]) for t in trials]
        assert all(50 <= x <= 150 for x in shifts) == (kind in ("translation", "both"))
        assert all(45 <= x <= 90 for x in turns) == (kind in ("rotation", "both"))
        # the twins see the same frames up to the event, and different ones from it on
        event, clean = r["curve"]["event"]["mean"], r["curve"]["clean"]["mean"]
        assert event[:before + 1] == pytest.approx(clean[:before + 1], abs=0)
        assert event[at] != pytest.approx(clean[at], abs=1e-6)


def test_voe_twins(episodes):
    from lewm.probes.voe import draw_event, replay_twin
    from scenes.pusht import angle_difference, block_centroid, moved_block_pose

    episode = episodes[0]
    steps = len(episode.frames) - 1
    clean = replay_twin(episode, 32, steps)
    np.testing.assert_array_equal(clean.frames, episode.frames)  # no event: the clean twin is the episode
    np.testing.assert_array_equal(clean.states, episode.states)
    rng = np.random.default_rng(0)
    for kind in ("translation", "rotation", "both", "colour"):
        event = draw_event(kind, clean.states, 15, 25, rng)
        e = event.step
        twin = replay_twin(episode, 32, steps, event)
        assert np.array_equal(twin.frames[:e], clean.frames[:e])
        assert not np.array_equal(twin.frames[e], clean.frames[e])
        np.testing.assert_array_equal(twin.states[:, :2], clean.states[:, :2])  # the same actions, the same path
        if kind == "colour":
            np.testing.assert_array_equal(twin.states, clean.states)  # a new look, the same world
            continue
        expected = moved_block_pose(clean.states[e - 1, 2:5], event.shift, event.turn)
        np.testing.assert_allclose(block_centroid(twin.states[e, 2:5]), block_centroid(expected), atol=1e-9)
        assert angle_difference(twin.states[e, 4], expected[2]) < 1e-9
    rotation = draw_event("rotation", clean.states, 15, 25, rng)
    twin = replay_twin(episode, 32, steps, rotation)
    e = rotation.step
    np.testing.assert_allclose(block_centroid(twin.states[e, 2:5]), block_centroid(clean.states[e - 1, 2:5]),
                               atol=1e-9)  # rotation only: the centroid stays
    assert math.radians(45) <= angle_difference(twin.states[e, 4], clean.states[e - 1, 4]) <= math.radians(90)


def test_voe_needs_long_enough_episodes(model):
    from lewm_errors import UserError

    with pytest.raises(UserError, match="too short"):
        run_voe(model, scene_episodes("expert", 1, SEED, 32, steps=20), SEED)


def test_physics(model, episodes):
    test = scene_episodes("random", 2, SEED, 32, steps=20)
    result = as_json(run_physics(model, episodes, test))
    assert set(result["r2"]) == {"agent_xy", "block_xy", "block_angle"}
    assert_finite(list(result["r2"].values()) + list(result["r2_per_column"].values()))
    assert result["test_points"] == 2 * 21 and np.isfinite(result["angle_error_deg"])
    assert set(result["r2_interval"]) == set(result["r2"])
    assert np.isfinite(result["block_centre_r2"])
    curve = result["fit_curve"]
    counts = [point["train_episodes"] for point in curve]
    assert counts == sorted(set(counts)) and counts[-1] == len(episodes) and counts[0] == max(1, len(episodes) // 4)
    # every point of the curve, refitted here: the scaler on all fitting frames, the probe's alpha, the first
    # `count` fitting episodes, scored on the test frames (the last point is the probe itself)
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    z_fit = [model.encode(e.frames) for e in episodes]
    scaler = StandardScaler().fit(np.concatenate(z_fit))
    x_test = scaler.transform(np.concatenate([model.encode(e.frames) for e in test]))
    states = np.concatenate([e.states for e in test])
    y_test = np.concatenate([states[:, 0:2], states[:, 2:4], np.sin(states[:, 4:5]), np.cos(states[:, 4:5])], 1)
    for point in curve:
        count = point["train_episodes"]
        x_fit = scaler.transform(np.concatenate(z_fit[:count]))
        fit_states = np.concatenate([e.states for e in episodes[:count]])
        y_fit = np.concatenate([fit_states[:, 0:2], fit_states[:, 2:4], np.sin(fit_states[:, 4:5]),
                                np.cos(fit_states[:, 4:5])], 1)
        per_column = r2_score(y_test, Ridge(alpha=result["alpha"], solver="svd").fit(x_fit, y_fit).predict(x_test),
                              multioutput="raw_values")
        expected = dict(zip(("agent_xy", "block_xy", "block_angle"), per_column.reshape(3, 2).mean(axis=1)))
        assert point["r2"] == pytest.approx(expected, abs=1e-6), count
    assert curve[-1]["r2"] == pytest.approx(result["r2"])
    by_step = result["block_error_by_step"]
    assert list(by_step) == ["0-9", "10-29"]  # 21 frames per episode: the 30+ group is empty
    assert by_step["0-9"]["frame_share"] == pytest.approx(10 / 21)
    for share in ("frame_share", "squared_error_share"):
        assert sum(g[share] for g in by_step.values()) == pytest.approx(1)


def test_r2_interval_resamples_whole_episodes():
    from lewm.probes.physics import r2_by_group, r2_interval

    rng = np.random.default_rng(0)
    episodes, length = 10, 100
    true = rng.normal(size=(episodes * length, 6))
    error_scale = rng.uniform(0.1, 2, (episodes, 1)).repeat(length, 0)  # some episodes are read far worse
    predicted = true + rng.normal(size=true.shape) * error_scale
    episode = np.arange(episodes).repeat(length)
    by_episode = r2_interval(true, predicted, episode)
    assert by_episode == r2_interval(true, predicted, episode)  # seeded
    by_frame = r2_interval(true, predicted, np.arange(len(true)))  # as if every frame were its own episode
    for group, r2 in r2_by_group(true, predicted).items():
        assert by_episode[group][0] < r2 < by_episode[group][1]
        # which episodes happen to be tested matters far more than which frames
        assert np.diff(by_episode[group]) > 2 * np.diff(by_frame[group])
    single = r2_interval(true[:length], predicted[:length], episode[:length])  # one episode: nothing to resample
    assert all(low == high for low, high in single.values())


def test_t_centre_is_the_outline_centroid():
    from lewm.probes.physics import t_centre
    from scenes.pusht import t_polygon

    rng = np.random.default_rng(0)
    states = np.zeros((5, 7))
    states[:, 2:4] = rng.uniform(100, 400, (5, 2))
    states[:, 4] = rng.uniform(0, 2 * np.pi, 5)
    expected = [t_polygon(*s[2:5]).centroid.coords[0] for s in states]
    np.testing.assert_allclose(t_centre(states), expected, atol=1e-9)
    assert np.hypot(*(t_centre(states) - states[:, 2:4]).T) == pytest.approx(np.full(5, 40.714), abs=1e-3)


def test_dataset_episodes(tmp_path, episodes):
    from scenes.dataset import DatasetWriter

    with DatasetWriter(tmp_path / "d.h5", 32) as writer:
        for e in episodes:
            writer.add_episode(e.frames, e.actions, e.states)
    read = dataset_episodes(tmp_path / "d.h5", 1, 32, first=1, steps=20)[0]
    np.testing.assert_array_equal(read.frames, episodes[1].frames[:21])
    np.testing.assert_array_equal(read.actions[:20], episodes[1].actions[:20])
    assert np.isnan(read.actions[20]).all()


def test_cli_all(model_dir, tmp_path):
    from lewm_cli import main

    out = tmp_path / "probes"
    assert main(["probe", "all", "--model", str(model_dir), "--out", str(out), "--episodes", "2",
                 "--fit-episodes", "4", "--steps", "30", "--horizon", "2", "--frames", "16", "--fit-frames", "60"]) == 0
    for name in ("latent", "horizon", "surprise", "actions", "physics", "pose", "voe"):
        assert (out / f"{name}.png").stat().st_size > 0
        assert json.loads((out / f"{name}.json").read_text())["probe"] == name
    physics = json.loads((out / "physics.json").read_text())
    assert (physics["train_episodes"], physics["test_episodes"]) == (4, 2)
    assert physics["sources"] == {"train": "expert seeds 1100000..1100003", "test": "expert seeds 1000000..1000001"}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["voe"]) == {"translation", "rotation", "both", "colour"}
    assert json.loads((out / "pose.json").read_text())["settings"]["frames"] == 16
    assert set(summary["pose"]["r2"]["mlp"]) == {"agent_xy", "block_xy", "block_angle"}
    assert summary["horizon"]["mean"]["h1"] > 0 and set(summary["physics"]["r2"]) == {
        "agent_xy", "block_xy", "block_angle"}
    # a second run into the same folder keeps the first one's files unless asked
    before = (out / "latent.json").read_bytes()
    again = ["probe", "latent", "--model", str(model_dir), "--out", str(out), "--episodes", "1", "--steps", "10"]
    assert main(again) == 2 and (out / "latent.json").read_bytes() == before
    assert main(again + ["--force"]) == 0 and (out / "latent.json").read_bytes() != before


def test_cli_user_errors(tmp_path):
    from lewm_cli import main

    assert main(["probe", "latent", "--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2


def test_onnx_backend_gives_the_same_numbers(model_dir, model, episodes, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    from export.engine import OnnxEngine
    from export.onnx_export import export_model_folder

    folder = shutil.copytree(model_dir, tmp_path / "model")
    export_model_folder(folder, verify=False)
    onnx = OnnxEngine.from_folder(folder)
    assert run_horizon(onnx, episodes, horizon=2)["mean"] == pytest.approx(
        run_horizon(model, episodes, horizon=2)["mean"], abs=1e-4)
