import pytest
import torch

from lewm.config import ModelConfig, preset
from lewm.model import LeWM, count_parameters


def test_paper_config_matches_the_released_checkpoint():
    model = LeWM(preset("paper"))
    assert count_parameters(model.encoder) == 5_501_376
    assert count_parameters(model.predictor) == 10_791_360
    assert count_parameters(model.action_encoder) == 156_206
    assert count_parameters(model.projector) == 792_768
    assert count_parameters(model.pred_proj) == 792_768
    assert count_parameters(model) == 18_034_478
    state = model.state_dict()
    assert len(state) == 303
    assert state["encoder.encoder.layer.11.attention.attention.query.weight"].shape == (192, 192)
    assert state["encoder.embeddings.position_embeddings"].shape == (1, 257, 192)
    assert state["predictor.transformer.layers.5.attn.to_qkv.weight"].shape == (3072, 192)
    assert state["predictor.transformer.layers.5.attn.to_out.0.weight"].shape == (192, 1024)
    assert state["predictor.transformer.layers.5.mlp.net.4.weight"].shape == (192, 2048)
    assert state["predictor.transformer.layers.5.adaLN_modulation.1.weight"].shape == (1152, 192)
    assert state["action_encoder.patch_embed.weight"].shape == (10, 10, 1)
    assert "pred_proj.net.1.num_batches_tracked" in state


def test_config_round_trip_keeps_unknown_sections(tmp_path):
    config = preset("tiny", action_mean=[0.5, 0.25])
    config.extra["onnx"] = {"encoder": "encoder.onnx"}
    config.save(tmp_path / "config.json")
    loaded = ModelConfig.load(tmp_path / "config.json")
    assert loaded == config
    assert loaded.action_block_dim == 10
    assert loaded.to_dict()["onnx"] == {"encoder": "encoder.onnx"}


def test_shapes(make_model, make_frames):
    model = make_model()
    z = model.encode_frames(make_frames(6))
    assert z.shape == (6, 32) and z.dtype == torch.float32
    z_window = z.view(2, 3, 32)
    actions = torch.randn(2, 3, 10)
    assert model.predict_next(z_window, actions).shape == (2, 32)
    assert model.predict(z_window, model.embed_actions(actions)).shape == (2, 3, 32)
    assert model.predict_next(z_window[:, :1], actions[:, :1]).shape == (2, 32)


@pytest.mark.parametrize("changed", [0, 1, 2])
def test_predictor_is_causal(make_model, changed):
    """Changing token `changed` (its latent and its action) changes the outputs from that token on, never before."""
    model = make_model()
    z, actions = torch.randn(1, 3, 32), torch.randn(1, 3, 10)
    out = model.predict(z, model.embed_actions(actions))
    z2, actions2 = z.clone(), actions.clone()
    z2[:, changed] += 1.0
    actions2[:, changed] += 1.0
    out2 = model.predict(z2, model.embed_actions(actions2))
    torch.testing.assert_close(out[:, :changed], out2[:, :changed])
    for later in range(changed, 3):
        assert not torch.allclose(out[:, later], out2[:, later]), later


def test_adaln_zero_blocks_start_as_identity():
    model = LeWM(preset("tiny")).train()
    x, c = torch.randn(2, 3, 32), torch.randn(2, 3, 32)
    for block in model.predictor.transformer.layers:
        torch.testing.assert_close(block(x, c), x)


def test_predict_next_z_scores_actions_and_takes_the_last_token(make_model):
    """predict_next computes the last position alone in the last layer; it must equal the full pass's last token at
    every window length."""
    model = make_model()
    z, raw = torch.randn(2, 3, 32), torch.randn(2, 3, 10)
    normalised = (raw - torch.tensor([0.1, -0.2] * 5)) / torch.tensor([0.5, 2.0] * 5)
    for t in (1, 2, 3):
        expected = model.predict(z[:, :t], model.embed_actions(normalised[:, :t]))[:, -1]
        torch.testing.assert_close(model.predict_next(z[:, :t], raw[:, :t]), expected)


@pytest.mark.parametrize("context", [1, 2, 3])
def test_rollout_is_predict_next_on_a_sliding_window(make_model, context):
    """The fused rollout (cached keys and values while the window grows, each block's modulations once) gives the
    latents of predict_next called step by step on the newest `history` latents, real then predicted."""
    model = make_model()
    torch.manual_seed(context)
    z, blocks = torch.randn(4, context, 32), torch.randn(4, context - 1 + 5, 10)
    window, taken, expected = list(z.unbind(1)), list(blocks[:, :context].unbind(1)), []
    with torch.no_grad():
        for h in range(5):
            expected.append(model.predict_next(torch.stack(window, 1), torch.stack(taken, 1)))
            window = (window + [expected[-1]])[-3:]
            if h < 4:
                taken = (taken + [blocks[:, context + h]])[-len(window):]
        fused = model.rollout(z, blocks)
    assert fused.shape == (4, 5, 32)
    torch.testing.assert_close(fused, torch.stack(expected, 1), rtol=1e-5, atol=1e-5)


def test_encode_frames_normalises_like_imagenet(make_model, make_frames):
    model = make_model()
    frames = make_frames(2)
    pixels = frames.permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model.encode_frames(frames), model.encode((pixels - mean) / std))


def test_the_conv_stem_reaches_the_patch_grid_by_stride_two_convolutions(make_frames):
    from lewm_errors import UserError

    config = preset("tiny", image_size=32, patch_size=8, stem="conv")
    model = LeWM(config).eval()
    stem = model.encoder.embeddings.patch_embeddings
    strided = [m for m in stem.stem if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride for m in strided] == [(2, 2)] * 3 and strided[-1].out_channels == config.enc_width
    tokens = stem(model.preprocess_frames(make_frames(2)))
    assert tokens.shape == (2, config.num_patches, config.enc_width)
    # a patch stem's checkpoint keys are unchanged by the option
    assert not any(".stem." in k for k in LeWM(preset("tiny")).state_dict())
    with pytest.raises(UserError, match="power of two"):
        preset("tiny", image_size=36, patch_size=12, stem="conv")


def test_the_cnn_encoder_keeps_each_cell_of_its_grid_in_place(make_frames):
    """The cnn encoder: log2(patch_size) stride-2 convolutions, then the grid flattened, so that the same picture in
    another cell gives another latent (a global average would give the same one), and no transformer weights."""
    from lewm_errors import UserError

    config = preset("tiny", image_size=32, patch_size=8, encoder="cnn")
    model = LeWM(config).eval()
    strided = [m for m in model.encoder.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride for m in strided] == [(2, 2)] * 3 and [m.out_channels for m in strided] == [32, 32, 32]
    assert not any(".layer." in k or "cls_token" in k for k in model.state_dict())
    frames = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    frames[0, 2:6, 2:6] = 255      # a white square in the top-left cell
    frames[1, 26:30, 26:30] = 255  # the same square in the bottom-right cell
    with torch.no_grad():
        z = model.encode_frames(frames)
    assert z.shape == (2, config.latent_dim) and not torch.allclose(z[0], z[1], atol=1e-3)
    with pytest.raises(UserError, match="power of two"):
        preset("tiny", image_size=36, patch_size=12, encoder="cnn")
    with pytest.raises(UserError, match="choose vit, cnn or keypoints"):
        preset("tiny", encoder="resnet")


def test_the_spatial_soft_argmax_finds_the_cell_a_map_peaks_on():
    from lewm.model import KeypointEncoder, spatial_soft_argmax

    config = preset("tiny", image_size=32, patch_size=8, encoder="keypoints")
    grid_xy = KeypointEncoder(config).grid_xy  # the 4 x 4 cells' centres, row by row
    maps = torch.zeros(1, 2, 16)
    maps[0, 0, 1 * 4 + 3] = 50.0  # row 1, column 3
    maps[0, 1, 2 * 4 + 0] = 50.0  # row 2, column 0
    assert torch.allclose(spatial_soft_argmax(maps, grid_xy)[0], torch.tensor([[0.75, -0.25], [-0.75, 0.25]]),
                          atol=1e-4)
    uniform = spatial_soft_argmax(torch.zeros(1, 1, 16), grid_xy)
    assert torch.allclose(uniform, torch.zeros(1, 1, 2), atol=1e-6)  # no peak: the grid's centre


def test_the_keypoint_encoder_tells_where_a_thing_is():
    """The keypoints encoder (convolutions, then a spatial soft-argmax): the same picture in another place gives
    another latent, and its coordinates pass through the keypoints (not only the mean features, which a moved
    picture leaves almost alike)."""
    config = preset("tiny", image_size=32, patch_size=8, encoder="keypoints")
    model = LeWM(config).eval()
    frames = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    frames[0, 2:6, 2:6] = 255
    frames[1, 26:30, 26:30] = 255
    with torch.no_grad():
        z = model.encode_frames(frames)
        keypoints = model.encoder.keypoints(model.encoder.trunk(model.preprocess_frames(frames)))
    assert z.shape == (2, config.latent_dim) and not torch.allclose(z[0], z[1], atol=1e-3)
    assert keypoints.shape == (2, config.enc_width // 2, 2) and (keypoints[0] - keypoints[1]).abs().max() > 1e-3
    assert not any(".layer." in k or "cls_token" in k for k in model.state_dict())


def test_the_two_step_loss_feeds_the_first_predictions_back(make_model, make_frames):
    import torch.nn.functional as F

    from lewm.sigreg import lewm_loss

    model = make_model(dropout=0.0).train()  # no dropout: both computations see the same network
    frames, blocks = make_frames(4, 4), torch.randn(4, 3, model.config.action_block_dim)
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    one = lewm_loss(model, frames, blocks, generator=generator()).pred
    two = lewm_loss(model, frames, blocks, generator=generator(), rollout_steps=2).pred
    emb = model.encode(model.preprocess_frames(frames.flatten(0, 1))).view(4, 4, -1)
    act = model.embed_actions(model.normalise_actions(blocks))
    pred = model.predict(emb[:, :3], act)
    fed = model.predict(torch.cat([emb[:, :1], pred[:, :2]], 1), act)
    assert two.item() == pytest.approx((one.item() + F.mse_loss(fed[:, 1:], emb[:, 2:]).item()) / 2, rel=1e-4)


def test_the_three_step_loss_scores_a_pure_three_step_rollout(make_model, make_frames):
    import torch.nn.functional as F

    from lewm.sigreg import lewm_loss

    model = make_model().eval()  # eval: the projectors' BatchNorm uses the same statistics for every window length
    frames, blocks = make_frames(4, 4), torch.randn(4, 3, model.config.action_block_dim)
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    two = lewm_loss(model, frames, blocks, generator=generator(), rollout_steps=2).pred
    three = lewm_loss(model, frames, blocks, generator=generator(), rollout_steps=3).pred
    emb = model.encode(model.preprocess_frames(frames.flatten(0, 1))).view(4, 4, -1)
    act = model.embed_actions(model.normalise_actions(blocks))
    with torch.no_grad():  # z_3 predicted from z_0 alone, one step at a time, as the planner rolls out
        window = emb[:, :1]
        for k in range(3):
            window = torch.cat([window, model.predict(window, act[:, :k + 1])[:, -1:]], 1)
    third = F.mse_loss(window[:, 3], emb[:, 3]).item()
    assert three.item() == pytest.approx((2 * two.item() + third) / 3, rel=1e-4)
