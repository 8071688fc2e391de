"""Where a plan's forecast parts from what happens: the model's error at each step of a 5-block rollout, under the
expert's own blocks, under blocks drawn as the planner's first iteration draws them, and under the blocks the planner
chose, from the start states of `lewm plan`'s trials.

For each trial (lewm.planning.evaluation.make_trials: held-out expert episodes, a start state and the goal 25 env steps
later) every set of blocks is rolled out by the model from the start frame's embedding and played in the simulator
from the start state; at the end of each block the frame reached is encoded. Printed per method, medians over trials:
the squared L2 distance between forecast and reached embedding at each step (h1 .. h5), the model's (total) uncertainty
about each step where its folder has an ensemble, the forecast end cost (distance to the goal embedding: what the
planner minimised) and the realised one. A planner that exploits the model's errors shows a small forecast cost, a
large realised one and an error far above the expert's.

python -m lewm.planning.bench_forecast_gap --model models/pusht-cnn --trials 10 \
    [--uncertainty-weight W --penalty disagreement]
"""
from __future__ import annotations

import argparse

import numpy as np

from lewm.planning.planner import PENALTIES, SOLVERS

METHODS = ("expert", "first-iteration", "planner")


def forecast_gap(model, trials, planner, rng: np.random.Generator, draws: int = 4) -> dict[str, np.ndarray]:
    """Per method, one row per rolled-out block sequence: errors h1..H, uncertainties h1..H, forecast and realised
    end cost."""
    from scenes.pusht import PushT
    from scenes.render import draw_state

    settings, size, action_dim = planner.settings, model.image_size, model.config.action_dim
    horizon, block_dim, frameskip = settings.horizon, planner.block_dim, planner.frameskip

    def embed(state: np.ndarray) -> np.ndarray:
        return model.encode(draw_state(state, size)[None])[0].astype(np.float64)

    def reached(start: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        env = PushT(size)
        env.reset(options={"state": start})
        out = []
        for k, action in enumerate(blocks.reshape(-1, action_dim)):
            _, _, _, _, info = env.step(np.clip(action, -1.0, 1.0))
            if k % frameskip == frameskip - 1:
                out.append(embed(info["state"]))
        return np.array(out)

    rows: dict[str, list] = {m: [] for m in METHODS}
    no_blocks = np.zeros((0, block_dim), np.float32)
    for trial in trials:
        z_start, z_goal = embed(trial.start), embed(trial.goal)
        context = z_start[None].astype(np.float32)
        candidates = {
            "expert": trial.expert_actions[:horizon * frameskip].reshape(1, horizon, block_dim).astype(np.float32),
            "first-iteration": planner.to_raw(rng.normal(0.0, settings.var_scale, (draws, horizon, block_dim))),
            "planner": planner.plan(context, no_blocks, z_goal, rng).blocks[None],
        }
        for method, blocks in candidates.items():
            future = planner.rollout(context, no_blocks, blocks)
            unsure = (planner.step_uncertainty(context, future, blocks).sum(-1) if planner.serves_uncertainty
                      else np.full(future.shape[:2], np.nan))
            for sequence, forecast, u in zip(blocks, future.astype(np.float64), unsure):
                real = reached(trial.start, sequence)
                rows[method].append(np.concatenate([((forecast - real) ** 2).sum(-1), u,
                                                    [((forecast[-1] - z_goal) ** 2).sum(),
                                                     ((real[-1] - z_goal) ** 2).sum()]]))
    return {m: np.array(v) for m, v in rows.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--trials", type=int, default=10, help="trials of `lewm plan`'s protocol (default: 10)")
    p.add_argument("--episode-seed", type=int, default=1_000_000, help="first held-out expert episode's seed")
    p.add_argument("--seed", type=int, default=42, help="draws the trials' start steps, as `lewm plan --seed`")
    p.add_argument("--solver", choices=SOLVERS, default="cem", help="the planner (official settings)")
    p.add_argument("--uncertainty-weight", type=float, default=0.0, help="the planner's penalty (needs an ensemble)")
    p.add_argument("--penalty", choices=tuple(PENALTIES), default="total",
                   help="the part of the uncertainty the penalty weighs (lewm.planning.planner)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = p.parse_args(argv)

    import torch

    from lewm.planning.planner import LatentPlanner, PlannerSettings
    from lewm.planning.evaluation import make_trials
    from lewm.torch_backend import TorchBackend

    torch.set_num_threads(args.threads)
    model = TorchBackend.from_folder(args.model)
    planner = LatentPlanner(model, PlannerSettings(solver=args.solver, uncertainty_weight=args.uncertainty_weight,
                                                      penalty=args.penalty))
    trials = make_trials(args.trials, args.episode_seed, np.random.default_rng(args.seed))
    rows = forecast_gap(model, trials, planner, np.random.default_rng([args.seed, 1]))
    h = planner.settings.horizon
    print(f"{args.model}, {planner.settings.label}, {args.trials} trials from seed {args.episode_seed}; medians")
    print(f"{'blocks':16s} {'n':>3s}  squared error h1..h{h}{'':14s} uncertainty h1..h{h}{'':9s} forecast  realised")
    for method, v in rows.items():
        m = np.median(v, axis=0)
        print(f"{method:16s} {len(v):3d}  {' '.join(f'{x:6.1f}' for x in m[:h])}  "
              f"{' '.join(f'{x:5.1f}' for x in m[h:2 * h])}  {m[-2]:8.1f}  {m[-1]:8.1f}")


if __name__ == "__main__":
    main()
