"""collect -> read round trip, replay = recorded, and clean failures."""
import h5py
import numpy as np
import pytest

from lewm_cli import main
from scenes.dataset import EpisodeDataset, action_statistics, replay
from lewm_errors import UserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.h5"
    assert main(["collect", "--out", str(path), "--episodes", "3", "--steps", "40", "--image-size", "32",
                 "--mix", "expert=1,random=2"]) == 0
    return path


def test_collect_writes_the_stable_worldmodel_layout(dataset):
    with EpisodeDataset(dataset) as d:
        assert d.num_episodes == 3 and d.pixels.shape == (123, 32, 32, 3)
        assert list(d.ep_len) == [41, 41, 41] and list(d.ep_offset) == [0, 41, 82]
        assert d.file["episode_idx"][45] == 1 and d.file["step_idx"][45] == 4
        last = [d.rows(e).stop - 1 for e in range(3)]
        assert np.all(np.isnan(d.action[last])) and np.all(np.isfinite(np.delete(d.action, last, axis=0)))
        assert np.array_equal(d.proprio, d.state[:, [0, 1, 5, 6]])
        mean, std = action_statistics(d)
        assert mean.shape == (2,) and np.all(std > 0)
    assert not dataset.with_name(dataset.name + ".partial").exists()


def test_frames_are_the_drawn_states(dataset):
    from scenes.render import draw_state

    with EpisodeDataset(dataset) as d:
        r = d.rows(2)
        frames = d.frames(2)
        for t in (0, 17, 40):
            assert np.array_equal(frames[t], draw_state(d.state[r][t], 32))


def test_replay_reproduces_the_recorded_states(dataset):
    with EpisodeDataset(dataset) as d:
        for e in range(3):
            r = d.rows(e)
            assert np.array_equal(replay(d.state[r][0], d.action[r]), d.state[r])


def test_a_missing_column_is_named(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["pixels"] = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(UserError, match="action"):
        EpisodeDataset(path)


def test_unwritable_output_is_one_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["collect", "--out", str(blocker / "d.h5"), "--episodes", "1", "--steps", "5"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not list(tmp_path.glob("**/*.partial"))


def test_interrupted_collection_leaves_no_whole_looking_file(tmp_path, monkeypatch):
    import scenes.collect as collect

    calls = {"n": 0}
    real = collect.play_episode

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(collect, "play_episode", failing)
    with pytest.raises(KeyboardInterrupt):
        collect.collect(tmp_path / "d.h5", 3, 5, 16, 0, {"random": 1.0})
    assert list(tmp_path.iterdir()) == []


def test_unknown_policy_in_mix_is_refused(tmp_path, capsys):
    assert main(["collect", "--out", str(tmp_path / "x.h5"), "--mix", "chaos=1"]) == 2
    assert "unknown policy 'chaos'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_without_pixels_draws_the_frames_collect_stores_byte_for_byte(tmp_path):
    stored, drawn = tmp_path / "stored.h5", tmp_path / "drawn.h5"
    for path, pixels in ((stored, "stored"), (drawn, "drawn")):
        assert main(["collect", "--out", str(path), "--episodes", "3", "--steps", "30", "--image-size", "32",
                     "--seed", "7", "--pixels", pixels, "--mix", "noisy-expert:0.1=1,noisy-expert:0.5=1,random=1"]) == 0
    with EpisodeDataset(stored) as s, EpisodeDataset(drawn) as d:
        assert d.drawn and not s.drawn and "pixels" not in d.file
        assert np.array_equal(d.state, s.state) and np.array_equal(d.action, s.action, equal_nan=True)
        assert np.array_equal(d.load_pixels(), s.load_pixels())
        rows = np.array([[5, 3], [80, 5]])  # any rows, in any order, repeated
        assert np.array_equal(d.frames_at(rows), s.frames_at(rows))
    with EpisodeDataset(drawn, image_size=48) as d:  # a drawn file serves any size
        assert d.frames(1).shape == (31, 48, 48, 3)


def test_noise_levels_name_the_noisy_experts_action_noise(tmp_path):
    from scenes.policies import make_policy

    state = np.array([100.0, 100.0, 300.0, 300.0, 1.0, 0.0, 0.0])
    quiet, loud = make_policy("noisy-expert:0.05", seed=1), make_policy("noisy-expert:0.8", seed=1)
    expert = make_policy("expert", seed=1)
    clean = expert(state)
    assert np.abs(quiet(state) - clean).max() < np.abs(loud(state) - clean).max()
    for bad in ("noisy-expert:loud", "noisy-expert:-1", "noisy-expert:nan", "random:0.2"):
        with pytest.raises(UserError, match="noise level|only noisy-expert"):
            make_policy(bad)
