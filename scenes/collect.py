"""Dataset collection: play seeded episodes with a mix of policies and write them to HDF5."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from scenes.catalog import Scene
from scenes.dataset import DatasetWriter
from scenes.episode import play_episode
from lewm_errors import UserError
from scenes.policies import split_policy_name


def parse_mix(text: str) -> dict[str, float]:
    """"expert=0.3,noisy-expert=0.3,random=0.4" -> normalised weights; a noisy expert may name its noise level,
    e.g. "noisy-expert:0.1=0.5,noisy-expert:0.4=0.5"."""
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if split_policy_name(name)[0] == "manual":
            raise UserError("a mix cannot hold the manual policy (nobody plays it); use expert, noisy-expert, random")
        try:
            mix[name] = float(weight or 1)
        except ValueError:
            raise UserError(f"the weight of {name} must be a number; got {weight!r}") from None
    total = sum(mix.values())
    if total <= 0:
        raise UserError("the weights must add up to more than 0")
    return {k: v / total for k, v in mix.items()}


def episode_policies(mix: dict[str, float], episodes: int, seed: int) -> list[str]:
    """Which policy plays each episode: exact proportions, in a seeded random order."""
    counts = {k: int(round(w * episodes)) for k, w in mix.items()}
    first = next(iter(counts))
    counts[first] += episodes - sum(counts.values())
    names = [k for k, n in counts.items() for _ in range(n)]
    np.random.default_rng(seed).shuffle(names)
    return names


def collect(out: str | Path, episodes: int, steps: int, image_size: int, seed: int, mix: dict[str, float],
            workers: int = 1, drawn: bool = False) -> dict:
    """Write `episodes` episodes of `steps` env steps (steps + 1 frames each); episode i uses seed + i.

    drawn=True stores no pixels (states and actions only; readers draw the frames, at image_size or another size).
    With workers > 1 the episodes are played in that many processes and written in order, so the file
    is the same as with one worker."""
    policies = episode_policies(mix, episodes, seed)
    scenes = [Scene(name="collect", description="", policy=policies[i], seed=seed + i, steps=steps)
              for i in range(episodes)]
    attrs = {"generator": "lewm collect", "seed": seed, "steps": steps,
             "mix": ",".join(f"{k}={v:.3f}" for k, v in mix.items())}
    start = time.perf_counter()
    frames = 0
    with DatasetWriter(out, image_size, attrs, drawn=drawn) as writer:
        pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
        try:
            size = None if drawn else image_size  # play without drawing when the frames are not stored
            played = (pool.imap(_play, [(s, size) for s in scenes]) if pool
                      else (_play((s, size)) for s in scenes))
            bar = tqdm(played, total=episodes, desc="collect", unit="ep")
            for ep_frames, ep_actions, ep_states in bar:
                writer.add_episode(ep_frames, ep_actions, ep_states)
                frames += len(ep_states)
                bar.set_postfix(fps=f"{frames / (time.perf_counter() - start):.0f}")
        finally:
            if pool:
                pool.terminate()
    seconds = time.perf_counter() - start
    return {"path": str(out), "episodes": episodes, "frames": frames, "seconds": seconds,
            "frames_per_second": frames / seconds, "workers": workers}


def _play(job: tuple[Scene, int | None]) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """One episode's dataset columns (a top-level function, so worker processes can run it)."""
    scene, image_size = job
    ep = play_episode(scene, image_size)
    return ep.frames, ep.actions, ep.states
