"""Training throughput of model designs and precisions, as ratios measured in one run:
python -m lewm.training.bench [--batch-size 32] [--rounds 5] [--threads 2].

Each configuration's optimiser step (forward, backward, AdamW) on one fixed batch of drawn frames is timed in
interleaved rounds (configuration after configuration, round after round), so a load that comes and goes on a
shared machine falls on all of them alike; the figure is each one's median seconds per step and its ratio to the
first. Also timed: drawing a batch's frames (what the prefetch thread does beside each step)."""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from lewm.config import preset
from lewm.model import LeWM
from lewm.sigreg import lewm_loss
from scenes.pusht import random_state
from scenes.render import draw_states

DESIGNS = {
    "128 px, 16 px patches (64 tokens)": dict(image_size=128, patch_size=16),
    "128 px, conv stem (64 tokens)": dict(image_size=128, patch_size=16, stem="conv"),
    "128 px, cnn encoder (4 x 4 grid)": dict(image_size=128, patch_size=32, encoder="cnn"),
    "128 px, keypoints encoder (16 x 16 grid)": dict(image_size=128, patch_size=8, encoder="keypoints"),
    "96 px, 8 px patches (144 tokens)": dict(image_size=96, patch_size=8),
    "128 px, 8 px patches (256 tokens)": dict(image_size=128, patch_size=8),
}


def make_batch(size: int, clips: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    states = np.stack([random_state(rng) for _ in range(clips * 4)]).reshape(clips, 4, 7)
    return torch.from_numpy(draw_states(states, size)), torch.randn(clips, 3, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32, help="clips per step (4 frames each)")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--only", default="", help="time only the designs whose name holds this text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    runs = []
    for name, overrides in DESIGNS.items():
        if args.only not in name:
            continue
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = LeWM(preset("small", **overrides)).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            frames, blocks = make_batch(model.config.image_size, args.batch_size, rng)
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                        else contextlib.nullcontext())
            runs.append(dict(name=name, precision=precision, model=model, optimizer=optimizer, frames=frames,
                             blocks=blocks, autocast=autocast, times=[]))
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for run in runs:
            start = time.perf_counter()
            with run["autocast"]:
                loss = lewm_loss(run["model"], run["frames"], run["blocks"]).total
            run["optimizer"].zero_grad(set_to_none=True)
            loss.backward()
            run["optimizer"].step()
            if round_:
                run["times"].append(time.perf_counter() - start)
    base = float(np.median(runs[0]["times"]))
    print(f"{args.batch_size} clips per step ({4 * args.batch_size} frames), {args.threads} threads, "
          f"median of {args.rounds} interleaved rounds")
    for run in runs:
        t = float(np.median(run["times"]))
        print(f"{run['name']:36s} {run['precision']}: {t:6.2f} s/step ({1 / t:5.3f} steps/s), {t / base:4.2f}x "
              f"the first's time")
    for size in (96, 128):
        start = time.perf_counter()
        make_batch(size, args.batch_size, rng)
        print(f"drawing a batch's {4 * args.batch_size} frames at {size} px (with their states): "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
