"""Benchmark the scripted expert: python -m scenes.bench_expert --episodes 100 --steps 300.

Episode s starts from env.reset(seed=s); prints mean best coverage, success rate (coverage > 0.95
at some step), mean steps to success, mean final coverage and the policy's time per call.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from scenes.expert import ExpertPolicy
from scenes.pusht import PushT


def run_episode(env: PushT, policy: ExpertPolicy, seed: int, steps: int):
    _, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    best, first_success, t_policy = info["coverage"], None, 0.0
    for t in range(steps):
        t0 = time.perf_counter()
        action = policy(info["state"])
        t_policy += time.perf_counter() - t0
        _, _, _, _, info = env.step(action)
        best = max(best, info["coverage"])
        if first_success is None and info["success"]:
            first_success = t + 1
    return best, first_success, info["coverage"], t_policy / steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.0)
    args = parser.parse_args(argv)

    env = PushT(image_size=96)  # the frames are not used; a small canvas keeps rendering cheap
    env.render = lambda: None  # (the benchmark only reads info)
    policy = ExpertPolicy(noise=args.noise)
    best, steps_ok, final, per_call = [], [], [], []
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    for s in tqdm(seeds, desc="expert episodes"):
        b, ok, f, tp = run_episode(env, policy, s, args.steps)
        best.append(b), final.append(f), per_call.append(tp)
        if ok is not None:
            steps_ok.append(ok)
    res = {
        "episodes": args.episodes,
        "mean_best_coverage": float(np.mean(best)),
        "success_rate": len(steps_ok) / args.episodes,
        "mean_steps_to_success": float(np.mean(steps_ok)) if steps_ok else float("nan"),
        "mean_final_coverage": float(np.mean(final)),
        "policy_ms_per_call": 1000 * float(np.mean(per_call)),
    }
    print(f"episodes: {res['episodes']}, steps: {args.steps}, noise: {args.noise}")
    print(f"mean best coverage: {res['mean_best_coverage']:.3f}")
    print(f"success (coverage > 0.95): {100 * res['success_rate']:.0f}% ({len(steps_ok)}/{args.episodes})")
    print(f"mean steps to success: {res['mean_steps_to_success']:.1f}")
    print(f"mean final coverage: {res['mean_final_coverage']:.3f}")
    print(f"policy time: {res['policy_ms_per_call']:.3f} ms per call")
    fails = [s for s, b in zip(seeds, best) if b <= 0.95]
    print(f"seeds without success: {fails}")
    return res


if __name__ == "__main__":
    main()
