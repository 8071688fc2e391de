"""The pixel decoder: sizes, its loss, training on a frozen tiny model (loss falls, checkpoints, resume, saving into
a model folder), and reading positions and image quality from pictures."""
import json

import numpy as np
import pytest
import torch

from lewm.checkpoint import save_model_folder
from lewm.config import ModelConfig
from lewm.decoder.model import (DecoderConfig, PixelDecoder, TorchDecoder, decoder_loss, decoder_matches_encoder,
                          has_decoder, load_decoder)
from lewm.decoder.pixels import position_errors, psnr, read_positions, ssim, state_positions
from lewm.decoder.training import DecoderTrainSettings, train_decoder
from scenes.collect import collect
from lewm_errors import UserError
from scenes.render import draw_state


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    collect(path, episodes=3, steps=30, image_size=32, seed=0, mix={"expert": 1.0})
    return path


@pytest.fixture
def model_folder(make_model, tmp_path):
    model = make_model()
    return save_model_folder(model, model.config, tmp_path / "model")


@pytest.mark.parametrize("size, patch, seed_side", [(128, 4, 16), (224, 4, 28), (64, 4, 8), (32, 2, 8), (6, 3, 1)])
def test_decoder_maps_latents_to_frames_of_the_model_size(size, patch, seed_side):
    config = DecoderConfig(latent_dim=16, image_size=size, width=8, seed_channels=4, fine_width=4, patch=patch)
    assert config.seed_side == seed_side
    out = PixelDecoder(config)(torch.randn(3, 16)).detach()
    assert out.shape == (3, size, size, 3)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_decoder_starts_from_its_background_and_paints_a_residual_over_it():
    config = DecoderConfig(latent_dim=16, image_size=32, width=8, seed_channels=4, fine_width=4)
    decoder = PixelDecoder(config)
    background = torch.rand(32, 32, 3)
    decoder.start_from(background)
    z = torch.randn(2, 16)
    assert torch.equal(decoder(z).detach(), background.expand(2, -1, -1, -1))
    with torch.no_grad():
        decoder.head.bias.fill_(0.75)  # paint every pixel 0.75 brighter
    assert torch.equal(decoder(z).detach(), (background + 0.75).clamp(0, 1).expand(2, -1, -1, -1))
    # training sees the sum unclamped, so a pixel pushed past 1 still has a gradient back
    unclamped = decoder(z, clamp=False)
    assert float(unclamped.detach().max()) > 1.5
    unclamped.sum().backward()
    assert float(decoder.head.bias.grad.abs().min()) > 0


def test_decoder_config_errors_say_what_to_do():
    with pytest.raises(UserError, match="--patch"):
        DecoderConfig(latent_dim=16, image_size=36, patch=4)  # 36 is no multiple of 8
    earlier = {"latent_dim": 16, "image_size": 32, "width": 96, "seed_channels": 32, "min_width": 16}
    with pytest.raises(UserError, match="retrain"):  # a decoder of the transposed-convolution stack before it
        DecoderConfig.from_dict(earlier)
    with pytest.raises(UserError, match="retrain"):
        DecoderConfig.from_dict({**earlier, "architecture": "something-else"})
    with pytest.raises(UserError, match="retrain"):  # the opacity-blending patch decoder before this one
        DecoderConfig.from_dict({"latent_dim": 16, "image_size": 32, "architecture": "patch", "fine_width": 16})


def test_loss_charges_an_error_on_the_agent_more_than_one_on_the_background():
    background = torch.ones(8, 8, 3)
    target = background.clone()[None]
    target[0, 2, 2] = torch.tensor([0.25, 0.4, 0.9])  # an agent pixel
    off_agent, off_floor = target.clone(), target.clone()
    off_agent[0, 2, 2] += 0.1
    off_floor[0, 6, 6] -= 0.1
    loss_agent, _ = decoder_loss(off_agent, target, background, edge_weight=0.0)
    loss_floor, _ = decoder_loss(off_floor, target, background, edge_weight=0.0)
    assert loss_agent > 3 * loss_floor
    # the edge term: a blurred edge costs more than the same edge in place
    sharp = torch.zeros(1, 8, 8, 3)
    sharp[:, :, 4:] = 1
    blurred = sharp.clone()
    blurred[:, :, 3:5] = 0.5
    _, parts = decoder_loss(blurred, sharp, background)
    assert parts["edge_l1"] > 0


def test_a_few_training_steps_lower_the_loss(make_model):
    torch.manual_seed(0)
    model = make_model()
    frames = torch.from_numpy(np.stack([draw_state(np.array([100 + 30 * i, 200, 256, 256, 0.3 * i, 0, 0]), 32)
                                        for i in range(8)]))
    with torch.no_grad():
        z = model.encode_frames(frames)
    decoder = PixelDecoder(DecoderConfig.for_model(model.config, width=32))
    target = frames.float() / 255
    background = target.median(0).values
    decoder.standardise_with(z)
    decoder.start_from(background)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=3e-2)
    losses = []
    for _ in range(60):
        loss, _ = decoder_loss(decoder(z), target, background)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.93 * np.mean(losses[:5])


def test_train_decoder_checkpoints_resumes_and_saves_into_the_model_folder(model_folder, dataset, tmp_path, capsys):
    from lewm.decoder.model import save_decoder

    run = tmp_path / "run"
    config = DecoderConfig.for_model(ModelConfig.load(model_folder / "config.json"), width=16)
    settings = DecoderTrainSettings(steps=4, batch_size=4, warmup=1, checkpoint_every=2)
    train_decoder(model_folder, dataset, run, config, settings, log=lambda line: None)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert all(np.isfinite(r["val_psnr_db"]) for r in log)
    assert (run / "latents.npz").is_file()
    with pytest.raises(UserError, match="already holds a decoder checkpoint"):
        train_decoder(model_folder, dataset, run, config, settings, log=lambda line: None)
    from lewm_cli import main  # the command names its flags, the library does not

    assert main(["train-decoder", "--model", str(model_folder), "--data", str(dataset), "--run", str(run)]) == 2
    assert "pass --resume to continue it" in capsys.readouterr().err
    settings.steps = 6
    decoder, facts = train_decoder(model_folder, dataset, run, config, settings, resume=True, log=lambda line: None)
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 4, 6]
    assert facts["trained"]["steps"] == 6

    assert not has_decoder(model_folder)
    save_decoder(decoder, model_folder, facts)
    section = ModelConfig.load(model_folder / "config.json").extra["decoder"]
    assert section["width"] == 16 and section["trained"]["steps"] == 6
    assert decoder_matches_encoder(model_folder)
    loaded = load_decoder(model_folder)
    z = np.random.default_rng(0).standard_normal((2, config.latent_dim)).astype(np.float32)
    out = TorchDecoder(loaded).decode(z)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out, TorchDecoder(decoder).decode(z))


def test_load_decoder_says_how_to_make_one(model_folder):
    with pytest.raises(UserError, match="lewm train-decoder"):
        load_decoder(model_folder)


def test_positions_read_from_rendered_frames_match_the_state():
    rng = np.random.default_rng(0)
    states = np.column_stack([rng.uniform(80, 430, (12, 4)), rng.uniform(0, 2 * np.pi, 12), np.zeros((12, 2))])
    states[:, :2] = states[:, 2:4] + 150  # keep the agent off the block, inside the arena
    states[:, :2] = np.clip(states[:, :2], 30, 480)
    frames = np.stack([draw_state(s, 128) for s in states])
    errors = position_errors(read_positions(frames), state_positions(states, 128))
    assert np.nanmax(errors["agent_px"]) < 1.0
    assert np.nanmedian(errors["block_px"]) < 1.0
    assert np.nanmedian(errors["block_axis_deg"]) < 3.0
    blank = read_positions(np.full((1, 128, 128, 3), 130, np.uint8))  # a flat grey picture is no block
    assert np.isnan(blank["block"]).all()


def test_psnr_and_ssim():
    rng = np.random.default_rng(0)
    frame = draw_state(np.array([100.0, 100, 300, 300, 1.0, 0, 0]), 64)
    noisy = np.clip(frame + rng.normal(0, 8, frame.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(frame + rng.normal(0, 24, frame.shape), 0, 255).astype(np.uint8)
    assert ssim(frame, frame) == pytest.approx(1.0)
    assert psnr(noisy, frame) > psnr(noisier, frame)
    assert 1.0 > ssim(noisy, frame) > ssim(noisier, frame)
    assert psnr(np.stack([noisy, noisier]), np.stack([frame, frame])).shape == (2,)
