import torch

from lewm.sigreg import lewm_loss, sigreg


def test_sigreg_scores_a_gaussian_near_one_and_a_collapse_far_higher():
    gaussian = sigreg(torch.randn(256, 32))
    collapsed = sigreg(torch.ones(256, 32) * 0.3)
    assert 0.5 < gaussian.item() < 2.0
    assert collapsed.item() > 20


def test_sigreg_averages_over_time():
    z = torch.randn(4, 128, 16)
    assert 0.5 < sigreg(z).item() < 2.0
    assert sigreg(z).shape == ()


def test_sigreg_under_bf16_autocast_is_computed_in_float32():
    """Autocast would run the projections (and so their cos / sin) in bfloat16: a percent off, and noisy."""
    z = torch.randn(4, 64, 128, generator=torch.Generator().manual_seed(0))
    exact = sigreg(z, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = sigreg(z.bfloat16().float(), generator=torch.Generator().manual_seed(1))
    assert under_autocast.dtype == torch.float32
    assert torch.isclose(under_autocast, sigreg(z.bfloat16().float(), generator=torch.Generator().manual_seed(1)),
                         rtol=1e-6)
    assert torch.isclose(under_autocast, exact, rtol=1e-2)


def test_a_few_adamw_steps_lower_the_loss(make_model, make_frames):
    model = make_model().train()
    frames, actions = make_frames(8, 4), torch.randn(8, 4, 10)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    losses = []
    for _ in range(8):
        torch.manual_seed(1)  # same SIGReg projections and dropout each step: a deterministic objective
        total, pred_loss, reg, _ = lewm_loss(model, frames, actions)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        losses.append(total.item())
    assert torch.isfinite(pred_loss) and torch.isfinite(reg)
    assert losses[-1] < losses[0]


def test_nan_actions_past_the_episode_end_count_as_the_mean_action(make_model, make_frames):
    model = make_model()
    frames, actions = make_frames(2, 4), torch.randn(2, 4, 10)
    actions[1, 2:] = float("nan")
    as_mean, as_zero = actions.clone(), actions.clone()
    as_mean[1, 2:] = model.action_mean  # the raw mean action: 0 once z-scored
    as_zero[1, 2:] = 0.0

    def loss(a):
        torch.manual_seed(1)  # the same SIGReg projections for every call
        return lewm_loss(model, frames, a)

    total, pred_loss, reg, _ = loss(actions)
    assert torch.isfinite(total)
    mean_total, mean_pred, _, _ = loss(as_mean)
    torch.testing.assert_close(pred_loss, mean_pred)
    torch.testing.assert_close(total, mean_total)
    assert not torch.isclose(pred_loss, loss(as_zero)[1])  # the raw zero action is not the mean (0.1, -0.2)
