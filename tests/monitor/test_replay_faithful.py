"""A session replay reproduces what was recorded, bit for bit: it runs with the session's settings, resets the stream
where the recording did (episode starts, dropped frames), and the live edits of one episode never reach the next."""
import json
import threading

import numpy as np
import pytest

from lewm_cli import main as lewm
from monitor.panels import style
from monitor.replay import SessionReplay
from monitor.session import read_log, read_meta
from monitor.sim import Simulator
from scenes.catalog import get_scene

# What a replay must give back unchanged (the rest: timings, the mode "replay", the replay's own seed).
SAME = ("env_step", "seq", "episode_start", "dropped", "state", "action", "artifacts", "block_color", "stream_step",
        "surprise", "uncertainty", "forecast_error", "copy_last_error", "pca", "active_stream", "seed")


class GatedEngine:
    """The real engine behind a gate: while the gate is shut the model is slow (encode waits), so frames submitted
    meanwhile are dropped exactly where the script says."""

    def __init__(self, engine):
        self.engine = engine
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def encode(self, frames):
        self.entered.set()
        assert self.gate.wait(30)
        return self.engine.encode(frames)


def session_meta(tiny_model, reference_sizes):
    episodes, steps = reference_sizes
    return {"model": str(tiny_model), "precision": "fp32", "reference_episodes": episodes,
            "reference_steps": steps}


def tick(app, n=1):
    for _ in range(n):
        app.sim_tick()
        app.worker.wait_idle()
        app.drain()


def replay(folder, tmp_path, *flags):
    """Replay a session through the command, as a user would; returns (exit code, the new session folder)."""
    out = tmp_path / "replays"
    before = set(out.glob("*")) if out.exists() else set()
    code = lewm(["monitor", "--replay", str(folder), "--headless", "--sessions", str(out), *flags])
    made = sorted(set(out.glob("*")) - before) if out.exists() else []
    return code, (made[0] if made else None)


def assert_same_rows(original, again):
    assert len(again) == len(original)
    for a, b in zip(original, again):
        for key in SAME:
            assert a.get(key) == b.get(key), (a["seq"], key, a.get(key), b.get(key))


def test_a_scripted_session_replays_bit_for_bit(make_app, engine, bank, tiny_model, reference_sizes, tmp_path):
    gated = GatedEngine(engine)
    from monitor.app import MonitorApp, Options

    app = MonitorApp(gated, bank, Options(headless=False, lockstep=False, sessions=str(tmp_path / "live"),
                                          meta=session_meta(tiny_model, reference_sizes)))
    try:
        sim = app.sim
        tick(app, 12)
        placed = sim.place_artifact(60.0, 60.0)  # a click: an artifact of the current kind and colour
        tick(app, 3)
        sim.move_artifact(placed, 90.0, 80.0)  # dragged
        tick(app, 2)
        app.perform("cycle_color")  # the selected one recoloured
        app.perform("cycle_kind")
        sim.place_artifact(150.0, 40.0)  # a disc
        tick(app, 10)
        square = sim.artifact_under(*sim.scene.artifacts[0].center(sim.env_step))  # the scene's sliding square
        assert square is not None
        sim.move_artifact(square, 112.0, 30.0)
        tick(app, 3)
        app.perform("teleport_block")
        tick(app, 4)
        app.perform("cycle_stream")  # shuffled
        tick(app, 6)
        for speed, dt in (("speed_2", 0.05), ("speed_half", 0.2), ("speed_1", 0.1)):  # one env step each
            app.perform(speed)
            app.update(dt)
            app.worker.wait_idle()
            app.drain()
            app.perform("cycle_stream")  # zero, real, shuffled
        # the model falls behind: the frames submitted while it works on one are dropped
        gated.gate.clear()
        gated.entered.clear()
        app.sim_tick()
        assert gated.entered.wait(30)
        app.sim_tick()
        app.sim_tick()
        app.sim_tick()
        gated.gate.set()
        app.worker.wait_idle()
        app.drain()
        assert app.worker.dropped == 2
        tick(app, 12)
        app.perform("new_seed")  # N: a second episode
        tick(app, 14)
        app.perform("cycle_stream")  # zero
        app.perform("cycle_mode")  # manual: the agent follows the mouse
        sim.mouse_target = np.array([300.0, 200.0])
        tick(app, 6)
        app.perform("new_seed")  # a third episode
        tick(app, 12)
    finally:
        out = app.close()
    original = read_log(out["session"])
    assert sum(r["episode_start"] for r in original) == 3
    assert sum(r["dropped"] for r in original) == 2
    assert {r.get("active_stream") for r in original} == {"real", "shuffled", "zero", None}
    assert np.isfinite([s for r in original[-5:] for s in r["surprise"]]).all()
    assert np.isfinite([u for r in original[-5:] for u in r["uncertainty"]]).all()  # the model's, at every step
    assert app.data.uncertainty[-1].tolist() == original[-1]["uncertainty"]  # the chart draws what the log holds

    code, folder = replay(out["session"], tmp_path)
    assert code == 0
    assert_same_rows(original, read_log(folder))
    assert len({r["seed"] for r in original}) == 3  # each episode's own seed, in the replay's rows too

    again = make_app(replay=SessionReplay(out["session"]), mode="replay", meta=session_meta(tiny_model,
                                                                                            reference_sizes))
    tick(again, len(original))
    assert again.worker.dropped == 2 and ("dropped 2", style.SPIKE) in again.status_fields()


def test_a_replay_refuses_to_guess(make_app, tiny_model, reference_sizes, tmp_path, capsys):
    """No session.json, an unreadable one, or a recorded model folder that is gone: one line saying what is
    missing and how to go on; an explicit --model replays on another model and the replay records it."""
    import shutil

    from monitor.app import run_app

    out = run_app(make_app(scene="expert", seed=2, meta=session_meta(tiny_model, reference_sizes)), 8)
    session = out["session"]
    meta = json.loads((session / "session.json").read_text())
    capsys.readouterr()
    cases = {"missing": None, "corrupt": '{"scene": ',
             "model gone": json.dumps(dict(meta, model=str(tmp_path / "gone")))}
    for case, text in cases.items():
        copy = tmp_path / case.replace(" ", "-")
        shutil.copytree(session, copy)
        if text is None:
            (copy / "session.json").unlink()
        else:
            (copy / "session.json").write_text(text)
        code, folder = replay(copy, tmp_path)
        err = capsys.readouterr().err
        assert code == 2 and folder is None and err.count("\n") == 1, (case, err)
        says = "pass --model DIR to replay it on another model" if case == "model gone" else "session.json"
        assert says in err and "Traceback" not in err, (case, err)
    code, folder = replay(tmp_path / "model-gone", tmp_path, "--model", str(tiny_model))
    assert code == 0
    assert read_meta(folder)["model_replaced"] == {"recorded": str(tmp_path / "gone"),
                                                   "replayed_on": str(tiny_model.resolve())}
    assert_same_rows(read_log(session), read_log(folder))


def test_a_replay_takes_the_sessions_scene_and_refuses_contradicting_flags(make_app, tiny_model, reference_sizes,
                                                                            tmp_path, capsys):
    from monitor.app import run_app

    app = make_app(scene="expert", seed=5, meta=session_meta(tiny_model, reference_sizes))
    out = run_app(app, 30)
    original = read_log(out["session"])
    assert not any(r["artifacts"] for r in original)

    code, folder = replay(out["session"], tmp_path)  # no --scene: the session's, not the default's square
    assert code == 0
    meta = read_meta(folder)
    assert meta["scene"] == "expert" and "expert" in folder.name
    again = read_log(folder)
    assert not any(r["artifacts"] for r in again)
    assert_same_rows(original, again)

    capsys.readouterr()
    for flags in (["--scene", "seed-artifact"], ["--horizon", "4"], ["--seed", "6"], ["--precision", "int8"]):
        code, folder = replay(out["session"], tmp_path, *flags)
        err = capsys.readouterr().err
        assert code == 2 and folder is None, flags
        assert flags[0] in err and "session's" in err and err.count("\n") == 1, err


def test_the_replay_resets_the_stream_where_the_recording_did(make_app, tiny_model, reference_sizes, tmp_path):
    app = make_app(meta=session_meta(tiny_model, reference_sizes))
    tick(app, 20)
    app.perform("new_seed")
    tick(app, 20)
    out = app.close()
    original = read_log(out["session"])
    assert [r["seq"] for r in original if r["episode_start"]] == [0, 20]
    code, folder = replay(out["session"], tmp_path)
    assert code == 0
    assert_same_rows(original, read_log(folder))


def test_live_artifact_edits_stay_in_their_episode():
    scene = get_scene("seed-artifact")
    before = json.dumps([a.to_dict() for a in scene.artifacts])
    sim = Simulator(scene, 64)
    square = sim.artifacts[0]
    sim.move_artifact(square, 30.0, 30.0)  # dragged
    square.color = (0, 0, 0)  # recoloured
    sim.reset(sim.seed + 1)  # N
    assert json.dumps([a.to_dict() for a in scene.artifacts]) == before
    assert json.dumps([a.to_dict() for a in sim.artifacts]) == before
    start = sim.artifacts[0].enter
    assert sim.artifacts[0].center(start) == scene.artifacts[0].center(start)


def test_a_session_replay_draws_only_what_the_recording_drew(make_app, tiny_model, reference_sizes, tmp_path):
    from monitor.app import run_app

    app = make_app(scene="expert", meta=session_meta(tiny_model, reference_sizes))
    out = run_app(app, 5)
    sim = Simulator(get_scene("seed-artifact"), 64, replay=SessionReplay(out["session"]), mode="replay")
    assert sim.artifacts == []  # the scene's square is not drawn over a replay


@pytest.mark.parametrize("frameskip", [3, 5])
def test_the_sliding_square_crosses_in_ten_model_steps_of_the_models_frameskip(frameskip):
    sim = Simulator(get_scene("expert"), 64, frameskip=frameskip)
    square = sim.start_sliding_square()
    assert square.exit - square.enter == 10 * frameskip
