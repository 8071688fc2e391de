"""Probe 3, surprise under an injected artifact: the published red square slides across the frame from model
step 5 to 15 (scene "seed-artifact"); one-step surprise 1 - cos(z_hat_t, z_t) under three conditions.

Published: baseline ~0.03-0.08; perturbed peaks ~0.45 around step 8; perturbed-context peaks ~0.32 and falls back
sooner; both back near baseline by step 15.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from lewm.probes.common import nan_stat, new_figure, ratio, run_stream, save_figure, write_json

CONDITIONS = ("baseline", "perturbed", "perturbed_context")
RETURN_FRACTION = 0.2

DEFINITIONS = {
    "surprise": "1 - cos(z_hat_t, z_t) under the real actions at the frames t = frameskip * k of model step k "
                "(k = 0 has no prediction: null)",
    "baseline": "stream on the clean frames; record.surprise[0]",
    "perturbed": "stream on the clean frames (clean context), each prediction scored against the perturbed frame "
                 "given as probe_frame; record.probe_surprise[0]",
    "perturbed_context": "stream on the perturbed frames (the artifact enters the context too); record.surprise[0]",
    "band": "mean +- one standard deviation over episodes",
    "window": "the model steps at whose frame the artifact is drawn (first, last inclusive)",
    "window_mean": "mean over the window's steps of the per-step mean",
    "ratio_to_baseline": "window_mean(condition) / window_mean(baseline)",
    "peak": "maximum of the per-step mean curve from the window's first step on: value and model step",
    "return_step": f"first model step after the peak where mean(condition) - mean(baseline) falls to "
                   f"{RETURN_FRACTION} x its value at the peak or below (null: never within the episode)",
}


def with_artifact(episode, artifact):
    """A copy of `episode` whose frames have `artifact` drawn in (clean_frames: the frames as they were)."""
    out = copy.copy(episode)
    out.clean_frames = episode.frames
    out.frames = episode.frames.copy()
    for t, frame in enumerate(out.frames):
        artifact.draw(frame, t)
    out.artifact_active = np.array([artifact.active(t) for t in range(len(out.frames))])
    return out


def _per_step(values: list[np.ndarray], frameskip: int) -> np.ndarray:
    """Per-frame values of each episode sampled at model steps, NaN-padded to the longest: (E, K)."""
    sampled = [v[::frameskip] for v in values]
    out = np.full((len(sampled), max(len(s) for s in sampled)), np.nan)
    for i, s in enumerate(sampled):
        out[i, :len(s)] = s
    return out


def _return_step(curve: np.ndarray, baseline: np.ndarray, peak_step: int) -> int | None:
    excess = curve - baseline
    if peak_step >= len(curve) or not np.isfinite(excess[peak_step]):
        return None
    target = RETURN_FRACTION * excess[peak_step]
    later = [k for k in range(peak_step + 1, len(curve)) if np.isfinite(excess[k]) and excess[k] <= target]
    return later[0] if later else None


def run_surprise(model, episodes: list, out: str | Path | None = None) -> dict:
    """Episodes with an artifact (frames) and without (clean_frames), e.g. of the scene "seed-artifact".
    JSON-ready results; with `out` (a folder), also writes surprise.json and surprise.png."""
    fs = model.frameskip
    clean = run_stream(model, episodes, horizon=1, frames="clean_frames", probe_frames="frames",
                       desc="surprise: clean context")
    dirty = run_stream(model, episodes, horizon=1, frames="frames", desc="surprise: perturbed context")
    curves = {
        "baseline": _per_step([r.surprise[:, 0] for r in clean], fs),
        "perturbed": _per_step([r.probe_surprise[:, 0] for r in clean], fs),
        "perturbed_context": _per_step([r.surprise[:, 0] for r in dirty], fs),
    }
    mean = {c: nan_stat(np.nanmean, v) for c, v in curves.items()}
    active = _per_step([e.artifact_active.astype(float) for e in episodes], fs)
    active_steps = np.flatnonzero(np.nanmax(active, axis=0) > 0)
    window = [int(active_steps[0]), int(active_steps[-1])] if len(active_steps) else [5, 14]
    window_mean = {c: float(np.nanmean(m[window[0]:window[1] + 1])) for c, m in mean.items()}
    peaks = {}
    for c, m in mean.items():
        after = m[window[0]:]
        k = window[0] + int(np.nanargmax(after)) if np.isfinite(after).any() else window[0]
        peaks[c] = {"value": m[k] if k < len(m) else None, "step": k}
    result = {
        "probe": "surprise",
        "definitions": DEFINITIONS,
        "episodes": len(episodes),
        "conditions": list(CONDITIONS),
        "steps": list(range(len(mean["baseline"]))),
        "window": window,
        "mean": mean,
        "std": {c: nan_stat(np.nanstd, v) for c, v in curves.items()},
        "window_mean": window_mean,
        "ratio_to_baseline": {c: ratio(window_mean[c], window_mean["baseline"]) for c in CONDITIONS[1:]},
        "peak": peaks,
        "return_step": {c: _return_step(mean[c], mean["baseline"], peaks[c]["step"]) for c in CONDITIONS[1:]},
    }
    if out is not None:
        write_json(Path(out) / "surprise.json", result)
        save_figure(surprise_figure(episodes[0], result, fs), Path(out) / "surprise.png")
    return result


COLOURS = {"baseline": "tab:blue", "perturbed": "tab:red", "perturbed_context": "tab:orange"}
LABELS = {"baseline": "baseline (clean context, clean frames)",
          "perturbed": "perturbed (clean context, perturbed frames)",
          "perturbed_context": "perturbed context (artifact in the history too)"}


def surprise_figure(episode, result: dict, frameskip: int):
    """A strip of the perturbed frames on top; surprise per model step, mean with a band, artifact window shaded."""
    fig = new_figure(figsize=(11, 7))
    lo, hi = result["window"]
    picks = np.unique(np.linspace(max(lo - 2, 0), min(hi + 2, len(result["steps"]) - 1), 8).round().astype(int))
    grid = fig.add_gridspec(2, len(picks), height_ratios=[1, 3.2], hspace=0.15)
    for j, k in enumerate(picks):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(episode.frames[min(k * frameskip, len(episode.frames) - 1)])
        ax.set_title(f"step {k}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    steps = np.array(result["steps"])
    ax.axvspan(lo - 0.5, hi + 0.5, color="0.85", label=f"artifact on screen (steps {lo}-{hi})")
    for c in CONDITIONS:
        m, s = np.asarray(result["mean"][c], float), np.asarray(result["std"][c], float)
        ax.plot(steps, m, marker="o", ms=3, color=COLOURS[c], label=LABELS[c])
        ax.fill_between(steps, m - s, m + s, color=COLOURS[c], alpha=0.15, lw=0)
    ax.set_xlabel("model step")
    ax.set_ylabel("surprise  1 - cos(z_hat, z)")
    ax.set_title(f"surprise under the sliding square ({result['episodes']} episodes; band: +- 1 std)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def headline(result: dict) -> dict:
    return {k: result[k] for k in ("window", "window_mean", "ratio_to_baseline", "peak", "return_step")}
