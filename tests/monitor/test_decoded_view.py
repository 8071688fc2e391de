"""The monitor with a pixel decoder: decoded look-ahead frames once per model step, drawn large in "what the model
expects"; a spike's prediction decoded in the worker and shown next to the seen frame."""
import shutil

import numpy as np
import pytest

from lewm.stream import ACTION_STREAMS, StreamRecord
from monitor.live import LiveData
from monitor.worker import FrameItem, Result


@pytest.fixture(scope="module")
def decoding_engine(tiny_model, tmp_path_factory):
    import torch

    from export.decoder_onnx import export_decoder
    from export.engine import OnnxEngine
    from lewm.config import ModelConfig
    from lewm.decoder.model import DecoderConfig, PixelDecoder, save_decoder

    folder = shutil.copytree(tiny_model, tmp_path_factory.mktemp("decoding") / "tiny")
    torch.manual_seed(0)
    save_decoder(PixelDecoder(DecoderConfig.for_model(ModelConfig.load(folder / "config.json"), width=16)), folder)
    export_decoder(folder)
    return OnnxEngine.from_folder(folder)


def test_lookahead_is_decoded_once_per_model_step_and_drawn(decoding_engine, bank, tmp_path):
    from monitor.app import MonitorApp, Options, init_pygame

    init_pygame(True)
    app = MonitorApp(decoding_engine, bank, Options(headless=True, lockstep=True, sessions=str(tmp_path)))
    try:
        results = []
        for _ in range(24):
            app.sim_tick()
            app.worker.wait_idle()
            results += app.drain()
        decoded_at = [r.stream_step for r in results if r.lookahead_frames is not None]
        renewed = [r.stream_step for r in results
                   if r.record.lookahead is not None and r.stream_step % decoding_engine.frameskip == 0]
        assert len(decoded_at) >= 2 and decoded_at == renewed
        frames = app.data.lookahead_frames
        assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
        assert np.array_equal(frames, decoding_engine.decode(results[-1].record.lookahead))

        app.draw()
        _, large, _, _ = app.expects_panel.layout()
        assert large >= 128  # a 128 px model's frame at its own size: every pixel of the T's pose
        inner = app.expects_panel.layout()[0]
        for i in (0, 4):
            x0 = inner.x + i * (large + 8)
            for r, c in ((16, 16), (20, 9), (28, 27)):  # model pixel centres (clear of the "+i" label)
                at = (x0 + int((c + 0.5) * large / 32), inner.y + int((r + 0.5) * large / 32))
                assert tuple(app.surface.get_at(at))[:3] == tuple(frames[i, r, c])

        z = results[-1].record.z
        app.worker.request_decode("spike", z)
        app.sim_tick()
        app.worker.wait_idle()
        served = app.drain()[-1]
        assert np.array_equal(served.decoded["spike"], decoding_engine.decode(z[None])[0])
    finally:
        app.close()


def _result(step, surprise, frame, forecast=None, decoded=None):
    z = np.ones(4, np.float32)
    forecasts = np.full((3, 2, 4), np.nan, np.float32)
    if forecast is not None:
        forecasts[:, 0] = forecast
    record = StreamRecord(t=step, z=z, surprise=np.full(3, surprise), forecast_error=np.full((3, 2), surprise),
                          copy_last_error=np.full(2, np.nan), forecast_z=forecasts)
    return Result(FrameItem(step, step, frame, None), record, decoded=decoded or {})


def test_a_spike_asks_for_its_prediction_and_shows_it_next_to_the_seen_frame():
    data = LiveData(horizon=2, has_decoder=True)
    calm = np.zeros((8, 8, 3), np.uint8)
    for step in range(30):
        data.add(_result(step, 0.01 + 0.001 * (step % 3), calm, forecast=np.zeros(4)))
        assert data.spike_request is None
    seen = np.full((8, 8, 3), 200, np.uint8)
    prediction = np.arange(4, dtype=np.float32)
    data.add(_result(30, 0.9, seen, forecast=prediction))
    assert data.spike[-1]
    assert np.array_equal(data.spike_request, prediction[:4])
    assert ACTION_STREAMS.index(data.active_stream) == 0
    picture = np.full((8, 8, 3), 7, np.uint8)
    data.spike_request = None  # taken by the app, which asks the worker
    data.add(_result(31, 0.01, calm, decoded={"spike": picture}))
    step, predicted, shown = data.spike_view
    assert step == 30 and predicted is picture and shown is seen


def test_the_expects_panel_is_redrawn_only_when_what_it_shows_changes_and_looks_the_same(decoding_engine, bank,
                                                                                        tmp_path):
    """Between model steps the panel is blitted from its last drawing; every frame must still be pixel for pixel
    what drawing it afresh gives, through look-ahead renewals, a spike's picture and a stream switch."""
    import pygame

    from monitor.app import MonitorApp, Options, init_pygame
    from monitor.panels.expects import ExpectsPanel

    init_pygame(True)
    app = MonitorApp(decoding_engine, bank, Options(headless=True, lockstep=True, sessions=str(tmp_path), video=False))
    panel = app.expects_panel
    drawn = []
    draw = panel._draw
    panel._draw = lambda *args: (drawn.append(1), draw(*args))
    try:
        steps = 30
        for step in range(steps):
            if step == 12:
                app.worker.request_decode("spike", app.data.last.record.z)  # a new comparison picture
                app.data._spike_pending = (step, app.sim.current.frame)
            if step == 20:
                app.set_stream("zero")
            app.sim_tick()
            app.worker.wait_idle()
            app.drain()
            app.draw()
            fresh = pygame.Surface(app.surface.get_size(), 0, app.surface)
            ExpectsPanel(panel.rect, panel.count).draw(fresh, app.data, app.active_stream)
            cached = pygame.surfarray.array3d(app.surface.subsurface(panel.rect))
            assert np.array_equal(cached, pygame.surfarray.array3d(fresh.subsurface(panel.rect))), step
        assert app.data.spike_view is not None and app.data.spike_view[0] == 12
        assert 6 <= len(drawn) <= steps // 2  # renewed once per model step (and on the spike and the switch)
    finally:
        app.close()


def test_nothing_is_drawn_between_the_nearest_expert_frames(decoding_engine, bank, tmp_path):
    """The gaps between the small frames under the forecasts stay empty: a caption drawn beside each frame ran
    under the next one and showed cut ("nearest e"); the row has one caption, after its last frame."""
    import pygame

    from monitor.app import MonitorApp, Options, init_pygame
    from monitor.panels import style
    from monitor.panels.expects import GAP

    init_pygame(True)
    app = MonitorApp(decoding_engine, bank, Options(headless=True, lockstep=True, sessions=str(tmp_path), video=False))
    panel = app.expects_panel
    try:
        for _ in range(12):
            app.sim_tick()
            app.worker.wait_idle()
            app.drain()
        app.draw()
        inner, large, small, _ = panel.layout()
        assert len(app.data.lookahead_thumbs) == panel.count
        for i in range(panel.count - 1):
            right_of_frame = inner.x + i * (large + GAP) + small
            gap = pygame.Rect(right_of_frame, inner.y + large + 6, large + GAP - small, small)
            pixels = pygame.surfarray.array3d(app.surface.subsurface(gap)).reshape(-1, 3)
            assert (pixels == style.PANEL[:3]).all(), i
    finally:
        app.close()


def test_plan_mode_draws_the_decoded_end_of_the_chosen_plan_next_to_the_goal(decoding_engine, bank, tmp_path):
    import pygame

    from lewm.planning.planner import PlannerSettings
    from monitor.app import MonitorApp, Options, init_pygame

    init_pygame(True)
    app = MonitorApp(decoding_engine, bank, Options(headless=True, lockstep=True, session=False, mode="plan",
                                                    sessions=str(tmp_path / "sessions"),  # its video goes there
                                                    plan=PlannerSettings(samples=24, iterations=3, elites=4)))
    try:
        app.run_headless(2)
        assert app.plan.last.number == 1
        end, goal = app.data.plan_view
        assert np.array_equal(end, decoding_engine.decode(app.plan.last.end_latent[None])[0])  # decoded in the worker
        assert goal is app.plan.goal_frame
        app.draw()
        _, end_rect, _ = app.plan_overlay.layout()
        img = pygame.surfarray.make_surface(np.ascontiguousarray(end.transpose(1, 0, 2)))
        want = pygame.surfarray.array3d(pygame.transform.smoothscale(img, end_rect.size))
        got = pygame.surfarray.array3d(app.surface.subsurface(end_rect))
        assert np.array_equal(got, want)  # the thumbnail beside the goal's is the decoded end frame
        _, _, _, box = app.expects_panel.layout()  # and large, in "what the model expects", left of the goal
        side = (box.w - 3 * 8) // 2
        at = (box.x + 8 + int(16.5 * side / 32), box.y + 20 + int(16.5 * side / 32))
        assert tuple(app.surface.get_at(at))[:3] == tuple(end[16, 16])

        app.perform("set_goal")  # a new goal: the old plan's end is not shown against it
        assert app.data.plan_view is None
        app.draw()
        assert not np.array_equal(pygame.surfarray.array3d(app.surface.subsurface(end_rect)), want)
    finally:
        app.close()
