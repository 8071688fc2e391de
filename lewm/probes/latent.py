"""Probe 1, latent structure: every model step's embedding of every episode, projected to 2-D by one PCA.

Published finding: distinct, separated clusters per episode, with a monotonic time gradient inside each.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lewm.probes.common import StreamRun, new_figure, run_stream, save_figure, write_json

DEFINITIONS = {
    "points": "one point per model step: the stream's record.z at frames 0, frameskip, 2*frameskip, ...",
    "pca": "lewm.stream.PCA fitted on all points of all episodes",
    "time_rho": "per episode, |Spearman rho| between the time index and the coordinate along the episode's own "
                "first principal direction within the 2-D PCA plane; 1 = a monotonic path",
    "silhouette_pca2": "silhouette score of the episode labels in the 2-D PCA plane (euclidean; -1..1, high = "
                       "separated clusters per episode)",
    "silhouette_latent": "the same in the full latent space (cosine distance)",
}


def model_step_latents(runs: list[StreamRun]) -> list[np.ndarray]:
    """Per episode, the embeddings of frames 0, fs, 2 fs, ...: (K, D)."""
    return [run.z[::run.frameskip] for run in runs]


def time_rho(points: np.ndarray) -> float:
    """|Spearman rho| between time and the position along the path's own first principal direction."""
    from scipy.stats import spearmanr

    if len(points) < 3:
        return float("nan")
    centred = points - points.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    position = centred @ direction
    if np.ptp(position) == 0:
        return float("nan")
    return float(abs(spearmanr(np.arange(len(points)), position)[0]))


def run_latent(model, episodes: list, runs: list[StreamRun] | None = None, highlight: int = 0,
               out: str | None = None) -> dict:
    """JSON-ready results; with `out` (a folder), also writes latent.json and latent.png there."""
    from sklearn.metrics import silhouette_score

    from lewm.stream import PCA

    runs = run_stream(model, episodes, desc="latent") if runs is None else runs
    latents = model_step_latents(runs)
    pca = PCA.fit(np.concatenate(latents))
    coords = [pca.transform(z) for z in latents]
    rhos = np.array([time_rho(c) for c in coords])
    labels = np.concatenate([np.full(len(c), i) for i, c in enumerate(coords)])
    separable = len(coords) >= 2 and len(labels) > len(coords)
    result = {
        "probe": "latent",
        "definitions": DEFINITIONS,
        "episodes": len(runs),
        "points": int(len(labels)),
        "time_rho_mean": float(np.nanmean(rhos)) if np.isfinite(rhos).any() else None,
        "time_rho_median": float(np.nanmedian(rhos)) if np.isfinite(rhos).any() else None,
        "time_rho_per_episode": rhos,
        "silhouette_pca2": float(silhouette_score(np.concatenate(coords), labels)) if separable else None,
        "silhouette_latent": (float(silhouette_score(np.concatenate(latents), labels, metric="cosine"))
                              if separable else None),
        "pca_mean": pca.mean,
        "pca_components": pca.components,
        "highlight_episode": highlight,
    }
    if out is not None:
        write_json(Path(out) / "latent.json", result)
        save_figure(latent_figure(episodes[highlight], coords, highlight, runs[highlight].frameskip),
                    Path(out) / "latent.png")
    return result


def latent_figure(episode, coords: list[np.ndarray], highlight: int, frameskip: int):
    """Filmstrip of 8 frames of one episode on top; below, that episode against all others (grey), and that
    episode alone with arrows along its path; plasma colour by normalised time."""
    import matplotlib.pyplot as plt

    fig = new_figure(figsize=(12, 8.5))
    grid = fig.add_gridspec(2, 8, height_ratios=[1, 4.2], hspace=0.12)
    mine = coords[highlight]
    for j, k in enumerate(np.linspace(0, len(mine) - 1, 8).round().astype(int)):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(episode.frames[k * frameskip])
        ax.set_title(f"step {k}", fontsize=8)
        ax.axis("off")
    time = np.linspace(0, 1, len(mine))
    cmap = plt.get_cmap("plasma")

    ax = fig.add_subplot(grid[1, :4])
    for i, c in enumerate(coords):
        if i != highlight:
            ax.plot(c[:, 0], c[:, 1], "-", color="0.8", lw=0.6, zorder=1)
            ax.scatter(c[:, 0], c[:, 1], s=5, color="0.7", zorder=1)
    points = ax.scatter(mine[:, 0], mine[:, 1], c=time, cmap=cmap, s=18, zorder=3, edgecolors="k", linewidths=0.2)
    ax.set_title(f"episode {highlight} (plasma) among all {len(coords)} episodes (grey)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")

    ax = fig.add_subplot(grid[1, 4:])
    if len(mine) > 1:
        step = np.diff(mine, axis=0)
        ax.quiver(mine[:-1, 0], mine[:-1, 1], step[:, 0], step[:, 1], time[:-1], cmap=cmap, angles="xy",
                  scale_units="xy", scale=1, width=0.004, headwidth=4)
    ax.scatter(mine[:, 0], mine[:, 1], c=time, cmap=cmap, s=14, zorder=3)
    ax.margins(0.1)
    ax.set_title(f"episode {highlight}: its path through latent space")
    ax.set_xlabel("PC 1")
    fig.colorbar(points, ax=fig.axes[-2:], label="normalised time in episode", fraction=0.03, pad=0.02)
    return fig


def headline(result: dict) -> dict:
    return {k: result[k] for k in ("time_rho_mean", "time_rho_median", "silhouette_pca2", "silhouette_latent")}
