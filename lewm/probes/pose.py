"""The pose probe: how much of the state one frame's embedding holds, over the whole reset distribution (agent,
block and block angle uniform over the circle) and with the agent touching the block. Ridge and MLP probes
(scikit-learn) read agent xy, block xy and the block angle as (sin, cos) from z; fitted on one set of frames and
scored on another drawn from other seeds, with bootstrap intervals over the scored frames.

Unlike the physics probe, whose expert episodes sit near the goal pose most of the time (so the angle barely
varies), every frame here is an independent draw: a model that reads the angle poorly cannot hide it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lewm.probes.common import BOOTSTRAP_RESAMPLES, HELD_OUT_SEED, new_figure, save_figure, write_json
from lewm.probes.physics import TARGETS  # the same targets, read from single frames here

FIT_SEED_OFFSET = 100_000  # the fitting frames' seeds: seed + 100000 + k; the scored frames': seed + k
TOUCHING_SHARE = 0.25  # of each set, the last quarter has the agent touching the block
ALPHAS = tuple(np.logspace(-4, 5, 19))
MLP_HIDDEN = (256, 256)
ENCODE_BATCH = 256
PROBES = ("linear", "mlp")
SUBSETS = ("all", "reset", "touching")

DEFINITIONS = {
    "frames": "still frames drawn at the model's image size by scenes.render.draw_state, frame k of a set from "
              "seed first_seed + k (scenes.pose_states): the reset distribution (agent xy ~ U[50, 450]^2, block xy "
              "~ U[100, 400]^2, block angle ~ U over the circle), and in the last `touching_share` of each set the "
              "agent moved to touch the block (0 to 1 world px outside the T's outline at a contact point drawn "
              "uniformly along it, inside the walls); the scored set and the fitting set use disjoint seeds",
    "linear": "sklearn RidgeCV on z standardised with the fitting frames' mean and std, one alpha per target "
              "column chosen from `alphas` by leave-one-out (generalised) cross-validation on the fitting frames",
    "mlp": "sklearn MLPRegressor per target (two hidden layers of `mlp_hidden`, ReLU, Adam) on standardised z, its "
           "targets standardised too; early stopping on 10% of the fitting frames held out (10 epochs without "
           "improvement)",
    "r2": "coefficient of determination on the scored frames per target (uniform average of its two columns; 1 = "
          "perfect, 0 = no better than the scored frames' mean), over all scored frames, the reset-distribution "
          "ones and the touching ones",
    "r2_interval": "95% interval of r2 over the choice of scored frames: 2.5th and 97.5th percentiles of r2 over "
                   "`bootstrap_resamples` resamples of the scored frames with replacement (the probes are not "
                   "refitted)",
    "r2_per_column": "r2 per column, all scored frames",
    "fit_r2": "r2 on the fitting frames themselves (well above r2: the probe learned its fitting frames, not a read "
              "of the state that carries over)",
    "angle_error_deg": "median absolute angle between the true block angle and atan2 of the predicted (sin, cos), "
                       "per subset",
    "reset_overlap_share": "the share of scored reset-distribution frames whose agent overlaps the block (the reset "
                           "distribution allows it)",
}


@dataclass
class PoseSet:
    """The states of a set of still frames: row k drawn from seeds[k]; touching[k] when the agent touches."""

    states: np.ndarray  # (N, 7)
    seeds: np.ndarray  # (N,)
    touching: np.ndarray  # (N,) bool


def touching_count(count: int, share: float = TOUCHING_SHARE) -> int:
    return int(round(count * share))


def pose_set(first_seed: int, count: int, share: float = TOUCHING_SHARE) -> PoseSet:
    """`count` states from seeds first_seed, first_seed + 1, ...; the last `share` of them touching."""
    from scenes.pose_states import pose_states

    touching = touching_count(count, share)
    states, seeds = pose_states(first_seed, count, touching)
    return PoseSet(states=states, seeds=seeds, touching=np.arange(count) >= count - touching)


def embed_states(model, states: np.ndarray, desc: str) -> np.ndarray:
    """z of each state's frame at the model's image size, drawn and encoded a batch at a time (the frames are not
    kept: 5,000 of them at 224 px would take 750 MB)."""
    from scenes.render import draw_states

    batches = range(0, len(states), ENCODE_BATCH)
    return np.concatenate([model.encode(draw_states(states[i:i + ENCODE_BATCH], model.image_size))
                           for i in tqdm(batches, desc=desc, leave=False)])


def targets_of(states: np.ndarray) -> np.ndarray:
    """(N, 6): agent x, y, block x, y, sin and cos of the block angle."""
    return np.concatenate([fn(np.asarray(states, np.float64)) for _, fn in TARGETS.values()], axis=1)


def _columns(target: str) -> slice:
    at = list(TARGETS).index(target) * 2
    return slice(at, at + 2)


def r2_columns(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """R^2 per column over the rows (axis -2); leading axes are batches (bootstrap resamples). NaN where the true
    column does not vary (a resample of a few frames can draw one frame only)."""
    residual = ((true - predicted) ** 2).sum(axis=-2)
    total = ((true - true.mean(axis=-2, keepdims=True)) ** 2).sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1 - residual / total, np.nan)


def r2_by_target(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    per_column = r2_columns(true, predicted)
    return {target: float(per_column[_columns(target)].mean()) for target in TARGETS}


def r2_intervals(true: np.ndarray, predicted: np.ndarray, seed: int = 0,
                 resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, list[float]]:
    """Per target, the 95% bootstrap interval of its r2 over the rows (frames drawn with replacement)."""
    rows = np.random.default_rng(seed).integers(0, len(true), (resamples, len(true)))
    per_column = r2_columns(true[rows], predicted[rows])  # (resamples, 6)
    return {target: np.nanpercentile(per_column[:, _columns(target)].mean(axis=1), [2.5, 97.5]).tolist()
            for target in TARGETS}


def angle_error_deg(true: np.ndarray, predicted: np.ndarray) -> float:
    """Median absolute angle between the true angle and atan2 of the predicted (sin, cos), in degrees."""
    gap = np.arctan2(predicted[:, 4], predicted[:, 5]) - np.arctan2(true[:, 4], true[:, 5])
    return float(np.degrees(np.median(np.abs(np.angle(np.exp(1j * gap))))))


def linear_probe():
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS, alpha_per_target=True))


def mlp_probe(seed: int = 0):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPRegressor(hidden_layer_sizes=MLP_HIDDEN, early_stopping=True, max_iter=500, random_state=seed)
    return TransformedTargetRegressor(make_pipeline(StandardScaler(), mlp), transformer=StandardScaler())


def fit_probes(z_fit: np.ndarray, y_fit: np.ndarray) -> dict:
    """The linear probe (all six columns at once; each its own alpha) and one MLP per target."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):  # small matrices: more BLAS threads only contend with the model's
        linear = linear_probe().fit(z_fit, y_fit)
        mlps = {t: mlp_probe().fit(z_fit, y_fit[:, _columns(t)]) for t in tqdm(TARGETS, desc="pose: MLP probes",
                                                                               leave=False)}
    return {"linear": linear, "mlp": mlps}


def predict(probes: dict, z: np.ndarray) -> dict[str, np.ndarray]:
    """Each probe's (N, 6) prediction."""
    return {"linear": probes["linear"].predict(z),
            "mlp": np.concatenate([probes["mlp"][t].predict(z).reshape(len(z), 2) for t in TARGETS], axis=1)}


def score_embeddings(z_fit: np.ndarray, states_fit: np.ndarray, z_scored: np.ndarray, states_scored: np.ndarray,
                     touching: np.ndarray) -> dict:
    """Fit both probes on (z_fit, states_fit) and score them on the scored frames: the numbers of the JSON that do
    not depend on where the embeddings came from."""
    y_fit, y_scored = targets_of(states_fit), targets_of(states_scored)
    probes = fit_probes(z_fit, y_fit)
    predicted, fitted = predict(probes, z_scored), predict(probes, z_fit)
    subsets = {"all": np.ones(len(z_scored), bool), "reset": ~touching, "touching": touching}
    subsets = {name: rows for name, rows in subsets.items() if rows.sum() >= 2}
    columns = [c for names, _ in TARGETS.values() for c in names]
    return {
        "r2": {p: {s: r2_by_target(y_scored[rows], predicted[p][rows]) for s, rows in subsets.items()}
               for p in PROBES},
        "r2_interval": {p: {s: r2_intervals(y_scored[rows], predicted[p][rows]) for s, rows in subsets.items()}
                        for p in PROBES},
        "r2_per_column": {p: dict(zip(columns, r2_columns(y_scored, predicted[p]))) for p in PROBES},
        "fit_r2": {p: r2_by_target(y_fit, fitted[p]) for p in PROBES},
        "angle_error_deg": {p: {s: angle_error_deg(y_scored[rows], predicted[p][rows]) for s, rows in subsets.items()}
                            for p in PROBES},
        "ridge_alpha": dict(zip(columns, np.atleast_1d(probes["linear"][-1].alpha_))),
        "mlp_epochs": {t: int(probes["mlp"][t].regressor_[-1].n_iter_) for t in TARGETS},
        "predicted": predicted,  # for the figure; left out of the JSON
        "true": y_scored,
    }


def run_pose(model, seed: int = HELD_OUT_SEED, frames: int = 1000, fit_frames: int = 4000,
             out: str | Path | None = None) -> dict:
    """JSON-ready results; with `out` (a folder), also writes pose.json and pose.png. Scored frames: seeds seed ..
    seed + frames - 1; fitting frames: seeds seed + FIT_SEED_OFFSET onwards."""
    from scenes.pose_states import agent_gap

    if frames > FIT_SEED_OFFSET:
        raise ValueError(f"at most {FIT_SEED_OFFSET} scored frames (the fitting frames' seeds start there)")
    fit, scored = pose_set(seed + FIT_SEED_OFFSET, fit_frames), pose_set(seed, frames)
    z_fit = embed_states(model, fit.states, desc="pose: drawing and encoding the fitting frames")
    z_scored = embed_states(model, scored.states, desc="pose: drawing and encoding the scored frames")
    scores = score_embeddings(z_fit, fit.states, z_scored, scored.states, scored.touching)
    true, predicted = scores.pop("true"), scores.pop("predicted")
    result = {
        "probe": "pose",
        "definitions": DEFINITIONS,
        "settings": {
            "image_size": model.image_size, "seed": seed, "frames": frames, "fit_frames": fit_frames,
            "scored_seeds": [int(scored.seeds[0]), int(scored.seeds[-1])],
            "fit_seeds": [int(fit.seeds[0]), int(fit.seeds[-1])],
            "touching_share": TOUCHING_SHARE,
            "touching_frames": {"scored": int(scored.touching.sum()), "fit": int(fit.touching.sum())},
            "alphas": list(ALPHAS), "mlp_hidden": list(MLP_HIDDEN), "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        },
        **scores,
        "reset_overlap_share": float((agent_gap(scored.states[~scored.touching]) < 0).mean())
        if (~scored.touching).any() else None,
    }
    if out is not None:
        write_json(Path(out) / "pose.json", result)
        save_figure(pose_figure(true, predicted, scored.touching, result), Path(out) / "pose.png", palette=True)
    return result


def pose_figure(true: np.ndarray, predicted: dict[str, np.ndarray], touching: np.ndarray, result: dict):
    """Predicted against true on the scored frames: a row per probe, a panel per target, and the angle as atan2."""
    fig = new_figure(figsize=(17, 8.5))
    axes = fig.subplots(2, 4)
    groups = {"reset distribution": ~touching, "touching": touching}
    colours = {"reset distribution": "tab:blue", "touching": "tab:orange"}
    for row, probe in enumerate(PROBES):
        guess = predicted[probe]
        for col, (target, (names, _)) in enumerate(TARGETS.items()):
            ax = axes[row, col]
            cols = _columns(target)
            for label, rows in groups.items():
                for j, marker in zip(range(cols.start, cols.stop), ("o", "^")):
                    ax.scatter(true[rows, j], guess[rows, j], s=4, alpha=0.35, lw=0, color=colours[label],
                               marker=marker)
            span = [min(true[:, cols].min(), guess[:, cols].min()), max(true[:, cols].max(), guess[:, cols].max())]
            ax.plot(span, span, color="k", lw=0.8)
            low, high = result["r2_interval"][probe]["all"][target]
            ax.set_title(f"{probe}: {target}  R$^2$ {result['r2'][probe]['all'][target]:.3f} "
                         f"[{low:.2f}, {high:.2f}]", fontsize=9)
            ax.set_xlabel(f"true ({names[0]} o, {names[1]} ^)", fontsize=8)
            ax.set_ylabel("predicted from z", fontsize=8)
        ax = axes[row, 3]
        true_deg = np.degrees(np.arctan2(true[:, 4], true[:, 5])) % 360
        guess_deg = np.degrees(np.arctan2(guess[:, 4], guess[:, 5])) % 360
        for label, rows in groups.items():
            ax.scatter(true_deg[rows], guess_deg[rows], s=4, alpha=0.35, lw=0, color=colours[label], label=label)
        ax.plot([0, 360], [0, 360], color="k", lw=0.8)
        ax.set_xlim(0, 360)
        ax.set_ylim(0, 360)
        ax.set_title(f"{probe}: block angle, atan2(sin, cos); median error "
                     f"{result['angle_error_deg'][probe]['all']:.1f} deg", fontsize=9)
        ax.set_xlabel("true angle (deg)", fontsize=8)
        ax.set_ylabel("predicted angle (deg)", fontsize=8)
        ax.legend(fontsize=7, markerscale=3, loc="upper left")
    s = result["settings"]
    fig.suptitle(f"pose probe: {s['fit_frames']} fitting frames, {s['frames']} scored frames (seeds "
                 f"{s['scored_seeds'][0]}..{s['scored_seeds'][1]}; {s['touching_frames']['scored']} touching), "
                 f"{s['image_size']} px; intervals: 95% bootstrap over the scored frames")
    fig.tight_layout()
    return fig


def headline(result: dict) -> dict:
    return {"r2": {p: result["r2"][p]["all"] for p in PROBES},
            "r2_interval": {p: result["r2_interval"][p]["all"] for p in PROBES},
            "touching_r2": {p: result["r2"][p].get("touching") for p in PROBES},
            "angle_error_deg": {p: result["angle_error_deg"][p]["all"] for p in PROBES}}
