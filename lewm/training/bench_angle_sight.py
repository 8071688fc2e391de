"""Can an encoder design learn to see the block's angle at all? A supervised screen, in one run:
python -m lewm.training.bench_angle_sight [--steps 800] [--every 100] [--threads 1].

Each design's encoder and projector, plus a linear head, are trained from scratch on the pose probe's frames (the
reset distribution and touching poses, lewm/probes/pose.py) to output (sin, cos) of the block angle; every `--every`
steps the head's R^2 on held-out frames is printed. The designs step in turn, so a load that comes and goes on a
shared machine falls on all of them alike. This measures capacity, not a recipe: the bundled model never sees a
state label (it learns from pixels and actions alone); a design that cannot learn the angle even when told it will
not find it by itself.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lewm.config import preset
from lewm.model import LeWM
from lewm.probes.common import HELD_OUT_SEED
from lewm.probes.pose import FIT_SEED_OFFSET, pose_set, r2_columns, targets_of
from scenes.render import draw_states

DESIGNS = {
    "vit, conv stem (8 x 8 tokens)": dict(image_size=128, patch_size=16, stem="conv"),
    "cnn (4 x 4 grid)": dict(image_size=128, patch_size=32, encoder="cnn"),
}
ANGLE = slice(4, 6)  # (sin, cos) of the block angle among the pose targets


def frames_and_angles(first_seed: int, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    states = pose_set(first_seed, count).states
    return torch.from_numpy(draw_states(states, size)), torch.from_numpy(targets_of(states)[:, ANGLE]).float()


class AngleReader(torch.nn.Module):
    """A design's encoder and projector (LeWM.encode_frames) and a linear head to (sin, cos)."""

    def __init__(self, design: dict):
        super().__init__()
        self.model = LeWM(preset("small", **design))
        self.head = torch.nn.Linear(self.model.config.latent_dim, 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.encode_frames(frames))


def held_out_r2(reader: AngleReader, frames: torch.Tensor, angles: torch.Tensor) -> float:
    reader.eval()
    with torch.no_grad():
        predicted = torch.cat([reader(frames[i:i + 250]) for i in range(0, len(frames), 250)])
    reader.train()
    return float(np.mean(r2_columns(angles.numpy(), predicted.numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800, help="training steps per design")
    parser.add_argument("--every", type=int, default=100, help="steps between held-out readings")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (constant)")
    parser.add_argument("--fit-frames", type=int, default=4000, help="training frames")
    parser.add_argument("--held-out-frames", type=int, default=500, help="scored frames, from other seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = {d["image_size"] for d in DESIGNS.values()}.pop()
    fit_frames, fit_angles = frames_and_angles(HELD_OUT_SEED + FIT_SEED_OFFSET, args.fit_frames, size)
    scored_frames, scored_angles = frames_and_angles(HELD_OUT_SEED, args.held_out_frames, size)
    readers, optimisers, seconds = {}, {}, {}
    for name, design in DESIGNS.items():
        torch.manual_seed(args.seed)
        readers[name] = AngleReader(design)
        optimisers[name] = torch.optim.AdamW(readers[name].parameters(), lr=args.lr)
        seconds[name] = []
    order = np.random.default_rng(args.seed)
    print(f"held-out R^2 of the block angle (sin, cos), {args.held_out_frames} frames; {args.batch_size} frames a step")
    print("| step | " + " | ".join(DESIGNS) + " |")
    print("| --- |" + " --- |" * len(DESIGNS))
    for step in range(1, args.steps + 1):
        rows = torch.from_numpy(order.integers(0, args.fit_frames, args.batch_size))
        for name, reader in readers.items():
            began = time.perf_counter()
            loss = F.mse_loss(reader(fit_frames[rows]), fit_angles[rows])
            optimisers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimisers[name].step()
            seconds[name].append(time.perf_counter() - began)
        if step % args.every == 0 or step == args.steps:
            scores = [f"{held_out_r2(r, scored_frames, scored_angles):.3f}" for r in readers.values()]
            print(f"| {step} | " + " | ".join(scores) + " |", flush=True)
    print("median s/step: " + ", ".join(f"{name} {np.median(s):.3f}" for name, s in seconds.items()))


if __name__ == "__main__":
    main()
