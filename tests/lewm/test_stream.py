"""The stream's incremental forecasts are the plain rollouts of the horizon probe, frame by frame."""
import numpy as np
import pytest
import torch

from lewm.config import preset
from lewm.model import LeWM
from lewm.stream import PCA, LatentStream, cosine_distance
from lewm.torch_backend import TorchBackend


def make_backend(**overrides):
    torch.manual_seed(0)
    model = LeWM(preset("tiny", action_mean=[0.1, -0.1], action_std=[0.5, 0.4], **overrides))
    # AdaLN-zero makes a fresh predictor ignore its actions; give the modulations weights so they matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaLN_modulation" in name:
                p.normal_(0, 0.3)
    return TorchBackend(model)


@pytest.fixture(scope="module")
def backend():
    return make_backend()


@pytest.fixture(scope="module")
def episode():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, size=(60, 2)).astype(np.float32)
    return frames, actions


def rollout(model, z, actions, start, h, fs=5):
    """The horizon probe's rollout, written out plainly: real context ending at `start`, h steps, real actions."""
    frames = [start - fs * k for k in reversed(range(model.history)) if start - fs * k >= 0]
    window = [z[s] for s in frames]
    blocks = [actions[s:s + fs].reshape(-1) for s in frames]
    for step in range(h):
        pred = model.predict(np.stack(window)[None], np.stack(blocks)[None])[0]
        nxt = frames[-1] + fs * (step + 1)
        window = (window + [pred])[-model.history:]
        blocks = (blocks + [actions[nxt:nxt + fs].reshape(-1)])[-model.history:]
    return pred


@pytest.mark.parametrize("frameskip, history", [(5, 3), (2, 2), (3, 4)])
def test_forecasts_and_surprise_equal_plain_rollouts(frameskip, history, episode):
    backend = make_backend(frameskip=frameskip, history=history)
    fs = frameskip
    frames, actions = episode
    zeros = np.zeros_like(actions)
    z = backend.encode(frames)
    stream = LatentStream(backend, horizon=4, shuffle_bank=actions[:10 * fs].reshape(10, 2 * fs))
    records = [stream.step(f, a) for f, a in zip(frames, actions)]
    checked = 0
    for t, rec in enumerate(records):
        np.testing.assert_allclose(rec.z, z[t], atol=1e-5)
        for h in range(1, 5):
            start = t - fs * h
            if start < 0:
                assert np.isnan(rec.forecast_error[0, h - 1])
                continue
            expected = cosine_distance(rollout(backend, z, actions, start, h, fs), z[t])
            assert rec.forecast_error[0, h - 1] == pytest.approx(expected, abs=1e-5)
            assert rec.copy_last_error[h - 1] == pytest.approx(cosine_distance(z[start], z[t]), abs=1e-6)
            checked += 1
        # surprise: the one-step prediction of frame t from the context ending at t - fs, real and zero actions
        if t < fs:
            assert np.isnan(rec.surprise).all()
        else:
            real = cosine_distance(rollout(backend, z, actions, t - fs, 1, fs), z[t])
            zero = cosine_distance(rollout(backend, z, zeros, t - fs, 1, fs), z[t])
            assert rec.surprise[[0, 2]] == pytest.approx([real, zero], abs=1e-5)
    assert checked > 100


def test_zero_stream_uses_zero_actions(backend, episode):
    frames, actions = episode
    zeros = np.zeros_like(actions)
    with_zero = [r.forecast_error[2] for r in (lambda s: [s.step(f, a) for f, a in zip(frames, actions)])(
        LatentStream(backend, horizon=3, shuffle_bank=actions[:50].reshape(10, 10)))]
    real_of_zero = [r.forecast_error[0] for r in (lambda s: [s.step(f, a) for f, a in zip(frames, zeros)])(
        LatentStream(backend, horizon=3, shuffle_bank=actions[:50].reshape(10, 10)))]
    np.testing.assert_allclose(np.array(with_zero), np.array(real_of_zero), atol=1e-6)


def test_action_streams_differ_when_actions_matter(backend, episode):
    frames, actions = episode
    stream = LatentStream(backend, horizon=3, shuffle_bank=actions[:50].reshape(10, 10))
    errors = np.array([stream.step(f, a).forecast_error for f, a in zip(frames, actions)])[20:]
    for other in (1, 2):
        assert np.nanmax(np.abs(errors[:, 0] - errors[:, other])) > 1e-3


def test_probe_frame_scores_without_entering_context(backend, episode):
    frames, actions = episode
    other = frames[::-1].copy()
    a = LatentStream(backend, horizon=2, shuffle_bank=actions[:50].reshape(10, 10))
    b = LatentStream(backend, horizon=2, shuffle_bank=actions[:50].reshape(10, 10))
    for f, o, act in zip(frames, other, actions):
        ra, rb = a.step(f, act), b.step(f, act, probe_frame=o)
        # context unchanged by the probe frame (up to batch-size rounding in the encoder)
        np.testing.assert_allclose(ra.surprise, rb.surprise, atol=1e-6)
    z_other = backend.encode(other[-1:])[0]
    # the one-step real prediction of the last frame, scored against the other frame's embedding
    pred = rollout(backend, backend.encode(frames), actions, len(frames) - 6, 1)
    assert rb.probe_surprise[0] == pytest.approx(cosine_distance(pred, z_other), abs=1e-5)


def test_lookahead_and_pca_do_not_change_forecasts(backend, episode):
    frames, actions = episode
    bank = actions[:50].reshape(10, 10)
    pca = PCA.fit(backend.encode(frames))
    plain = LatentStream(backend, horizon=3, shuffle_bank=bank)
    rich = LatentStream(backend, horizon=3, shuffle_bank=bank, pca=pca, lookahead=3, active_stream="shuffled")
    for f, a in zip(frames, actions):
        rp, rr = plain.step(f, a), rich.step(f, a)
        np.testing.assert_array_equal(rp.forecast_error, rr.forecast_error)
    assert rr.lookahead.shape == (3, backend.latent_dim) and rr.lookahead_pca.shape == (3, 2)
    assert rr.pca.shape == (2,)


def test_lookahead_values_are_rollouts_repeating_the_last_block(backend, episode):
    """At each model step the look ahead is a plain rollout from the newest real context, the future actions
    repeating the last block taken; between model steps the last one is kept."""
    frames, actions = episode
    z = backend.encode(frames)
    stream = LatentStream(backend, horizon=1, shuffle_bank=actions[:50].reshape(10, 10), lookahead=3)
    checked = 0
    for t, (f, a) in enumerate(zip(frames, actions)):
        rec = stream.step(f, a)
        if t < 5:
            assert rec.lookahead is None
            continue
        made_at = t - t % 5
        future = np.concatenate([actions[:made_at], np.resize(actions[made_at - 5:made_at], (15, 2))])
        expected = np.stack([rollout(backend, z, future, made_at, k) for k in (1, 2, 3)])
        np.testing.assert_allclose(rec.lookahead, expected, atol=1e-5)
        checked += 1
    assert checked == len(frames) - 5


def test_each_frame_carries_the_uncertainty_of_the_forecast_its_surprise_scores(episode):
    from lewm.ensemble.model import EnsembleConfig, LatentEnsemble, TorchEnsemble

    plain = make_backend()
    ensemble = TorchEnsemble(LatentEnsemble(EnsembleConfig.for_model(plain.config, members=3, hidden=8)))
    model = TorchBackend(plain.model, ensemble=ensemble)
    frames, actions = episode
    stream = LatentStream(model, horizon=2, shuffle_bank=actions[:50].reshape(10, 10))
    records = [stream.step(f, a) for f, a in zip(frames, actions)]
    z = model.encode(frames)
    for t, record in enumerate(records):
        if t < 5:
            assert np.isnan(record.uncertainty).all() and np.isnan(record.surprise[0])
            continue
        want = model.uncertainty(z[t - 5][None], actions[t - 5:t].reshape(1, -1))[0]
        np.testing.assert_allclose(record.uncertainty, want, rtol=1e-5)
        assert np.isfinite(record.surprise[0])
    assert LatentStream(plain).step(frames[0], actions[0]).uncertainty is None
