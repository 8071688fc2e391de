"""Outputs of a monitor run: never overwritten silently, checked before the run, a failure to write them is one
line and leaves what was written readable; Ctrl-C and SIGTERM report the paths; no display means headless."""
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.app import run_app
from export.backends import load_engine
from lewm.bundled import BUNDLED_MODEL
from lewm_cli import main as lewm
from monitor.recorder import count_frames
from monitor.session import LOG, read_log
from lewm_errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def monitor(tiny_model, bank, reference_sizes, tmp_path, capsys):
    """Run `lewm monitor` headless on the tiny model; returns (exit code, stderr lines, the sessions made)."""
    episodes, steps = reference_sizes
    sessions = tmp_path / "sessions"

    def run(*flags, steps_run=5):
        capsys.readouterr()
        code = lewm(["monitor", "--model", str(tiny_model), "--headless", "--steps", str(steps_run), "--scene",
                     "expert", "--sessions", str(sessions), "--reference-episodes", str(episodes), "--reference-steps",
                     str(steps), *flags])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if "error" in line], sorted(sessions.glob("*"))

    return run


def test_existing_outputs_are_refused_before_the_run_unless_forced(monitor, tmp_path):
    video = tmp_path / "old.mp4"
    video.write_bytes(b"keep me")
    code, errors, sessions = monitor("--record", str(video))
    assert code == 2 and sessions == [] and video.read_bytes() == b"keep me"
    assert errors == [f"lewm monitor: error: --record {video} exists; pass --force to overwrite it or choose another "
                      "name"]
    code, errors, sessions = monitor("--record", str(video), "--force")
    assert code == 0 and errors == [] and count_frames(video) == 5


@pytest.mark.parametrize("flag", ["--record", "--screenshot"])
def test_an_unwritable_output_is_one_line_before_the_run(monitor, tmp_path, flag):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path, says in ((tmp_path, "is a directory"), (blocker / "out.png", "a-file is a file")):
        code, errors, sessions = monitor(flag, str(path))
        assert code == 2 and sessions == [], (flag, path)
        assert len(errors) == 1 and flag in errors[0] and says in errors[0], errors


def test_a_full_disk_under_the_video_is_one_line_and_the_log_stays_whole(monitor):
    code, errors, sessions = monitor("--record", "/dev/full", "--force", steps_run=30)
    assert code == 2
    assert errors == [errors[0]] and "cannot write the video /dev/full" in errors[0]
    assert "No space left on device" in errors[0]
    log = (sessions[0] / LOG).read_bytes()
    assert log.endswith(b"\n") and len(read_log(sessions[0])) == log.count(b"\n") >= 1


def test_a_log_that_cannot_grow_keeps_whole_lines_and_the_video_is_finalised(make_app):
    app = make_app(scene="expert")  # the encoder starts now, before the limit: only the log hits it
    log = app.session.folder / LOG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (log.stat().st_size + 8000, hard))  # a few rows, then "full"
    try:
        with pytest.raises(UserError, match="cannot write the session log .* File too large"):
            run_app(app, 40)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    text = log.read_bytes()
    rows = read_log(log)
    assert text.endswith(b"\n") and len(rows) == text.count(b"\n") == app.session.rows
    assert 1 <= len(rows) < 40
    assert count_frames(app.session.folder / "video.mp4") >= len(rows)


def run_process(tiny_model, reference_sizes, tmp_path, steps, env=None, headless=True, unset=()):
    episodes, ref_steps = reference_sizes
    cmd = [sys.executable, "-m", "lewm_cli", "monitor", "--model", str(tiny_model), "--steps", str(steps), "--scene",
           "expert", "--sessions", str(tmp_path / "sessions"), "--reference-episodes", str(episodes),
           "--reference-steps", str(ref_steps)] + (["--headless"] if headless else [])
    base = {k: v for k, v in os.environ.items() if not k.startswith("SDL_") and k not in unset}
    return subprocess.Popen(cmd, env=dict(base, PYTHONPATH=str(ROOT), **(env or {})), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_report_the_video_and_the_session(tiny_model, bank, reference_sizes, tmp_path, signum):
    proc = run_process(tiny_model, reference_sizes, tmp_path, 100000, env={"SDL_VIDEODRIVER": "dummy"})
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            logs = list((tmp_path / "sessions").glob(f"*/{LOG}"))
            if logs and logs[0].read_bytes().count(b"\n") >= 10:
                break
            time.sleep(0.2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert f"interrupted ({'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}) after " in out
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert count_frames(lines["video"]) >= 10
    assert len(read_log(lines["session"])) >= 10


def test_an_unreachable_display_runs_headless_and_says_so(tiny_model, bank, reference_sizes, tmp_path):
    proc = run_process(tiny_model, reference_sizes, tmp_path, 5, env={"DISPLAY": ":187"}, headless=False,
                       unset=("XDG_RUNTIME_DIR",))
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "no display could be opened (DISPLAY=:187" in err and "running headless" in err
    assert "XDG_RUNTIME_DIR" not in err  # SDL's note about its environment is not shown
    session = next((tmp_path / "sessions").glob("*"))
    assert len(read_log(session)) == 5


def test_the_bundled_model_is_the_default_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = load_engine(BUNDLED_MODEL, None, "fp32")
    assert engine.folder.resolve() == (ROOT / "models" / "pusht-keypoints").resolve()
