"""Drawing cost per frame and collection throughput: `python -m scenes.bench_render`."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from scenes.collect import collect
from scenes.pusht import random_state
from scenes.render import draw_state


def draw_cost_ms(size: int, frames: int) -> tuple[float, float]:
    """p50 and mean milliseconds per draw_state call, over random reset states."""
    rng = np.random.default_rng(0)
    states = [random_state(rng) for _ in range(frames)]
    draw_state(states[0], size)
    times = []
    for s in states:
        start = time.perf_counter()
        draw_state(s, size)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), 1000 * float(np.mean(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=500, help="frames drawn per size")
    p.add_argument("--episodes", type=int, default=20, help="episodes collected for the throughput figure")
    args = p.parse_args()
    for size in (64, 96, 224):
        p50, mean = draw_cost_ms(size, args.frames)
        print(f"draw_state {size:>3} px: p50 {p50:.3f} ms, mean {mean:.3f} ms per frame")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (64, 224):
            r = collect(Path(tmp) / f"d{size}.h5", args.episodes, 300, size, seed=0,
                        mix={"expert": 0.25, "noisy-expert": 0.25, "random": 0.5})
            print(f"lewm collect at {size} px: {r['frames']} frames in {r['seconds']:.1f} s = "
                  f"{r['frames_per_second']:.0f} frames/s (physics + policy + drawing + HDF5 write)")


if __name__ == "__main__":
    main()
