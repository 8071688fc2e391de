"""`lewm rerun SESSION` writes a Rerun recording whose values are the session log's, read back with Rerun's own
reader; the live monitor's Rerun stream logs the same; without rerun-sdk the commands say how to install it."""
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from lewm.stream import ACTION_STREAMS
from lewm_cli import main as lewm
from monitor.session import read_log, read_meta
from monitor.sim import render_view

ROOT = Path(__file__).resolve().parents[2]


def read_rrd(path) -> dict:
    """entity path -> component -> {step: [value of each row at that step]}, for every timed row of the recording
    (Rerun's RrdReader)."""
    from rerun.chunk import RrdReader

    out = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for chunk in RrdReader(path).stream().to_chunks():
        batch = chunk.to_record_batch()
        if "step" not in batch.schema.names:
            continue
        steps = batch.column("step").to_pylist()
        for name in batch.schema.names:
            if ":" in name:
                for step, value in zip(steps, batch.column(name).to_pylist()):
                    out[chunk.entity_path][name][step].append(value)
    return out


def scalars(data: dict, entity: str) -> dict:
    """{step: the scalar logged there} of a Scalars entity (one per step)."""
    out = {}
    for step, rows in data[entity]["Scalars:scalars"].items():
        assert len(rows) == 1 and len(rows[0]) == 1, (entity, step, rows)
        out[step] = rows[0][0]
    return out


def image_at(entity: dict, step: int) -> np.ndarray:
    (fmt,), = entity["Image:format"][step]
    (buffer,), = entity["Image:buffer"][step]
    return np.array(buffer, np.uint8).reshape(fmt["height"], fmt["width"], 3)


def tick(app, n):
    for _ in range(n):
        app.sim_tick()
        app.worker.wait_idle()
        app.drain()


def record_session(app):
    """Three episodes with what a person does in the window: an artifact placed and dragged, a teleport, the
    action stream switched, manual driving."""
    sim = app.sim
    tick(app, 14)
    placed = sim.place_artifact(60.0, 60.0)
    tick(app, 3)
    sim.move_artifact(placed, 90.0, 80.0)
    tick(app, 4)
    app.perform("teleport_block")
    tick(app, 5)
    app.perform("cycle_stream")  # shuffled
    tick(app, 6)
    app.perform("new_seed")
    tick(app, 18)
    app.perform("cycle_stream")  # zero
    app.perform("cycle_mode")  # manual
    sim.mouse_target = np.array([300.0, 200.0])
    tick(app, 5)
    app.perform("new_seed")
    tick(app, 16)


@pytest.fixture
def session(make_app, tiny_model, reference_sizes):
    episodes, steps = reference_sizes
    app = make_app(meta={"model": str(tiny_model), "precision": "fp32", "reference_episodes": episodes,
                         "reference_steps": steps})
    record_session(app)
    return app.close()["session"]


def test_the_recording_holds_the_session_logs_values_and_frames_at_their_steps(session, tmp_path, capsys):
    pytest.importorskip("rerun", reason="the optional extra rerun-sdk: pip install -e '.[rerun]'")
    out = tmp_path / "session.rrd"
    assert lewm(["rerun", str(session), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    rows = read_log(session)
    assert sum(r["episode_start"] for r in rows) == 3 and {r["env_step"] for r in rows if r["episode_start"]} == {0}
    data = read_rrd(out)

    for k, name in enumerate(ACTION_STREAMS):
        logged = {r["seq"]: r["surprise"][k] for r in rows if r.get("surprise") and r["surprise"][k] is not None}
        assert len(logged) > 40
        assert scalars(data, f"/surprise/{name}") == logged, name
    unsure = {r["seq"]: r["uncertainty"] for r in rows if r.get("uncertainty") and None not in r["uncertainty"]}
    assert len(unsure) > 40  # the model serves its uncertainty: each part and their sum, at the step logged
    assert scalars(data, "/uncertainty/disagreement") == {seq: u[0] for seq, u in unsure.items()}
    assert scalars(data, "/uncertainty/noise") == {seq: u[1] for seq, u in unsure.items()}
    assert scalars(data, "/uncertainty/total") == pytest.approx({seq: u[0] + u[1] for seq, u in unsure.items()})
    errors = {r["seq"]: r["forecast_error"][0][1] for r in rows if r.get("forecast_error")
              and r["forecast_error"][0][1] is not None}
    assert errors and scalars(data, "/forecast_error/real/h2") == errors
    actions = {r["seq"]: r["action"][0] for r in rows if r.get("action")}
    assert scalars(data, "/actions/x") == actions

    frames = data["/scene/frame"]
    assert sorted(frames["Image:buffer"]) == [r["seq"] for r in rows]  # one frame per step, all episodes on one
    size = read_meta(session)["image_size"]
    for r in rows:  # the frame as the model saw it, the artifacts drawn in
        seen = render_view(r["state"], size, r["artifacts"], r["env_step"], r.get("block_color"))
        assert np.array_equal(image_at(frames, r["seq"]), seen), r["seq"]
    assert any(r["artifacts"] for r in rows)

    texts = {step: [t for (t,) in rows] for step, rows in data["/events"]["TextLog:text"].items()}
    starts = [r["seq"] for r in rows if r["episode_start"]]
    assert all(texts[s][0].startswith("episode starts") for s in starts)
    teleport = next(r["seq"] for r in rows if "teleport" in (r.get("events") or []))
    assert any("teleported" in t for t in texts[teleport])
    switch = next(r["seq"] for r, before in zip(rows[1:], rows) if r.get("active_stream") == "shuffled"
                  and before.get("active_stream") == "real")
    assert "action stream: real -> shuffled" in texts[switch]
    assert any("artifact enters: square" in t for step in texts for t in texts[step])
    last = rows[-1]["seq"]  # the running means per horizon: over every step so far (fewer than the window's 600)
    for k, name in enumerate(ACTION_STREAMS):
        errors = np.array([[np.nan if v is None else v for v in r["forecast_error"][k]] for r in rows
                           if r.get("forecast_error")])
        seen = np.isfinite(errors)
        assert seen.any(axis=0).sum() >= 3  # several horizons have met their frames (the longest not yet: 0)
        means = np.where(seen, errors, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
        (bars,), = data[f"/horizon/{name}"]["BarChart:values"][last]
        assert np.allclose(bars["buffer"], means, rtol=1e-12), name
    assert data["/expects/lookahead"]["Image:buffer"], "the decoded look-ahead"
    assert data["/pca/path/now"]["Points2D:positions"]


@pytest.mark.parametrize("key", ["surprise", "uncertainty"])
def test_a_log_the_replay_does_not_reproduce_is_refused(session, tmp_path, capsys, key):
    pytest.importorskip("rerun", reason="the optional extra rerun-sdk: pip install -e '.[rerun]'")
    rows = read_log(session)
    assert None not in rows[30][key]
    rows[30][key][0] += 0.25  # a number the model never computed
    (session / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "x.rrd"
    capsys.readouterr()
    assert lewm(["rerun", str(session), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lewm rerun: error: ") and f"step 30 ({key})" in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_the_live_stream_logs_what_the_file_holds(make_app, tiny_model, reference_sizes, tmp_path):
    pytest.importorskip("rerun", reason="the optional extra rerun-sdk: pip install -e '.[rerun]'")
    from monitor.rerun_recording import SessionRecorder, blueprint, open_stream

    episodes, steps = reference_sizes
    app = make_app(meta={"model": str(tiny_model), "precision": "fp32", "reference_episodes": episodes,
                         "reference_steps": steps})
    live = open_stream("live")
    live.save(tmp_path / "live.rrd", default_blueprint=blueprint())
    app.observers.append(SessionRecorder(live, app))
    record_session(app)
    session = app.close()["session"]
    live.flush()
    live.disconnect()  # the file is finished (its footer written)
    assert lewm(["rerun", str(session), "--out", str(tmp_path / "file.rrd")]) == 0
    a, b = read_rrd(tmp_path / "live.rrd"), read_rrd(tmp_path / "file.rrd")
    for entity in ("/surprise/real", "/surprise/zero", "/uncertainty/total", "/forecast_error/shuffled/h3",
                   "/copy_last/h1", "/events", "/scene/frame", "/expects/lookahead", "/horizon/real"):
        assert a[entity] == b[entity], entity


def test_plans_are_drawn_over_the_scene_live_with_their_candidates_and_from_the_file(make_app, tiny_model,
                                                                                     reference_sizes, tmp_path):
    pytest.importorskip("rerun", reason="the optional extra rerun-sdk: pip install -e '.[rerun]'")
    from lewm.planning.planner import PlannerSettings
    from monitor.rerun_recording import SessionRecorder, open_stream
    from scenes.pusht import WORLD_SIZE

    episodes, steps = reference_sizes
    app = make_app(scene="expert", mode="plan", plan=PlannerSettings(samples=24, iterations=3, elites=4),
                   meta={"model": str(tiny_model), "precision": "fp32", "reference_episodes": episodes,
                         "reference_steps": steps})
    live = open_stream("live")
    live.save(tmp_path / "live.rrd")
    app.observers.append(SessionRecorder(live, app))
    app.run_headless(30)
    session = app.close()["session"]
    live.flush()
    live.disconnect()
    assert lewm(["rerun", str(session), "--out", str(tmp_path / "file.rrd")]) == 0
    rows = read_log(session)
    planned = [r for r in rows if r.get("plan")]
    assert [r["seq"] for r in planned] == [0, 25]
    size = read_meta(session)["image_size"]
    a, b = read_rrd(tmp_path / "live.rrd"), read_rrd(tmp_path / "file.rrd")
    for data in (a, b):
        chosen = data["/scene/plan/chosen"]["LineStrips2D:strips"]
        assert sorted(chosen) == [0, 25]
        for r in planned:  # the chosen path, in the frame's pixels
            (strip,), = chosen[r["seq"]]  # one row of one strip
            path = np.asarray(strip)
            assert path.shape == (26, 2) and np.allclose(path[0], np.asarray(r["plan"]["start_xy"]) * size / WORLD_SIZE)
        texts = [t for (t,) in data["/events"]["TextLog:text"][25]]
        assert any(t.startswith("plan 2:") for t in texts)
    (live_candidates,) = a["/scene/plan/candidates"]["LineStrips2D:strips"][25]
    (live_elites,) = a["/scene/plan/elites"]["LineStrips2D:strips"][25]
    assert len(live_candidates) == 20 and len(live_elites) == 4  # the last CEM iteration's samples
    assert "LineStrips2D:strips" not in b["/scene/plan/candidates"]  # a session log keeps the chosen plan only


def test_an_existing_out_file_is_kept_without_force(session, tmp_path, capsys):
    out = tmp_path / "kept.rrd"
    out.write_text("mine")
    assert lewm(["rerun", str(session), "--out", str(out)]) == 2
    assert out.read_text() == "mine" and "--force" in capsys.readouterr().err
    assert lewm(["rerun", str(tmp_path / "nowhere")]) == 2
    assert lewm(["rerun", str(session), "--out", str(tmp_path / "x.mp4")]) == 2


CODE = """
import json, sys
sys.modules["rerun"] = None
from lewm_cli import main
print(json.dumps([main(argv) for argv in json.loads(sys.argv[1])]))
"""


def test_without_rerun_sdk_the_commands_say_how_to_install_it(session, tmp_path):
    commands = [["rerun", str(session), "--out", str(tmp_path / "x.rrd")],
                ["monitor", "--rerun", "--headless", "--steps", "2", "--sessions", str(tmp_path / "s")]]
    out = subprocess.run([sys.executable, "-c", CODE, json.dumps(commands)], capture_output=True, text=True,
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [2, 2]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, out.stderr
    for argv, line in zip(commands, lines):
        assert line.startswith(f"lewm {argv[0]}: error: ") and "pip install -e '.[rerun]'" in line
    assert not (tmp_path / "x.rrd").exists() and not (tmp_path / "s").exists()
