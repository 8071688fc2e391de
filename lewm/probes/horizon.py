"""Probe 2, prediction degradation over horizon: forecasts from a real context, checked h model steps later.

Published: mean ~0.1 at h=1, ~0.8 by h=10, ~0.9 by h=20; medians ~0.03 (h1), 0.11 (h2), 0.25 (h3), 0.40 (h4),
0.51 (h5), 0.92 (h10).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lewm.probes.common import (StreamRun, forecast_runs, forecasts_by_horizon, nan_stat, new_figure, ratio,
                                save_figure, write_json)

DEFINITIONS = {
    "error": "cosine distance 1 - cos(z_hat, z) between the horizon h forecast (rollout of h model steps under the "
             "real actions, from the real context of `history` frames ending at the start frame) and the "
             "embedding of the frame it forecasts (start + frameskip * h): the stream's record.forecast_error"
             "[0, h-1] at that frame",
    "starts": "every env frame with a full real context (start >= frameskip * (history - 1)) whose h=1 forecast "
              "was checked; a start contributes to horizon h when start + frameskip * h is in the episode",
    "copy_last": "the 'nothing changes' baseline 1 - cos(z_start, z_{start + frameskip * h}) over the same "
                 "(start, h) pairs (record.copy_last_error)",
    "ratio_to_copy_last": "mean / copy_last_mean per h (below 1: the forecast beats copying the last frame)",
}


def run_horizon(model, episodes: list, horizon: int = 20, runs: list[StreamRun] | None = None,
                out: str | Path | None = None) -> dict:
    """JSON-ready results for h = 1..horizon; with `out` (a folder), also writes horizon.json and horizon.png."""
    runs = forecast_runs(model, episodes, horizon, runs, desc="horizon")
    errors, copy_last, index = forecasts_by_horizon(runs)
    real = errors[:, 0, :horizon]
    copy = np.where(np.isfinite(real), copy_last[:, :horizon], np.nan)
    mean, copy_mean = nan_stat(np.nanmean, real), nan_stat(np.nanmean, copy)
    result = {
        "probe": "horizon",
        "definitions": DEFINITIONS,
        "episodes": len(runs),
        "starts": int(len(real)),
        "horizons": list(range(1, horizon + 1)),
        "mean": mean,
        "median": nan_stat(np.nanmedian, real),
        "std": nan_stat(np.nanstd, real),
        "q25": nan_stat(lambda x, axis: np.nanpercentile(x, 25, axis=axis), real),
        "q75": nan_stat(lambda x, axis: np.nanpercentile(x, 75, axis=axis), real),
        "count": np.isfinite(real).sum(axis=0),
        "copy_last_mean": copy_mean,
        "copy_last_median": nan_stat(np.nanmedian, copy),
        "ratio_to_copy_last": ratio(mean, copy_mean),
    }
    if out is not None:
        write_json(Path(out) / "horizon.json", result)
        save_figure(horizon_figure(real, result), Path(out) / "horizon.png")
    return result


def horizon_figure(real: np.ndarray, result: dict, max_curves: int = 400):
    """Left: per-start curves (thin), the mean curve and the copy-last baseline. Right: a box plot per horizon."""
    fig = new_figure(figsize=(13, 4.8))
    hs = np.array(result["horizons"])
    left, right = fig.subplots(1, 2)
    rng = np.random.default_rng(0)
    shown = real if len(real) <= max_curves else real[rng.choice(len(real), max_curves, replace=False)]
    for curve in shown:
        left.plot(hs, curve, color="tab:blue", lw=0.5, alpha=0.08)
    left.plot(hs, result["mean"], color="tab:blue", lw=2.5, marker="o", ms=4, label="mean (real actions)")
    left.plot(hs, result["median"], color="tab:blue", lw=1.5, ls=":", label="median")
    left.plot(hs, result["copy_last_mean"], color="tab:red", lw=1.8, ls="--", label="copy-last baseline (mean)")
    left.set_xlabel("horizon h (model steps)")
    left.set_ylabel("cosine distance to the true embedding")
    left.set_title(f"degradation over horizon ({result['starts']} starts, {result['episodes']} episodes)")
    left.set_ylim(bottom=0)
    left.legend(loc="lower right")
    columns = [c[np.isfinite(c)] for c in real.T]
    right.boxplot(columns, positions=hs, widths=0.6, flierprops=dict(markersize=2, alpha=0.3))
    right.set_xlabel("horizon h (model steps)")
    right.set_title("distribution per horizon")
    right.set_ylim(bottom=0)
    return fig


HEADLINE_HORIZONS = (1, 2, 3, 4, 5, 10, 20)


def headline(result: dict) -> dict:
    picks = [h for h in HEADLINE_HORIZONS if h <= len(result["horizons"])]
    return {key: {f"h{h}": result[key][h - 1] for h in picks}
            for key in ("mean", "median", "copy_last_mean", "ratio_to_copy_last")}
