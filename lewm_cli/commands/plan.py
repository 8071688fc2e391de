"""Evaluate a model at what it is for: reaching goals on PushT by planning in latent space (the paper's protocol).

Each trial starts from the state at a random step t of a held-out expert episode (seeds --episode-seed, +1, ...);
its goal is the state at t + 25, shown to the model as a frame. In 50 env steps each planner (--solver: CEM, iCEM or
MPPI, official CEM settings by default, with --uncertainty-weight W the cost penalises the model's uncertainty about
its forecast) and three baselines on the same trials (random actions, doing nothing, and the expert's own recorded
actions, the protocol's upper bound) try to bring the agent and block within 20 units and the angle within pi/9 of
the goal. Several planners are compared on the same trials with a list: `--solver cem,icem,mppi
--uncertainty-weight 0.5`, or each with its own weight, `--solver cem,cem+u0.5,mppi+u0.5`; +dW weighs the ensemble's
disagreement alone (what the model does not know) instead of its total uncertainty, `--solver cem,cem+d2`. Writes
OUT/plan.json (success rates with 95% intervals; per planner: plan times, forecast against realised end costs,
uncertainty; per-trial outcomes, settings, versions) and OUT/plan.png."""
from __future__ import annotations

import argparse

from lewm.bundled import BUNDLED_MODEL
from lewm_cli.arguments import COUNT, MODEL, SEED, THREADS, Number

HELP = "evaluate goal-reaching by planning (CEM, iCEM, MPPI) on PushT (success rates, plan times)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from lewm.planning.planner import PlannerSettings
    from lewm.planning.evaluation import BUDGET, GOAL_OFFSET

    d = PlannerSettings()
    p.add_argument("--model", type=MODEL, default=BUNDLED_MODEL,
                   help="model folder (config.json + weights, and ONNX files for onnx; default: the bundled "
                        f"{BUNDLED_MODEL.name})")
    p.add_argument("--out", required=True, help="folder for plan.json and plan.png")
    p.add_argument("--episodes", type=COUNT, default=50, help="trials (one per held-out expert episode)")
    p.add_argument("--seed", type=SEED, default=42, help="seed of the start steps, the planner and the random baseline")
    p.add_argument("--episode-seed", type=SEED, default=1_000_000,
                   help="first held-out expert episode seed (the training data uses seeds below 1,000,000)")
    p.add_argument("--backend", choices=("onnx", "torch"), default="onnx",
                   help="onnx (export.engine.OnnxEngine, the monitor's engine) or torch (the weights)")
    p.add_argument("--threads", type=THREADS, default=None,
                   help="CPU threads for the backend (onnx: each call's batch of candidates is split across them; "
                        "torch: its intra-op threads); the default is every core this process may use")
    p.add_argument("--force", action="store_true", help="overwrite OUT/plan.json and OUT/plan.png if they exist")
    p.add_argument("--goal-offset", type=COUNT, default=GOAL_OFFSET, help="env steps from start to goal state")
    p.add_argument("--budget", type=COUNT, default=BUDGET, help="env steps each method gets to reach the goal")
    p.add_argument("--solver", default=d.solver,
                   help="planner(s), comma-separated: cem, icem or mppi, each optionally with its own uncertainty "
                        "weight as +uW on the total uncertainty (cem+u0.5) or +dW on the ensemble's disagreement "
                        "alone (cem+d2)")
    p.add_argument("--uncertainty-weight", type=Number(minimum=0), default=d.uncertainty_weight, metavar="W",
                   help="weight of the model's uncertainty about the forecast in the cost, for solvers without +uW or "
                        "+dW (needs an ensemble: `lewm train-ensemble`)")
    p.add_argument("--samples", type=COUNT, default=d.samples, help="candidate sequences per iteration")
    p.add_argument("--iterations", type=COUNT, default=d.iterations, help="solver iterations per plan")
    p.add_argument("--elites", type=COUNT, default=d.elites, help="lowest-cost candidates that refit the sampler")
    p.add_argument("--var-scale", type=Number(above=0), default=d.var_scale,
                   help="initial standard deviation of the sampler, in the normalised action space")
    p.add_argument("--horizon", type=COUNT, default=d.horizon, help="model steps (action blocks) per plan")
    p.add_argument("--receding-horizon", type=COUNT, default=d.receding_horizon,
                   help="model steps of each plan executed before re-planning")
    p.add_argument("--context", type=COUNT, default=d.context,
                   help="real frames (at model-step spacing) the predictor is given, at most the model's history")


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    import numpy as np

    from lewm.planning.evaluation import evaluate, make_trials, plot, summarise, versions
    from lewm.planning.planner import parse_planners
    from export.backends import load_backend
    from lewm.probes.common import jsonable, write_json
    from lewm.model_interface import UNCERTAINTY
    from lewm_errors import UserError
    from lewm_cli.output_path import check_output_file

    common = dict(samples=args.samples, iterations=args.iterations, elites=args.elites, var_scale=args.var_scale,
                  horizon=args.horizon, receding_horizon=args.receding_horizon, context=args.context)
    planners = parse_planners(args.solver, args.uncertainty_weight, common)
    out = Path(args.out)
    for name in ("plan.json", "plan.png"):
        check_output_file(out / name, "--out", force=args.force)
    from export.engine import available_cores

    model = load_backend(args.model, args.backend, threads=args.threads or available_cores())
    if args.context > model.history:
        raise UserError(f"--context {args.context} exceeds the model's history ({model.history})")
    if any(p.uncertainty_weight for p in planners) and UNCERTAINTY not in model.capabilities:
        raise UserError(f"an uncertainty weight needs an ensemble in {args.model}; train one with "
                        f"`lewm train-ensemble --model {args.model} --data DATA.h5`")
    start = time.perf_counter()
    trials = make_trials(args.episodes, args.episode_seed, np.random.default_rng(args.seed), args.goal_offset,
                         args.budget)
    outcomes = evaluate(model, trials, planners, args.seed, args.budget)
    summary = summarise(trials, outcomes, planners)
    report = {
        "model": str(args.model), "backend": args.backend,
        "engine": model.describe(),
        "protocol": {"episodes": args.episodes, "seed": args.seed, "episode_seed": args.episode_seed,
                     "goal_offset": args.goal_offset, "budget": args.budget,
                     "success": "agent and block xy within 20 units of the goal state's, angle within pi/9, "
                                "at any step within the budget"},
        "versions": versions(model),
        "seconds": time.perf_counter() - start, **summary,
    }
    write_json(out / "plan.json", report)
    plot(report, model.image_size, out / "plan.png")
    headline = {m: f"{r['success_rate']:.0%} [{r['interval_95'][0]:.0%}, {r['interval_95'][1]:.0%}]"
                for m, r in summary["success"].items()}
    figures = {label: {"plan_time_p50_s": f["plan_time_s"]["p50"],
                       "realised_over_forecast_end_cost": f["end_cost"]["realised_over_predicted_median"]}
               for label, f in summary["planners"].items()}
    print(json.dumps(jsonable({"success": headline, "planners": figures}), indent=2))
    print(f"wrote plan.json, plan.png in {out}")
    return 0
