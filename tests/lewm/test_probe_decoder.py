"""lewm probe decoder on a tiny model with an untrained decoder: the JSON's layout and counts, and the figure."""
import json

import numpy as np
import pytest

from lewm.decoder.model import DecoderConfig, PixelDecoder, TorchDecoder
from lewm.probes.common import scene_episodes
from lewm.probes.decoder import median_rise, run_decoder
from lewm.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def episodes():
    return scene_episodes("expert", 2, seed=1_000_000, image_size=32, steps=45)


def test_decoder_probe_writes_json_and_figure(make_model, episodes, tmp_path):
    model = TorchBackend(make_model())
    decoder = TorchDecoder(PixelDecoder(DecoderConfig.for_model(model.config, width=16)))
    result = run_decoder(model, decoder, episodes, horizon=3, stride=5, out=tmp_path)
    written = json.loads((tmp_path / "decoder.json").read_text())
    assert (tmp_path / "decoder.png").stat().st_size > 10_000
    assert written["probe"] == "decoder" and written["horizons"] == [1, 2, 3]
    # frames 0, 5, ..., 45 of each 46-frame episode
    assert written["reconstruction"]["frames"] == 2 * 10
    assert 0 < written["reconstruction"]["psnr_db_mean"] < 60
    # every h is scored on the same frames: every 5th from the first one whose h=3 forecast has a full context
    first = model.frameskip * (3 + model.history - 1)
    assert written["count"] == [2 * len(range(first, 46, 5))] * 3
    # so the floors read off those frames are the same at every h
    for floor in ("true_frame_block_px_median", "true_frame_block_axis_deg_median", "reconstructed_psnr_db_mean"):
        assert len(set(written[floor])) == 1, floor
    assert len(written["imagined_psnr_db_mean"]) == 3 and all(np.isfinite(written["imagined_psnr_db_mean"]))
    # the colour reading of the true frames sits near the true state (the method's floor; at 32 px the agent is
    # too small to be read in most frames, the block is read in every one)
    assert max(written["true_frame_block_px_median"]) < 1.0
    assert result["still_agent_px_median"][0] >= 0


def test_median_rise_is_the_last_horizons_median_minus_the_firsts_with_an_interval_over_episodes():
    # five episodes of 20 frames, each scored at h=1 and h=4; episode k's errors are k * h (k = 1..5)
    episode = np.repeat(np.arange(5), 40)
    h = np.tile(np.repeat([1, 4], 20), 5)
    values = (episode + 1) * h.astype(float)
    rise = median_rise(values, h, episode, horizon=4)
    assert rise["value"] == pytest.approx(4 * 3 - 3)  # the middle episode's errors: 12 at h=4, 3 at h=1
    low, high = rise["interval95"]
    assert 3 <= low < rise["value"] < high <= 15  # resampled episodes move the median between episodes 1 and 5
    assert median_rise(values, h, np.zeros_like(episode), horizon=4)["interval95"] == [9.0, 9.0]  # one episode
    blank = median_rise(np.full(len(h), np.nan), h, episode, horizon=4)  # nothing read in any picture
    assert np.isnan(blank["value"]) and all(np.isnan(blank["interval95"]))


def test_probe_command_shortens_the_decoders_horizons_to_fit_short_episodes(make_model, tmp_path):
    from lewm.probes.suite import ProbeSettings, run_probe

    model = TorchBackend(make_model())
    decoder = TorchDecoder(PixelDecoder(DecoderConfig.for_model(model.config, width=16)))
    # 25 env steps: frame 25 is the last one a forecast from a full context (3 frames, 5 apart) reaches at h=3
    result = run_probe("decoder", model, ProbeSettings(episodes=1, steps=25, horizon=20), tmp_path,
                       pixel_decoder=decoder)
    assert result["horizons"] == [1, 2, 3] and result["count"] == [1, 1, 1]
