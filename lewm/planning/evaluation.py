"""The paper's PushT planning evaluation (`lewm plan`): goal-reaching from expert states, by the CEM planner and by
three baselines on the same trials.

Trials. Trial i plays a held-out expert episode (seed episode_seed + i; an episode too short to hold a trial is
skipped for the next seed), cut where the expert first covers the goal (so no trial starts in the idle tail after
it has finished); a start step t is drawn uniformly where t + goal_offset is still in the episode. The start is the
state at t, the goal the state at t + goal_offset (25), rendered as the goal frame. Every method then acts for the
budget (50 env steps) from the start state; a trial succeeds if at any step the agent and the block are within 20
units of the goal state's positions and the block's angle within pi/9 (scenes.pusht.pose_success).

Methods: one or more planners in latent space (lewm.planning.planner: a solver, CEM, iCEM or MPPI, and an uncertainty
weight; named by PlannerSettings.label, e.g. "cem", "icem+u0.5"), then "random" (uniform actions in [-1, 1]^2),
"do-nothing" (zero actions: the agent's target is where it stands), "expert" (the expert's own recorded actions from t
on, zeros past the episode's end: the protocol's upper bound). Every planner plays every trial from the same start,
with the same random generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lewm.planning.planner import PlannerSettings, LatentPlanner, Plan, RecedingHorizon
from scenes.pusht import PushT, angle_difference, pose_success

BASELINES = ("random", "do-nothing", "expert")
GOAL_OFFSET = 25
BUDGET = 50
EXPERT_STEPS = 300  # longest expert episode played for trials
DONE_COVERAGE = 0.95  # the expert has finished once the block covers this much of the goal


DEFINITIONS = {
    "success": "share of trials in which the method brought agent and block within 20 units of the goal state's "
               "positions and the block angle within pi/9 at some env step within the budget; interval_95: Wilson",
    "plan_time_s": "per planner, wall time of each plan (all iterations and the chosen plan's rollout), over every "
                   "plan made",
    "end_cost": "for each plan executed whole (receding horizon = horizon) that did not end in success first: "
                "predicted, the squared L2 distance between its forecast end embedding and the goal frame's "
                "embedding (the cost CEM minimised); realised, the same distance for the embedding of the frame "
                "actually reached when it had been executed. Medians over those plans, and the median of their ratio",
    "elite_cost_by_iteration": "per solver iteration, the mean cost of the elites (with the uncertainty penalty, "
                               "where weighted), median and quartiles over plans",
    "uncertainty": "per planner, the model's uncertainty about its chosen plans' forecasts (the sum over the plan's "
                   "steps of the ensemble's disagreement plus expected error, squared latent distance): median over "
                   "plans, where the model serves uncertainty",
}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a success rate."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Trial:
    index: int
    episode_seed: int
    start_step: int
    start: np.ndarray  # (7,) state
    goal: np.ndarray  # (7,) state
    expert_actions: np.ndarray  # (budget, 2) the recorded actions from the start on


@dataclass
class Outcome:
    success: bool
    steps: int | None  # env steps until the goal was first reached
    final: np.ndarray  # (7,) state at the end of the budget (or at success)
    plans: list[Plan] = field(default_factory=list)


def make_trials(count: int, episode_seed: int, rng: np.random.Generator, goal_offset: int = GOAL_OFFSET,
                budget: int = BUDGET) -> list[Trial]:
    from tqdm import tqdm

    from scenes.episode import ScenePlayer
    from scenes.catalog import get_scene

    trials, seed = [], episode_seed
    with tqdm(total=count, desc="expert episodes", leave=False) as bar:
        while len(trials) < count:
            player = ScenePlayer(get_scene("expert").with_seed(seed), 16)  # frames unused: the smallest size
            states = [player.reset(seed).state]
            actions = []
            while len(states) <= EXPERT_STEPS and player.current.info["coverage"] <= DONE_COVERAGE:
                action, step = player.step()
                actions.append(action)
                states.append(step.state)
            if len(states) > goal_offset:
                t = int(rng.integers(0, len(states) - goal_offset))
                taken = np.zeros((budget, 2))
                later = np.asarray(actions[t:t + budget])
                taken[:len(later)] = later
                trials.append(Trial(len(trials), seed, t, states[t], states[t + goal_offset], taken))
                bar.update()
            seed += 1
    return trials


def play(trial: Trial, image_size: int, act, budget: int = BUDGET) -> Outcome:
    """Run one method from the trial's start for the budget. act(step, frame) -> raw action (2,)."""

    env = PushT(image_size)
    frame, info = env.reset(options={"state": trial.start})
    for k in range(budget):
        frame, _, _, _, info = env.step(np.clip(act(k, frame), -1.0, 1.0))
        if pose_success(info["state"], trial.goal):
            return Outcome(True, k + 1, info["state"])
    return Outcome(False, None, info["state"])


def plan_trial(model, trial: Trial, settings: PlannerSettings, rng: np.random.Generator, budget: int = BUDGET
               ) -> Outcome:
    """The model's run: receding-horizon CEM toward the embedding of the goal frame. Where each plan is executed
    whole (receding horizon = horizon), the frame reached at its end scores its realised cost."""
    from scenes.render import draw_state

    planner = LatentPlanner(model, settings)
    mpc = RecedingHorizon(planner)
    z_goal = model.encode(draw_state(trial.goal, model.image_size)[None])[0]
    plans: list[Plan] = []
    whole = settings.receding_horizon == settings.horizon

    def realised(z: np.ndarray) -> float:
        return float(((np.asarray(z, np.float64) - z_goal) ** 2).sum())

    def act(step: int, frame: np.ndarray) -> np.ndarray:
        if mpc.wants_frame():
            z = model.encode(frame[None])[0]
            mpc.observe(z)
            if whole and plans and mpc.needs_plan():
                plans[-1].realised_cost = realised(z)
        if mpc.needs_plan():
            plans.append(mpc.plan(z_goal, rng))
            mpc.accept(plans[-1])
        return mpc.next_action()

    outcome = play(trial, model.image_size, act, budget)
    if whole and plans and mpc.needs_plan() and not outcome.success:  # the budget ended with the last plan
        plans[-1].realised_cost = realised(model.encode(draw_state(outcome.final, model.image_size)[None])[0])
    outcome.plans = plans
    return outcome


def baseline_trial(method: str, trial: Trial, image_size: int, rng: np.random.Generator, budget: int = BUDGET
                   ) -> Outcome:
    if method == "random":
        return play(trial, image_size, lambda k, frame: rng.uniform(-1.0, 1.0, 2), budget)
    if method == "do-nothing":
        return play(trial, image_size, lambda k, frame: np.zeros(2), budget)
    if method == "expert":
        return play(trial, image_size, lambda k, frame: trial.expert_actions[k], budget)
    raise ValueError(f"unknown baseline {method!r}")


def evaluate(model, trials: list[Trial], planners: list[PlannerSettings], seed: int, budget: int = BUDGET
             ) -> dict[str, list[Outcome]]:
    """Every planner and baseline on every trial. Trial i's planners and random baseline draw from generators seeded
    (seed, i)."""
    from tqdm import tqdm

    labels = [p.label for p in planners]
    if len(set(labels)) != len(labels):
        from lewm_errors import UserError
        raise UserError(f"the planners must differ; got {', '.join(labels)}")
    outcomes: dict[str, list[Outcome]] = {m: [] for m in labels + list(BASELINES)}
    bar = tqdm(trials, desc="planning trials")
    for trial in bar:
        for settings in planners:
            outcomes[settings.label].append(plan_trial(model, trial, settings,
                                                       np.random.default_rng([seed, trial.index, 0]), budget))
        for method in BASELINES:
            outcomes[method].append(baseline_trial(method, trial, model.image_size,
                                                   np.random.default_rng([seed, trial.index, 1]), budget))
        bar.set_postfix({label: f"{np.mean([o.success for o in outcomes[label]]):.0%}" for label in labels})
    return outcomes


def planner_figures(runs: list[Outcome]) -> dict:
    """One planner's plan times, forecast against realised end costs, elite costs by iteration and uncertainty."""
    plans = [p for o in runs for p in o.plans]
    seconds = np.array([p.seconds for p in plans])
    costs = np.stack([p.elite_cost for p in plans]) if plans else np.zeros((0, 0))
    scored = [p for p in plans if p.realised_cost is not None]
    predicted, reached = np.array([p.cost for p in scored]), np.array([p.realised_cost for p in scored])
    ratio = reached / np.maximum(predicted, 1e-12)
    unsure = np.array([p.step_uncertainty.sum() for p in plans if p.step_uncertainty is not None])
    return {
        "plan_time_s": {"p50": float(np.percentile(seconds, 50)) if len(seconds) else None,
                        "p95": float(np.percentile(seconds, 95)) if len(seconds) else None,
                        "mean": float(seconds.mean()) if len(seconds) else None, "plans": len(plans)},
        "end_cost": {"plans": len(scored),
                     "predicted_median": float(np.median(predicted)) if len(scored) else None,
                     "realised_median": float(np.median(reached)) if len(scored) else None,
                     "realised_over_predicted_median": float(np.median(ratio)) if len(scored) else None,
                     "realised_over_predicted_interval_95": median_interval(ratio) if len(scored) else None},
        "elite_cost_by_iteration": {"median": np.median(costs, axis=0) if len(costs) else [],
                                    "q25": np.percentile(costs, 25, axis=0) if len(costs) else [],
                                    "q75": np.percentile(costs, 75, axis=0) if len(costs) else []},
        "uncertainty": {"median": float(np.median(unsure)) if len(unsure) else None, "plans": len(unsure)},
    }


def median_interval(values: np.ndarray, draws: int = 2000, seed: int = 0) -> list[float]:
    """A 95% bootstrap interval of the median of values."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, (draws, len(values))), axis=1)
    return [float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))]


def summarise(trials: list[Trial], outcomes: dict[str, list[Outcome]], planners: list[PlannerSettings]) -> dict:
    """The numbers of plan.json: success rates with 95% Wilson intervals, each planner's settings and figures
    (planner_figures), per-trial outcomes."""

    rates = {}
    for method, runs in outcomes.items():
        k, n = sum(o.success for o in runs), len(runs)
        lo, hi = wilson_interval(k, n)
        rates[method] = {"success_rate": k / n if n else float("nan"), "successes": k, "trials": n,
                         "interval_95": [lo, hi]}
    labels = [p.label for p in planners]
    per_trial = []
    for i, trial in enumerate(trials):
        row = {"trial": trial.index, "episode_seed": trial.episode_seed, "start_step": trial.start_step,
               "start": trial.start, "goal": trial.goal}
        for method, runs in outcomes.items():
            o = runs[i]
            row[method] = {"success": o.success, "steps": o.steps, "final": o.final,
                           "block_xy_error": float(np.linalg.norm(o.final[2:4] - trial.goal[2:4])),
                           "angle_error": angle_difference(o.final[4], trial.goal[4])}
        for label in labels:
            plans = outcomes[label][i].plans
            row[label]["plans"] = len(plans)
            row[label]["plan_costs"] = [{"predicted": p.cost, "realised": p.realised_cost} for p in plans]
        per_trial.append(row)
    return {
        "definitions": DEFINITIONS,
        "success": rates,
        "planners": {p.label: {"settings": p.to_dict(), **planner_figures(outcomes[p.label])} for p in planners},
        "trials": per_trial,
    }


def versions(model) -> dict:
    import platform

    import numpy

    out = {"python": platform.python_version(), "numpy": numpy.__version__, "backend": model.name}
    for name in ("torch", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def plot(summary: dict, image_size: int, path, examples: int = 3) -> None:
    """Success per method with its interval; elite cost per solver iteration of each planner; start / goal / final
    frames of a few trials (the first planner's run). Drawn from summarise()'s numbers alone (so from a plan.json
    too)."""
    from lewm.probes.common import new_figure, save_figure
    from scenes.render import draw_state

    trials = summary["trials"]
    planners = summary["planners"]
    first = next(iter(planners))
    examples = min(examples, len(trials))
    fig = new_figure(figsize=(12, 4 + 2.2 * examples))
    grid = fig.add_gridspec(1 + examples, 6, height_ratios=[1.6] + [1] * examples, hspace=0.45, wspace=0.9)
    ax = fig.add_subplot(grid[0, :3])
    rates = summary["success"]
    names = list(rates)
    values = [rates[m]["success_rate"] for m in names]
    err = np.array([[v - rates[m]["interval_95"][0], rates[m]["interval_95"][1] - v] for m, v in zip(names, values)])
    err = np.maximum(err, 0.0)  # an interval's end can sit a rounding error inside its rate
    colours = ["tab:blue" if m in planners else "tab:green" if m == "expert" else "tab:gray" for m in names]
    ax.bar(names, values, yerr=err.T, capsize=4, color=colours)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (95% Wilson interval)")
    ax.set_title(f"PushT goal reaching, {len(trials)} trials")
    ax = fig.add_subplot(grid[0, 3:])
    times = []
    for (label, figures), colour in zip(planners.items(), ("tab:blue", "tab:orange", "tab:purple", "tab:red",
                                                           "tab:brown", "tab:olive")):
        cost = figures["elite_cost_by_iteration"]
        times.append(f"{label} {figures['plan_time_s']['p50'] or 0:.2f} s")
        if len(cost["median"]):
            it = np.arange(1, len(cost["median"]) + 1)
            ax.plot(it, cost["median"], color=colour, label=f"{label}: elite cost (median)")
            ax.fill_between(it, cost["q25"], cost["q75"], color=colour, alpha=0.15)
            end = figures.get("end_cost") or {}
            if end.get("realised_median") is not None:
                ax.axhline(end["realised_median"], color=colour, ls="--", label=f"{label}: reached (median)")
    if ax.lines:
        ax.set_yscale("log")
        ax.legend(loc="lower left", fontsize=7)  # the curves fall from the top left
    ax.set_xlabel("solver iteration")
    ax.set_ylabel("elite cost (squared L2 to goal)")
    ax.set_title("plan time p50: " + ", ".join(times), fontsize=9)
    for row, i in enumerate(np.linspace(0, len(trials) - 1, examples).astype(int) if examples else []):
        trial = trials[i]
        states = (("start", trial["start"]), ("goal", trial["goal"]),
                  (f"{first}: " + ("reached" if trial[first]["success"] else "final"), trial[first]["final"]))
        for col, (title, state) in enumerate(states):
            ax = fig.add_subplot(grid[1 + row, 2 * col:2 * col + 2])
            ax.imshow(draw_state(np.asarray(state, np.float64), image_size))
            ax.set_title(f"trial {trial['trial']} {title}", fontsize=9)
            ax.axis("off")
    save_figure(fig, path)
