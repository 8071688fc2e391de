"""A lockstep headless run: the video has one frame per env step, the log's numbers are LatentStream's, and the
nearest expert frames shown are those of the current look-ahead."""
import numpy as np

from lewm.stream import LatentStream
from monitor.app import LOOKAHEAD, STREAM_SEED, run_app
from monitor.recorder import count_frames
from monitor.replay import DatasetReplay, SessionReplay
from monitor.session import column, read_log
from scenes.catalog import get_scene
from scenes.dataset import DatasetWriter
from scenes.episode import play_episode

STEPS = 40


def offline_records(engine, bank, scene="seed-artifact", steps=STEPS, seed=None, horizon=10):
    episode = play_episode(get_scene(scene), engine.image_size, steps=steps, seed=seed)
    stream = LatentStream(engine, horizon=horizon, shuffle_bank=bank.shuffle_bank, seed=STREAM_SEED, pca=bank.pca,
                          lookahead=LOOKAHEAD)
    return [stream.step(f, a) for f, a in zip(episode.frames[:steps], episode.actions[:steps])]


def test_lockstep_run_writes_video_and_log_equal_to_the_stream(make_app, engine, bank):
    app = make_app(steps=STEPS)
    out = run_app(app, STEPS)
    assert out["steps"] == STEPS
    assert count_frames(out["video"]) == STEPS
    rows = read_log(out["session"])
    assert [r["env_step"] for r in rows] == list(range(STEPS))
    assert not any(r["dropped"] for r in rows)
    records = offline_records(engine, bank)
    want = np.array([r.surprise for r in records])
    got = column(rows, "surprise")
    assert np.isfinite(want[-5:]).all()  # the run is long enough for surprise to exist
    np.testing.assert_allclose(got, want, atol=1e-6, equal_nan=True)
    want_fe = np.array([r.forecast_error for r in records])
    got_fe = np.array([[[np.nan if v is None else v for v in s] for s in r["forecast_error"]] for r in rows])
    np.testing.assert_allclose(got_fe, want_fe, atol=1e-6, equal_nan=True)
    # the artifact of the scene is logged where it is drawn
    assert [bool(r["artifacts"]) for r in rows] == [25 <= t < 75 for t in range(STEPS)]


def test_replaying_a_session_reproduces_its_numbers(make_app):
    first = make_app(steps=30)
    out = run_app(first, 30)
    original = column(read_log(out["session"]), "surprise")
    replay = SessionReplay(out["session"])
    second = make_app(replay=replay, mode="replay", steps=30)
    assert second.sim.mode == "replay"
    out2 = run_app(second, 30)
    again = column(read_log(out2["session"]), "surprise")
    assert len(again) == 30
    np.testing.assert_allclose(again, original, atol=1e-6, equal_nan=True)


def test_replaying_a_dataset_episode_feeds_its_frames_and_actions_to_the_end(make_app, engine, bank, tmp_path):
    episodes = [play_episode(get_scene("expert"), engine.image_size, steps=20, seed=seed) for seed in (3, 4)]
    with DatasetWriter(tmp_path / "two.h5", engine.image_size) as writer:
        for e in episodes:
            writer.add_episode(e.frames, e.actions, e.states)
    replay = DatasetReplay(tmp_path / "two.h5", episode=1)
    episode = episodes[1]
    assert len(replay) == len(episode.frames) == 21
    app = make_app(replay=replay, mode="replay", steps=len(replay) + 5)
    out = run_app(app, len(replay) + 5)
    assert out["steps"] == len(replay) and replay.finished  # stops at the episode's last frame
    rows = read_log(out["session"])
    assert [r["env_step"] for r in rows] == list(range(len(replay)))
    np.testing.assert_allclose([r["action"] for r in rows[:-1]], episode.actions[:-1], atol=1e-6)
    stream = LatentStream(engine, horizon=10, shuffle_bank=bank.shuffle_bank, seed=STREAM_SEED, pca=bank.pca,
                          lookahead=LOOKAHEAD)
    want = np.array([stream.step(f, a).surprise for f, a in zip(episode.frames[:-1], episode.actions[:-1])])
    assert np.isfinite(want[-5:]).all()  # long enough for surprise to exist
    np.testing.assert_allclose(column(rows[:-1], "surprise"), want, atol=1e-6, equal_nan=True)
    replay.reset()
    assert replay.i == 0 and not replay.finished


def test_the_nearest_expert_frames_are_always_those_of_the_shown_look_ahead(make_app, bank):
    app = make_app(video=False, session=False)
    seen = set()
    for _ in range(STEPS):
        app.sim_tick()
        app.worker.wait_idle()
        app.drain()
        lookahead = app.data.last.record.lookahead
        if lookahead is not None:
            seen.add(id(lookahead))
            assert app.data.lookahead_thumbs == bank.nearest(lookahead).tolist()
    assert len(seen) >= 3  # renewed several times over the run
