"""lewm train end to end on a tiny dataset: checkpoints, the log, resume, and refusals."""
import json

import numpy as np
import pytest

from lewm.checkpoint import load_model_folder
from lewm.config import preset
from lewm.train import ClipSampler, TrainSettings, train
from scenes.collect import collect
from scenes.dataset import EpisodeDataset
from scenes.errors import UserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    collect(path, episodes=3, steps=40, image_size=32, seed=0, mix={"random": 1.0})
    return path


def test_clips_take_frames_every_frameskip_and_their_action_blocks(dataset):
    config = preset("tiny")
    with EpisodeDataset(dataset) as d:
        sampler = ClipSampler(d, config)
        # each 41-frame episode has clips starting at 0..25 (the last frame, 40, ends with a NaN action)
        assert len(sampler) == 3 * 26
        frames, blocks = sampler.batch(np.array([30]))
        start = sampler.starts[30]
        assert np.array_equal(frames[0].numpy(), d.load_pixels()[start + np.arange(4) * 5])
        assert np.array_equal(blocks[0, 1].numpy(), d.action[start + 5:start + 10].reshape(-1))


def test_train_checkpoints_logs_and_resumes(dataset, tmp_path):
    run = tmp_path / "run"
    settings = TrainSettings(steps=4, batch_size=4, warmup=2, checkpoint_every=2, lr=1e-3)
    checkpoint = train(dataset, run, preset("tiny"), settings, log=lambda line: None)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    for key in ("pred", "sigreg", "cos_real", "cos_shuffled", "cos_zero", "cos_copy_last", "eval_sigreg"):
        assert np.isfinite(log[-1][key])
    model = load_model_folder(checkpoint)
    with EpisodeDataset(dataset) as d:
        a = d.action[np.isfinite(d.action).all(1)]
    assert model.config.action_mean == pytest.approx(a.mean(0).tolist(), abs=1e-5)

    with pytest.raises(UserError, match="--resume"):
        train(dataset, run, preset("tiny"), settings, log=lambda line: None)
    settings.steps = 6
    train(dataset, run, preset("tiny"), settings, resume=True, log=lambda line: None)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]


def test_train_refuses_a_dataset_of_another_image_size(dataset, tmp_path):
    with pytest.raises(UserError, match="--image-size 64"):
        train(dataset, tmp_path / "r", preset("small"), TrainSettings(steps=1), log=lambda line: None)
