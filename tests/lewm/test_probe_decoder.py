"""lewm probe decoder on a tiny model with an untrained decoder: the JSON's layout and counts, and the figure."""
import json

import numpy as np
import pytest

from lewm.decoder import DecoderConfig, PixelDecoder, TorchDecoder
from lewm.probes.common import scene_episodes
from lewm.probes.decoder import run_decoder
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
    # starts every 5 frames (the first ones with a shorter context) whose forecast frame is inside the episode
    fs = model.frameskip
    expected = [2 * len([s for s in range(0, 46, 5) if s + fs * h <= 45]) for h in (1, 2, 3)]
    assert written["count"] == expected
    assert len(written["imagined_psnr_db_mean"]) == 3 and all(np.isfinite(written["imagined_psnr_db_mean"]))
    # the colour reading of the true frames sits near the true state (the method's floor)
    assert max(written["true_frame_agent_px_median"]) < 1.0
    assert result["still_agent_px_median"][0] >= 0
