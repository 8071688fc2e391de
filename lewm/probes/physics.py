"""Probe 5, physical state: how linearly the embeddings hold the agent position, the block position and the
block angle. A ridge regression on standardised z, fitted on some episodes and scored (R^2) on others."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from lewm.probes.common import episode_resamples, new_figure, save_figure, write_json

DEFAULT_ALPHA = 1.0
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
# target group -> (names of its columns, function of the (T, 7) states)
TARGETS = {
    "agent_xy": (("agent x", "agent y"), lambda s: s[:, 0:2]),
    "block_xy": (("block x", "block y"), lambda s: s[:, 2:4]),
    "block_angle": (("sin(block angle)", "cos(block angle)"), lambda s: np.stack([np.sin(s[:, 4]),
                                                                                  np.cos(s[:, 4])], axis=1)),
}

DEFINITIONS = {
    "points": "every env frame of every episode: its embedding z (the encoder's output, as in the stream) and the "
              "simulator state of that frame",
    "probe": "sklearn Ridge on z standardised with the training frames' mean and std, one regression for all six "
             "target columns; alpha chosen from `alphas` by the R^2 (uniform average over the columns) of the "
             "out-of-fold predictions of a GroupKFold cross-validation over the training episodes (up to 5 folds, "
             "whole episodes held out; `cv_r2` per alpha), 1.0 when there is a single training episode",
    "r2": "coefficient of determination on the test episodes per target group (uniform average of its columns; "
          "1 = perfect, 0 = no better than the test mean)",
    "r2_per_column": "the same per column",
    "r2_interval": "a 95% interval for r2 over the choice of test episodes: the 2.5th and 97.5th percentiles of r2 "
                   "over 1000 resamples of whole test episodes drawn with replacement (the probe itself is not "
                   "refitted)",
    "angle_error_deg": "median absolute angle between the true block angle and atan2 of the predicted (sin, cos)",
    "block_centre_r2": "a diagnostic beside r2's block_xy: R^2 of the same probe (same scaling and alpha) fitted to "
                       "the T's area centroid instead of block xy; block xy is the body origin, the middle of the "
                       "bar's top edge, 40.7 px from the centroid along the stem, so it moves around the centroid "
                       "with the block angle",
    "fit_curve": "r2 on the same test episodes when the probe (same scaling and alpha) is fitted on only the first "
                 "quarter, the first half and all of the training episodes: whether more fitting episodes would still "
                 "raise it (the probe has not settled) or not",
    "block_error_by_step": "the test frames grouped by their step in the episode (first..last, inclusive): the "
                           "group's share of the frames, the mean distance between true and predicted block xy (world "
                           "px, the world is 512 px wide), and the group's share of the block xy squared error",
}
STEP_GROUPS = (0, 10, 30)  # block_error_by_step groups: steps 0-9 (the reset pose), 10-29, 30 onwards


def targets_of(states: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(np.asarray(states, np.float64)) for _, fn in TARGETS.values()], axis=1)


def t_centre(states: np.ndarray) -> np.ndarray:
    """The T's area centroid in world coordinates, from the block pose columns (body origin x, y and angle)."""
    from scenes.pusht import block_centroid

    return block_centroid(states[:, 2:5])


def r2_by_group(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R^2 per target group (the uniform average of its columns)."""
    from sklearn.metrics import r2_score

    per_column = r2_score(true, predicted, multioutput="raw_values")
    groups, at = {}, 0
    for group, (names, _) in TARGETS.items():
        groups[group] = float(np.mean(per_column[at:at + len(names)]))
        at += len(names)
    return groups


def r2_interval(true: np.ndarray, predicted: np.ndarray, episode: np.ndarray, seed: int = 0) -> dict[str, list]:
    """Per target group, the 95% bootstrap interval of its R^2 over the test episodes (see DEFINITIONS)."""
    draws = [r2_by_group(true[rows], predicted[rows]) for rows in episode_resamples(episode, seed)]
    return {group: np.percentile([d[group] for d in draws], [2.5, 97.5]).tolist() for group in TARGETS}


def block_error_by_step(true: np.ndarray, predicted: np.ndarray, steps: np.ndarray) -> dict:
    """Where in the episodes the block read goes wrong (see DEFINITIONS); empty groups are left out."""
    squared = ((predicted[:, 2:4] - true[:, 2:4]) ** 2).sum(axis=1)
    edges = [*STEP_GROUPS, int(steps.max()) + 1]
    groups = {}
    for first, end in zip(edges[:-1], edges[1:]):
        chosen = (steps >= first) & (steps < end)
        if chosen.any():
            groups[f"{first}-{end - 1}"] = {"frame_share": float(chosen.mean()),
                                            "block_error_px": float(np.sqrt(squared[chosen]).mean()),
                                            "squared_error_share": float(squared[chosen].sum() / squared.sum())}
    return groups


def cross_validated_r2(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alpha: float) -> float:
    """R^2 of the out-of-fold predictions of Ridge(alpha), the folds holding out whole episodes (NaN with a single
    episode). Pooled over folds, so a fold's R^2 is not judged against one episode's small spread alone."""
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold

    folds = min(5, len(np.unique(groups)))
    if folds < 2:
        return float("nan")
    predicted = np.empty_like(y)
    for train, test in GroupKFold(folds).split(x, y, groups):
        predicted[test] = ridge(alpha).fit(x[train], y[train]).predict(x[test])
    return float(r2_score(y, predicted))


def ridge(alpha: float):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha, solver="svd")  # SVD: no warnings on the near-singular z of a young model


def run_physics(model, train_episodes: list, test_episodes: list, out: str | Path | None = None,
                sources: dict | None = None) -> dict:
    """JSON-ready results; with `out` (a folder), also writes physics.json and physics.png.
    `sources`: a description of where the train and test episodes came from, copied into the JSON."""
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    def embed(episodes, name):
        z = [model.encode(e.frames) for e in tqdm(episodes, desc=f"physics: encoding {name}", leave=False)]
        return (np.concatenate(z), np.concatenate([np.asarray(e.states, np.float64) for e in episodes]),
                np.concatenate([np.full(len(zi), i) for i, zi in enumerate(z)]),
                np.concatenate([np.arange(len(zi)) for zi in z]))

    z_train, states_train, groups, _ = embed(train_episodes, "train")
    z_test, states_test, test_episode, test_steps = embed(test_episodes, "test")
    y_train, y_test = targets_of(states_train), targets_of(states_test)
    scaler = StandardScaler().fit(z_train)
    x_train, x_test = scaler.transform(z_train), scaler.transform(z_test)
    cv_r2 = {alpha: cross_validated_r2(x_train, y_train, groups, alpha) for alpha in ALPHAS}
    scored = [a for a in ALPHAS if np.isfinite(cv_r2[a])]
    alpha = max(scored, key=cv_r2.get) if scored else DEFAULT_ALPHA  # one training episode: no CV
    probe = ridge(alpha).fit(x_train, y_train)
    predicted = probe.predict(x_test)
    centre_probe = ridge(alpha).fit(x_train, t_centre(states_train))
    block_centre_r2 = float(r2_score(t_centre(states_test), centre_probe.predict(x_test)))

    columns = [c for names, _ in TARGETS.values() for c in names]
    per_column = r2_score(y_test, predicted, multioutput="raw_values")
    r2 = r2_by_group(y_test, predicted)
    fit_curve = []
    for count in sorted({max(1, len(train_episodes) // 4), max(1, len(train_episodes) // 2)} - {len(train_episodes)}):
        first = groups < count  # groups numbers the training frames by episode
        partial = ridge(alpha).fit(x_train[first], y_train[first]).predict(x_test)
        fit_curve.append({"train_episodes": count, "r2": r2_by_group(y_test, partial)})
    fit_curve.append({"train_episodes": len(train_episodes), "r2": r2})  # the probe itself
    true_angle = np.arctan2(y_test[:, 4], y_test[:, 5])
    angle_gap = np.angle(np.exp(1j * (np.arctan2(predicted[:, 4], predicted[:, 5]) - true_angle)))
    result = {
        "probe": "physics",
        "definitions": DEFINITIONS,
        "sources": sources or {},
        "train_episodes": len(train_episodes),
        "test_episodes": len(test_episodes),
        "train_points": int(len(z_train)),
        "test_points": int(len(z_test)),
        "r2": r2,
        "r2_per_column": dict(zip(columns, per_column)),
        "r2_interval": r2_interval(y_test, predicted, test_episode),
        "alpha": alpha,
        "alphas": list(ALPHAS),
        "cv_r2": list(cv_r2.values()),
        "train_r2": float(r2_score(y_train, probe.predict(x_train))),
        "angle_error_deg": float(np.degrees(np.median(np.abs(angle_gap)))),
        "block_centre_r2": block_centre_r2,
        "fit_curve": fit_curve,
        "block_error_by_step": block_error_by_step(y_test, predicted, test_steps),
    }
    if out is not None:
        write_json(Path(out) / "physics.json", result)
        save_figure(physics_figure(y_test, predicted, columns, per_column), Path(out) / "physics.png")
    return result


def physics_figure(true: np.ndarray, predicted: np.ndarray, columns: list[str], r2: np.ndarray):
    """Predicted against true on the test episodes, one panel per target column."""
    fig = new_figure(figsize=(13, 8))
    axes = fig.subplots(2, 3).T.ravel()  # columns of panels: agent, block position, block angle
    rng = np.random.default_rng(0)
    shown = rng.choice(len(true), min(len(true), 4000), replace=False)
    for j, ax in enumerate(axes):
        t, p = true[shown, j], predicted[shown, j]
        ax.scatter(t, p, s=3, alpha=0.3, color="tab:blue", lw=0)
        span = [min(t.min(), p.min()), max(t.max(), p.max())]
        ax.plot(span, span, color="k", lw=0.8)
        ax.set_title(f"{columns[j]}: R$^2$ = {r2[j]:.3f}", fontsize=10)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted from z")
    fig.suptitle("linear probe from the embedding to the physical state (held-out episodes)")
    fig.tight_layout()
    return fig


def headline(result: dict) -> dict:
    return {key: result[key] for key in ("r2", "r2_interval", "angle_error_deg", "block_centre_r2", "fit_curve")}
