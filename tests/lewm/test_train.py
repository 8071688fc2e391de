"""lewm train end to end on a tiny dataset: checkpoints, the log, resume, and refusals."""
import json

import numpy as np
import pytest
import torch

from lewm.checkpoint import load_model_folder
from lewm.config import preset
from lewm.training.loop import ClipSampler, TrainSettings, lr_at, train
from scenes.collect import collect
from scenes.dataset import EpisodeDataset
from lewm_errors import UserError


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

    with pytest.raises(UserError, match="already holds a checkpoint"):
        train(dataset, run, preset("tiny"), settings, log=lambda line: None)
    settings.steps = 6
    train(dataset, run, preset("tiny"), settings, resume=True, log=lambda line: None)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]


def test_train_refuses_a_dataset_of_another_image_size(dataset, tmp_path):
    with pytest.raises(UserError, match="--image-size 64"):
        train(dataset, tmp_path / "r", preset("small"), TrainSettings(steps=1), log=lambda line: None)


def test_learning_rate_warms_up_then_decays_over_steps_or_over_the_time_budget():
    by_steps = TrainSettings(steps=100, warmup=10, lr=1.0)
    assert lr_at(0, by_steps) == pytest.approx(0.1)
    assert lr_at(10, by_steps) == pytest.approx(1.0)
    assert lr_at(100, by_steps) == pytest.approx(0.1)
    by_time = TrainSettings(steps=10**9, warmup=10, lr=1.0, time_budget_minutes=2, schedule="time")
    assert lr_at(5, by_time, elapsed_s=60) == pytest.approx(0.6)  # still warming up
    assert lr_at(50, by_time, elapsed_s=60) == pytest.approx(0.1 + 0.9 * 0.5)  # half the budget: half-way down
    assert lr_at(50, by_time, elapsed_s=500) == pytest.approx(0.1)
    with pytest.raises(UserError, match="time budget"):
        TrainSettings(schedule="time")


def test_time_budget_counts_the_whole_run_across_resumes(dataset, tmp_path):
    run = tmp_path / "run"
    settings = TrainSettings(steps=3, batch_size=4, warmup=1, checkpoint_every=3, time_budget_minutes=60,
                             schedule="time")
    train(dataset, run, preset("tiny"), settings, log=lambda line: None)
    first = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    settings.steps = 6
    train(dataset, run, preset("tiny"), settings, resume=True, log=lambda line: None)
    second = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert second["step"] == 6 and second["wall_s"] >= first["wall_s"]


def test_a_time_scheduled_run_shows_its_progress_in_minutes_of_the_budget(dataset, tmp_path, capsys):
    """Its step count is only a ceiling (often 10^6): a bar of steps would show an ETA of hundreds of hours."""
    settings = TrainSettings(steps=2, batch_size=4, warmup=1, checkpoint_every=2, time_budget_minutes=30,
                             schedule="time")
    train(dataset, tmp_path / "run", preset("tiny"), settings, log=lambda line: None)
    bar = capsys.readouterr().err.splitlines()[-1]
    assert "/30.0 min" in bar and "step=2" in bar and "/2 [" not in bar


def test_the_reconstruction_term_trains_a_decoder_with_the_model_and_the_checkpoint_carries_it(dataset, tmp_path):
    from lewm.decoder.model import decoder_matches_encoder, load_decoder

    run = tmp_path / "run"
    settings = TrainSettings(steps=2, batch_size=4, warmup=1, checkpoint_every=2, lr=1e-2, reconstruction_weight=1.0)
    checkpoint = train(dataset, run, preset("tiny"), settings, log=lambda line: None)
    first = load_decoder(checkpoint)
    assert decoder_matches_encoder(checkpoint) and first.head.weight.abs().sum() > 0  # it started at zero
    assert np.isfinite(json.loads((run / "log.jsonl").read_text().splitlines()[-1])["reconstruction"])
    settings.steps = 4
    train(dataset, run, preset("tiny"), settings, resume=True, log=lambda line: None)
    # the resumed run went on with the checkpoint's decoder: two more Adam steps of lr 1e-2 move a weight by at
    # most about 2e-2, where a new decoder's random initialisation would differ by far more
    change = (load_decoder(checkpoint).fc.weight - first.fc.weight).abs()
    assert 0 < change.max() < 2.5e-2


def test_init_fine_tunes_from_a_model_folder(dataset, tmp_path):
    import torch

    base = train(dataset, tmp_path / "base", preset("tiny"), TrainSettings(steps=2, batch_size=4, warmup=1),
                 log=lambda line: None)
    start = load_model_folder(base)
    # lr 0: the fine-tuned weights must be exactly the ones it started from (BatchNorm statistics are re-estimated)
    tuned = train(dataset, tmp_path / "tuned", start.config, TrainSettings(steps=2, batch_size=4, warmup=1, lr=0.0),
                  init=base, log=lambda line: None)
    after = load_model_folder(tuned)
    for name, value in start.named_parameters():
        assert torch.equal(value, dict(after.named_parameters())[name]), name
    assert after.config.action_mean == start.config.action_mean
    assert json.loads((tmp_path / "tuned" / "settings.json").read_text())["init"] == str(base)


def test_train_command_refuses_init_with_resume(dataset, tmp_path):
    from lewm_cli import main

    run = tmp_path / "run"
    base = train(dataset, run, preset("tiny"), TrainSettings(steps=2, batch_size=4, warmup=1), log=lambda line: None)
    # a run that could be resumed and a folder that could be fine-tuned: asking for both is refused, not guessed
    assert main(["train", "--data", str(dataset), "--run", str(run), "--init", str(base), "--resume",
                 "--steps", "2", "--batch-size", "4"]) == 2


def test_train_command_resumes_with_the_checkpoint_sizes_not_the_default_preset(dataset, tmp_path, capsys):
    """A run of the tiny preset at its 32 px, resumed with no --preset: the default preset's 64 px drew frames its
    encoder could not take."""
    from lewm_cli import main

    run = tmp_path / "run"
    common = ["train", "--data", str(dataset), "--run", str(run), "--batch-size", "4", "--warmup", "1",
              "--checkpoint-every", "2"]
    assert main(common + ["--preset", "tiny", "--steps", "2"]) == 0
    assert main(common + ["--resume", "--steps", "4"]) == 0
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 4]
    assert main(common + ["--resume", "--steps", "6", "--set", "image_size=64"]) == 2
    assert "--set image_size=64 differs from its image_size=32" in capsys.readouterr().err
    assert main(common + ["--resume", "--steps", "6", "--set", "image_size=32"]) == 0  # the same sizes: taken


def test_train_command_sets_the_sigreg_weight(dataset, tmp_path):
    from lewm_cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", str(dataset), "--run", str(run), "--preset", "tiny", "--steps", "2",
                 "--batch-size", "4", "--warmup", "1", "--checkpoint-every", "2", "--sigreg-weight", "0.5"]) == 0
    assert json.loads((run / "settings.json").read_text())["sigreg_weight"] == 0.5
    last = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert last["loss"] == pytest.approx(last["pred"] + 0.5 * last["sigreg"], rel=1e-5)


def test_training_on_drawn_frames_is_training_on_stored_ones(tmp_path):
    """A dataset without pixels draws, batch by batch on the prefetch thread, exactly the frames another stores: the
    same run on each logs the same losses."""
    logs = []
    for pixels in (False, True):
        path = tmp_path / f"d{pixels}.h5"
        collect(path, episodes=2, steps=40, image_size=32, seed=3, mix={"noisy-expert:0.2": 1.0}, drawn=pixels)
        run = tmp_path / f"run{pixels}"
        train(path, run, preset("tiny"), TrainSettings(steps=3, batch_size=4, warmup=1, checkpoint_every=3),
              log=lambda line: None)
        logs.append([json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()])
    assert logs[0][-1]["loss"] == logs[1][-1]["loss"] and logs[0][-1]["cos_real"] == logs[1][-1]["cos_real"]


def test_a_drawn_dataset_held_in_memory_gives_the_batches_a_stored_one_gives(tmp_path):
    batches = []
    for drawn in (False, True):
        path = tmp_path / f"d{drawn}.h5"
        collect(path, episodes=2, steps=30, image_size=32, seed=5, mix={"noisy-expert:0.2": 1.0}, drawn=drawn)
        with EpisodeDataset(path, 32) as d:
            sampler = ClipSampler(d, preset("tiny"), hold_drawn=drawn)
            assert drawn is False or sampler.pixels.shape == (62, 32, 32, 3)
            batches.append(sampler.batch(np.array([0, 7, 19])))
    assert all(torch.equal(a, b) for a, b in zip(*batches))


def test_bf16_autocast_and_the_two_step_loss_train(dataset, tmp_path):
    settings = TrainSettings(steps=2, batch_size=4, warmup=1, checkpoint_every=2, precision="bf16", rollout_steps=2)
    train(dataset, tmp_path / "run", preset("tiny", stem="conv"), settings, log=lambda line: None)
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["loss"]) and record["step"] == 2
    with pytest.raises(UserError, match="precision"):
        TrainSettings(precision="fp8")
    with pytest.raises(UserError, match="--rollout-steps 3 or less"):
        train(dataset, tmp_path / "run4", preset("tiny"), TrainSettings(steps=2, batch_size=4, rollout_steps=4))


def test_the_train_command_names_its_flags_where_the_library_does_not(dataset, tmp_path, capsys):
    from lewm_cli import main

    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    base = ["train", "--data", str(dataset), "--preset", "tiny", "--steps", "1"]
    assert main(base + ["--run", str(run)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(base + ["--run", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume in --run" in capsys.readouterr().err
    assert main(base + ["--run", str(tmp_path / "new"), "--batch-size", "3", "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size 3 does not split evenly over 2 processes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_the_frozen_encoder_trainers_schedule_warms_up_then_decays_by_steps_or_time():
    from lewm.training.schedule import warmup_cosine

    assert warmup_cosine(1.0, 0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(1.0, 10, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(1.0, 60, 10, 110) == pytest.approx(0.05 + 0.95 * 0.5)  # half the steps after the warm-up
    assert warmup_cosine(1.0, 110, 10, 110) == pytest.approx(0.05)
    assert warmup_cosine(1.0, 10, 10, 110, elapsed_s=30, budget_minutes=1) == pytest.approx(0.05 + 0.95 * 0.5)
    assert warmup_cosine(1.0, 5, 0, 10) == pytest.approx(0.05 + 0.95 * 0.5)  # no warm-up
