"""The inference worker: a size-1 hand-off; when the model falls behind, frames are dropped, counted, logged,
and the stream is reset at the gap; lockstep never drops. And the interactive loop runs and quits cleanly."""
import time

import numpy as np
import pygame
import pytest

from monitor.app import run_app
from monitor.session import read_log
from monitor.worker import FrameItem, InferenceWorker


class SlowStream:
    """Stands in for LatentStream: records what it was fed."""

    def __init__(self, delay):
        self.delay, self.t, self.fed, self.resets = delay, -1, [], 0
        self.started = 0  # steps begun
        self.active_stream = "real"

    def reset(self):
        self.t, self.resets = -1, self.resets + 1

    def step(self, frame, action):
        self.started += 1
        time.sleep(self.delay)
        self.t += 1
        self.fed.append(int(frame[0, 0, 0]))
        return object()


def item(i, start=False):
    return FrameItem(i, i, np.full((2, 2, 3), i, np.uint8), np.zeros(2), episode_start=start)


def test_a_slow_model_drops_frames_and_resets_at_the_gap():
    stream = SlowStream(0.05)
    worker = InferenceWorker(stream)
    for i in range(20):
        worker.submit(item(i, start=i == 0))
        time.sleep(0.005)
    worker.wait_idle()
    results = []
    results += worker.results()
    worker.stop()
    assert worker.dropped > 5
    assert len(results) == 20  # every frame accounted for: processed or dropped
    assert [r.item.seq for r in results] == sorted(r.item.seq for r in results)
    dropped = [r.item.seq for r in results if r.record is None]
    assert len(dropped) == worker.dropped
    assert sorted(stream.fed + dropped) == list(range(20))
    assert stream.resets >= 2  # the episode start, then every gap


class FailingStream(SlowStream):
    """A stream whose model raises at frame `at`."""

    def __init__(self, at):
        super().__init__(0.0)
        self.at = at

    def step(self, frame, action):
        if int(frame[0, 0, 0]) == self.at:
            raise ValueError("model failed (test)")
        return super().step(frame, action)


def test_a_model_error_reaches_the_simulator():
    worker = InferenceWorker(FailingStream(at=3), lockstep=True)
    for i in range(3):
        worker.submit(item(i, start=i == 0))
    with pytest.raises(RuntimeError, match="inference worker failed") as raised:
        worker.submit(item(3))
    assert isinstance(raised.value.__cause__, ValueError)
    # what finished before the failure is handed out first (so it is logged), then the error, on every later call
    assert [r.item.seq for r in worker.results()] == [0, 1, 2]
    for _ in range(2):
        with pytest.raises(RuntimeError):
            worker.results()
    with pytest.raises(RuntimeError):  # stopping says so too: a failure is never swallowed on close
        worker.stop()

    worker = InferenceWorker(FailingStream(at=0))  # not lockstep: the next wait or drain says so
    worker.submit(item(0, start=True))
    with pytest.raises(RuntimeError, match="model failed"):
        worker.wait_idle()
    with pytest.raises(RuntimeError):
        worker.stop()


def test_lockstep_never_drops():
    stream = SlowStream(0.01)
    worker = InferenceWorker(stream, lockstep=True)
    for i in range(10):
        worker.submit(item(i, start=i == 0))
    worker.stop()
    assert worker.dropped == 0 and stream.fed == list(range(10)) and stream.resets == 1


def test_the_interactive_loop_runs_and_quits(make_app):
    app = make_app(headless=False, lockstep=False, speed=float("inf"))
    pygame.time.set_timer(pygame.QUIT, 1500, loops=1)
    out = run_app(app)
    rows = read_log(out["session"])
    assert len(rows) == app.seq > 5  # every submitted frame is logged (numbers or "dropped")
    assert app.fps > 0


def test_results_come_in_frame_order_when_a_pending_frame_is_dropped_before_the_worker_wakes():
    stream = SlowStream(0.05)
    worker = InferenceWorker(stream)
    worker.submit(item(0, start=True))
    worker.wait_idle()
    results = worker.results()
    with worker._cond:  # the worker thread cannot wake between these two submissions
        worker.submit(item(1))
        worker.submit(item(2))  # frame 1, still waiting, is dropped
    while stream.started < 2:  # the worker has taken frame 2 and works on it
        time.sleep(0.001)
    results += worker.results()
    worker.wait_idle()
    results += worker.results()
    worker.stop()
    assert [r.item.seq for r in results] == [0, 1, 2]
    assert [r.record is None for r in results] == [False, True, False]


def test_a_worker_error_is_raised_on_close_after_the_session_is_finalised(make_app):
    app = make_app(headless=False, lockstep=False)
    app.sim_tick()
    app.worker.wait_idle()
    bad = FrameItem(app.seq, 0, np.zeros((3, 3, 3), np.uint8), None)  # not the model's frame size
    app.worker.submit(bad)
    with pytest.raises(RuntimeError, match="inference worker failed"):
        app.close()
    assert app.session._log.closed
    assert len(read_log(app.session.folder)) == 1


def test_the_log_names_the_stream_a_record_was_computed_under(make_app):
    app = make_app()
    app.sim_tick()  # lockstep: computed now, under "real"
    app.set_stream("zero")  # switched before the result is drained
    app.sim_tick()
    app.drain()
    rows = read_log(app.session.folder)
    assert [r["active_stream"] for r in rows] == ["real", "zero"]
