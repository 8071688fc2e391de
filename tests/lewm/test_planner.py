"""The CEM planner (lewm/planning/planner.py) and the planning evaluation's rules (lewm/planning/evaluation.py)."""
import math

import numpy as np
import pytest
import torch

from lewm.model_interface import ROLLOUT
from lewm.planning.planner import LatentPlanner, PlannerSettings, RecedingHorizon, agent_paths, coloured_noise, minimise
from lewm.planning.evaluation import baseline_trial, make_trials, wilson_interval
from scenes.pusht import pose_success
from lewm.torch_backend import TorchBackend
from lewm_errors import UserError


def test_cem_converges_on_a_toy_cost():
    target = np.random.default_rng(1).normal(size=(5, 10)) * 0.5  # within the initial spread
    seen = []

    def cost(x):
        return ((x - target) ** 2).sum(axis=(1, 2))

    result = minimise(cost, target.shape, PlannerSettings(), np.random.default_rng(0), seen.append)
    assert np.abs(result.mean - target).max() < 0.02
    assert len(result.elite_cost) == 30 and result.elite_cost[-1] < 1e-2 * result.elite_cost[0]
    # each iteration's first candidate is the mean the previous elites gave
    for before, after in zip(seen[:-1], seen[1:]):
        assert np.allclose(after.samples[0], before.samples[before.elites].mean(axis=0))
    assert np.array_equal(seen[0].samples[0], np.zeros(target.shape))
    assert all(len(it.samples) == 300 and len(it.elites) == 30 for it in seen)


def test_cem_settings_reject_nonsense():
    with pytest.raises(UserError, match="elites"):
        PlannerSettings(samples=10, elites=20)
    with pytest.raises(UserError, match="receding"):
        PlannerSettings(horizon=3, receding_horizon=4)


class CountingModel:
    """A real (tiny) model behind the interface, counting the predictor's calls and batch sizes."""

    capabilities = frozenset()  # encode and predict only

    def __init__(self, model):
        self.inner = model
        self.config, self.history, self.frameskip = model.config, model.history, model.frameskip
        self.image_size = model.image_size
        self.batches = []

    def encode(self, frames):
        return self.inner.encode(frames)

    def predict(self, z, a):
        self.batches.append((z.shape, a.shape))
        return self.inner.predict(z, a)


def test_planner_batches_one_predictor_call_per_horizon_step(make_model):
    model = CountingModel(TorchBackend(make_model()))
    settings = PlannerSettings(samples=40, iterations=3, elites=5, horizon=4, receding_horizon=2)
    planner = LatentPlanner(model, settings)
    d = model.config.latent_dim
    plan = planner.plan(np.zeros((1, d), np.float32), np.zeros((0, 10), np.float32), np.ones(d),
                        np.random.default_rng(0))
    # 3 iterations x 4 horizon steps of the 40 candidates, then one rollout of the chosen plan
    assert [b[0][0] for b in model.batches] == [40] * 12 + [1] * 4
    assert [b[0][1] for b in model.batches[:4]] == [1, 2, 3, 3]  # the window grows to the history
    assert plan.blocks.shape == (4, 10) and np.all(np.abs(plan.blocks) <= 1)
    assert len(plan.elite_cost) == 3 and plan.seconds > 0
    assert plan.cost == pytest.approx(((plan.end_latent - 1.0) ** 2).sum(), rel=1e-5)


class CountingRollouts(CountingModel):
    """A model with the fused rollout call; it counts those calls too."""

    capabilities = frozenset({ROLLOUT})

    def __init__(self, model):
        super().__init__(model)
        self.rollouts = []

    def fits_rollout(self, context, horizon):
        return self.inner.fits_rollout(context, horizon)

    def rollout(self, z, a):
        self.rollouts.append((z.shape, a.shape))
        return self.inner.rollout(z, a)


@pytest.mark.parametrize("context", [1, 3])
def test_a_fused_rollout_makes_the_plan_the_steps_make(make_model, context):
    """Where the model has a rollout call for the context and horizon, each iteration is one call, and the plan is
    the one that predictor calls step by step give."""
    backend = TorchBackend(make_model())
    settings = PlannerSettings(samples=40, iterations=3, elites=5, horizon=4, receding_horizon=2, context=context)
    d, rng = backend.config.latent_dim, np.random.default_rng(5)
    z, past = rng.standard_normal((context, d)).astype(np.float32), rng.standard_normal((context - 1, 10))
    steps, fused = CountingModel(backend), CountingRollouts(backend)
    by_steps = LatentPlanner(steps, settings).plan(z, past, np.ones(d), np.random.default_rng(0))
    by_rollout = LatentPlanner(fused, settings).plan(z, past, np.ones(d), np.random.default_rng(0))
    assert not fused.batches and [r[1] for r in fused.rollouts] == [(40, context + 3, 10)] * 3 + [(1, context + 3, 10)]
    assert len(steps.batches) == 4 * 4
    np.testing.assert_allclose(by_rollout.blocks, by_steps.blocks, atol=1e-5)
    np.testing.assert_allclose(by_rollout.end_latent, by_steps.end_latent, atol=1e-5)


def test_actions_are_mapped_back_with_the_model_statistics(make_model):
    planner = LatentPlanner(TorchBackend(make_model()))  # action_mean [0.1, -0.2], action_std [0.5, 2.0]
    raw = planner.to_raw(np.tile([[1.0, 0.1]], 5).reshape(1, 10))
    assert np.allclose(raw.reshape(5, 2), [[0.6, 0.0]])
    assert planner.to_raw(np.full(10, 5.0)).max() == 1.0  # clipped to the action space


def test_receding_horizon_executes_the_plan_then_replans(make_model):
    model = TorchBackend(make_model())
    mpc = RecedingHorizon(LatentPlanner(model, PlannerSettings(samples=8, iterations=2, elites=2, receding_horizon=2,
                                                           context=3)))
    rng = np.random.default_rng(0)
    frames = np.random.default_rng(1).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    plans, contexts = [], []
    for t in range(30):
        if mpc.wants_frame():
            mpc.observe(model.encode(frames[t][None])[0])
        if mpc.needs_plan():
            contexts.append(mpc.context())
            plans.append(mpc.plan(np.zeros(model.config.latent_dim), rng))
            mpc.accept(plans[-1])
        mpc.next_action()
    assert len(plans) == 3  # at env steps 0, 10 and 20
    assert [len(z) for z, _ in contexts] == [1, 3, 3]
    # the context blocks are the actions taken: the first plan's two executed blocks
    assert np.allclose(contexts[1][1], plans[0].blocks[:2])


def test_agent_paths_follow_the_targets():
    paths = agent_paths(np.array([100.0, 500.0]), np.array([[[0.5, 0.0], [0.0, 0.5]]]), 100.0, 512.0)
    assert np.allclose(paths[0], [[100, 500], [150, 500], [150, 512]])  # clipped to the arena


def test_success_rule():
    goal = np.array([200.0, 300.0, 256.0, 256.0, 0.05, 0.0, 0.0])
    assert pose_success(goal, goal)
    near = goal + [0, 19.9, 19.9, 0, 0, 5, 5]
    assert pose_success(near, goal)
    assert not pose_success(goal + [20.1, 0, 0, 0, 0, 0, 0], goal)  # the agent too far
    assert not pose_success(goal + [0, 0, 14.2, 14.2, 0, 0, 0], goal)  # the block 20.08 away
    assert pose_success(goal + [0, 0, 0, 0, math.pi / 9 - 0.01, 0, 0], goal)
    assert not pose_success(goal + [0, 0, 0, 0, math.pi / 9 + 0.01, 0, 0], goal)
    wrapped = goal.copy()
    wrapped[4] = 2 * math.pi - 0.05  # 0.1 rad from 0.05 across the wrap
    assert pose_success(wrapped, goal)


def test_wilson_interval():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_the_experts_own_actions_reach_each_trials_goal():
    trials = make_trials(2, 1_000_000, np.random.default_rng(0), goal_offset=25, budget=50)
    assert [t.episode_seed for t in trials] == sorted({t.episode_seed for t in trials})
    for t in trials:
        assert t.episode_seed >= 1_000_000 and t.expert_actions.shape == (50, 2)
        expert = baseline_trial("expert", t, 16, np.random.default_rng(0))
        assert expert.success and expert.steps <= 25


@pytest.mark.parametrize("solver", ["icem", "mppi"])
def test_icem_and_mppi_converge_on_a_toy_cost(solver):
    rng = np.random.default_rng(1)  # a target that varies slowly along the horizon, as action sequences do
    target = np.repeat(rng.normal(size=(1, 10)) * 0.5, 5, axis=0) + rng.normal(size=(5, 10)) * 0.05
    seen = []

    def cost(x):
        return ((x - target) ** 2).sum(axis=(1, 2))

    result = minimise(cost, target.shape, PlannerSettings(solver=solver), np.random.default_rng(0), seen.append)
    assert np.abs(result.mean - target).max() < 0.15
    assert result.elite_cost[-1] < 1e-2 * result.elite_cost[0]
    if solver == "icem":  # the best 30% of each iteration's elites are candidates of the next one
        for before, after in zip(seen[:-1], seen[1:]):
            assert np.array_equal(after.samples[-9:], before.samples[before.elites[:9]])


def test_coloured_noise_has_unit_variance_and_is_smoother_as_beta_grows():
    rng = np.random.default_rng(0)

    def lag_one(beta):
        x = coloured_noise(rng, (4000, 16, 2), beta)
        assert x.std() == pytest.approx(1.0, abs=0.02)
        return np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]

    assert abs(lag_one(0.0)) < 0.05 < lag_one(1.0) < lag_one(2.0)


def test_settings_reject_an_unknown_solver_and_a_negative_weight():
    with pytest.raises(UserError, match="solver"):
        PlannerSettings(solver="random-shooting")
    with pytest.raises(UserError, match="uncertainty weight"):
        PlannerSettings(uncertainty_weight=-1.0)


def test_actions_keep_to_the_bounds_of_the_data(make_model):
    model = TorchBackend(make_model())
    model.config.extra["action_bounds"] = {"low": [-0.3, -0.5], "high": [0.4, 0.5]}
    planner = LatentPlanner(model)
    raw = planner.to_raw(np.stack([np.full(10, 9.0), np.full(10, -9.0)])).reshape(2, 5, 2)
    assert np.allclose(raw[0], [0.4, 0.5]) and np.allclose(raw[1], [-0.3, -0.5])


def test_the_uncertainty_penalty_steers_plans_to_where_the_model_is_sure(make_model):
    from lewm.ensemble.model import EnsembleConfig, LatentEnsemble, TorchEnsemble

    torch.manual_seed(4)
    core = make_model()
    ensemble = LatentEnsemble(EnsembleConfig.for_model(core.config, members=4, hidden=16))
    with torch.no_grad():  # members that disagree much more for some actions than for others, and expect no noise
        ensemble.w0[:, -10:].mul_(30.0)
        ensemble.b2[..., -1] = -50.0
    model = TorchBackend(core, ensemble=TorchEnsemble(ensemble))
    d, rng = model.latent_dim, np.random.default_rng(2)
    z, goal = rng.standard_normal((1, d)).astype(np.float32), rng.standard_normal(d)
    unsure = {}
    for weight in (0.0, 100.0):
        seen = []
        plan = LatentPlanner(model, PlannerSettings(samples=64, iterations=6, elites=8, uncertainty_weight=weight)
                             ).plan(z, np.zeros((0, 10)), goal, np.random.default_rng(0), seen.append)
        assert plan.step_uncertainty.shape == (5,) and seen[0].uncertainty.shape == (64,)
        raw = LatentPlanner(model).to_raw(seen[-1].samples)
        # each candidate's uncertainty is its steps' uncertainty along its own forecast
        first = model.uncertainty(np.repeat(z, 64, 0), raw[:, 0])
        assert np.all(seen[-1].uncertainty >= first.sum(1) - 1e-6)
        unsure[weight] = plan.step_uncertainty.sum()
    assert unsure[100.0] < 0.5 * unsure[0.0]


def test_a_disagreement_penalty_ignores_the_noise_the_total_penalty_avoids(make_model):
    from lewm.ensemble.model import EnsembleConfig, LatentEnsemble, TorchEnsemble

    torch.manual_seed(5)
    core = make_model()
    ensemble = LatentEnsemble(EnsembleConfig.for_model(core.config, members=3, hidden=16))
    with torch.no_grad():  # identical members (no disagreement) whose expected error depends on the action
        ensemble.w0[:, -10:].mul_(30.0)
        for p in ensemble.parameters():
            p.copy_(p[:1].expand_as(p))
    model = TorchBackend(core, ensemble=TorchEnsemble(ensemble))
    d, rng = model.latent_dim, np.random.default_rng(3)
    z, goal = rng.standard_normal((1, d)).astype(np.float32), rng.standard_normal(d)

    def plan(**penalty):
        settings = PlannerSettings(samples=64, iterations=6, elites=8, **penalty)
        return LatentPlanner(model, settings).plan(z, np.zeros((0, 10)), goal, np.random.default_rng(0))

    plain = plan()
    assert np.array_equal(plan(uncertainty_weight=100.0, penalty="disagreement").blocks, plain.blocks)
    total = plan(uncertainty_weight=100.0, penalty="total")
    assert total.step_uncertainty.sum() < 0.5 * plain.step_uncertainty.sum()
    assert PlannerSettings(uncertainty_weight=2, penalty="disagreement").label == "cem+d2"
    with pytest.raises(UserError, match="penalty"):
        PlannerSettings(penalty="variance")


def test_an_uncertainty_weight_needs_a_model_that_serves_uncertainty(make_model):
    with pytest.raises(UserError, match="lewm train-ensemble"):
        LatentPlanner(TorchBackend(make_model()), PlannerSettings(uncertainty_weight=1.0))
