"""The monitor as a process: no torch, clear CLI errors, a killed run leaves a readable log."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lewm_cli import main as lewm
from monitor.session import read_log

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYTHONPATH=str(ROOT))


def test_monitor_never_imports_torch():
    code = ("import sys, monitor.app, lewm_cli.commands.monitor, monitor.worker, monitor.reference, monitor.replay, "
            "monitor.bench, export.engine, lewm_cli; from export.backends import load_engine; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_clear_errors(tmp_path, capsys, tiny_model):
    assert lewm(["monitor", "--model", str(tmp_path / "nope"), "--headless"]) == 2
    err = capsys.readouterr().err
    assert "nope does not exist" in err and "lewm export" in err and err.count("\n") == 1
    assert lewm(["monitor", "--model", str(tiny_model), "--scene", "nosuch", "--headless"]) == 2
    assert "unknown scene 'nosuch'" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((tiny_model / "config.json").read_text())
    assert lewm(["monitor", "--model", str(bare), "--headless"]) == 2
    assert "encoder.onnx" in capsys.readouterr().err


def test_episode_out_of_range_is_one_clear_line(tmp_path, capsys, tiny_model):
    from scenes.catalog import get_scene
    from scenes.dataset import DatasetWriter
    from scenes.episode import play_episode

    episode = play_episode(get_scene("expert"), 32, steps=5, seed=0)
    path = tmp_path / "one.h5"
    with DatasetWriter(path, 32) as writer:
        writer.add_episode(episode.frames, episode.actions, episode.states)
    for bad, says in (("1", "has 1 episodes; episode 1 is out of range"),
                      ("-1", "argument --episode: must be at least 0, got -1")):
        assert lewm(["monitor", "--model", str(tiny_model), "--headless", "--replay-dataset", str(path), "--episode",
                     bad]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1


def test_a_killed_run_leaves_a_readable_log(tiny_model, bank, reference_sizes, tmp_path):
    episodes, steps = reference_sizes
    sessions = tmp_path / "sessions"
    cmd = [sys.executable, "-m", "lewm_cli", "monitor", "--model", str(tiny_model), "--headless", "--steps",
           "100000", "--scene", "expert", "--sessions", str(sessions), "--reference-episodes", str(episodes),
           "--reference-steps", str(steps)]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        logs = []
        while time.time() < deadline:
            logs = list(sessions.glob("*/log.jsonl"))
            if logs and logs[0].read_text().count("\n") >= 30:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_log(logs[0].parent)
    assert len(rows) >= 30
    assert [r["env_step"] for r in rows] == list(range(len(rows)))
    assert np.isfinite(rows[-1]["surprise"][0])
    # a line cut mid-write (what a kill can leave) is skipped
    with open(logs[0], "a") as f:
        f.write('{"env_step": 99999, "surpr')
    assert len(read_log(logs[0].parent)) == len(rows)
