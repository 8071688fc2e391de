"""Is the model's uncertainty high where the model is wrong? Three tests of the uncertainty it serves
(lewm/ensemble/model.py: an ensemble's disagreement plus its expected error, about the one-step forecast of each frame;
lewm.stream records it beside surprise, so these are the numbers the monitor shows).

1. Error. Over held-out expert episodes, at every frame with a forecast: the Spearman rank correlation between the
   uncertainty of the frame's one-step forecast (known before the frame is seen) and that forecast's error when the
   frame arrives (surprise under the real actions, 1 - cos); with a 95% interval over the choice of episodes.
2. Off-distribution states. Frames drawn from states the data rarely shows (the T pressed against a wall, the agent
   far from the block, the T in a corner of the arena), each with the action block of a typical frame, against
   those typical frames (random frames of the held-out episodes with their real blocks): AUROC of uncertainty.
3. Novelty against ordinary surprise. Frames where something new happens (the sliding red square of the surprise
   probe in view; the block teleported, as in the voe probe, in the model step from the jump on) against frames of
   the clean episodes whose surprise is as high as ordinary play gets (its top decile): AUROC of uncertainty, of
   surprise, and of surprise / uncertainty. Where the model was sure and the world surprised it anyway, the surprise
   is novelty; where it was unsure, ordinary: uncertainty separates the two where its AUROC lies far from 0.5.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lewm.probes.common import episode_resamples, new_figure, run_stream, save_figure, write_json
from lewm.model_interface import UNCERTAINTY
from lewm_errors import UserError

OFF_DISTRIBUTION = ("wall", "far", "corner")
SAMPLES = 200  # frames per off-distribution kind, and typical frames
ORDINARY_QUANTILE = 0.9  # clean frames with surprise above this quantile are "ordinary surprise"

DEFINITIONS = {
    "uncertainty": "per frame t, the model's uncertainty (squared latent distance: the ensemble's disagreement plus "
                   "its expected error) about the one-step forecast of frame t from frame t - frameskip under the real "
                   "action block taken between them (lewm.stream record.uncertainty, summed)",
    "error": "surprise under the real actions, 1 - cos(forecast of frame t, z_t): the error of that forecast",
    "spearman": "Spearman rank correlation of uncertainty and error over every frame of the held-out episodes that "
                "has both; interval_95: 2.5 and 97.5 percentiles over 1000 resamples of whole episodes",
    "typical": "random frames of the held-out episodes (after a full context), each with its real action block",
    "wall": "the T pressed against one of the four walls (its nearest point 3 units from the wall's face), at a random "
            "angle and place along the wall; the agent at a random free spot",
    "far": "the agent more than 300 units from the T's body origin",
    "corner": "the T's body origin within 90 units of two walls",
    "off_distribution_auroc": "per kind, AUROC of uncertainty separating its frames (1) from the typical frames (0); "
                              "each off-distribution frame takes the action block of one typical frame",
    "novelty": "frames showing a novelty that their forecast could not: the sliding square in view (scene "
               "seed-artifact), or frames e .. e + frameskip - 1 after the block was teleported (translation, the "
               "voe probe's draw) at step e, all forecast from frames before the jump",
    "ordinary": "frames of the clean held-out episodes whose surprise is above its 90th percentile",
    "novelty_auroc": "AUROC separating novelty frames (1) from ordinary-surprise frames (0), by uncertainty, by "
                     "surprise and by surprise / uncertainty; 0.5: no separation, near 0 or 1: separated",
    "disagreement_auroc": "the same AUROC by the ensemble's disagreement alone (its epistemic part)",
}


def _auroc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if not len(positive) or not len(negative):
        return None
    return float(roc_auc_score(np.r_[np.ones(len(positive)), np.zeros(len(negative))], np.r_[positive, negative]))


def _spearman(u: np.ndarray, e: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(u, e).statistic)


def off_distribution_states(kind: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` states (7,) of one OFF_DISTRIBUTION kind, agent clear of the T, at rest."""
    import shapely.geometry

    from scenes.pusht import AGENT_RADIUS, t_polygon

    inner = (8.0, 503.0)  # the walls' inner faces (5 + wall radius 2, and 506 - 2) with a unit to spare
    states = []
    while len(states) < count:
        angle = rng.uniform(-math.pi, math.pi)
        x, y = rng.uniform(100, 412, 2)
        if kind == "wall":
            side = int(rng.integers(4))
            x0, y0, x1, y1 = t_polygon(x, y, angle).bounds
            if side == 0:
                x += inner[0] + 3 - x0
            elif side == 1:
                x += inner[1] - 3 - x1
            elif side == 2:
                y += inner[0] + 3 - y0
            else:
                y += inner[1] - 3 - y1
        elif kind == "corner":
            x, y = (rng.uniform(inner[0], 90) if rng.random() < 0.5 else rng.uniform(422, inner[1]) for _ in range(2))
        elif kind != "far":
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(OFF_DISTRIBUTION)}")
        t = t_polygon(x, y, angle)
        if not shapely.geometry.box(inner[0], inner[0], inner[1], inner[1]).contains(t):
            continue
        agent = rng.uniform(inner[0] + AGENT_RADIUS, inner[1] - AGENT_RADIUS, 2)
        if t.distance(shapely.geometry.Point(*agent)) < AGENT_RADIUS + 2:
            continue
        if kind == "far" and np.hypot(*(agent - (x, y))) < 300:
            continue
        states.append([*agent, x, y, angle, 0.0, 0.0])
    return np.asarray(states, np.float64)


def _typical(runs, episodes, frameskip: int, first: int, rng: np.random.Generator, count: int):
    """(uncertainty parts (N, 2), blocks (N, A)) of random frames t of the runs."""
    picks = [(i, t) for i, r in enumerate(runs) for t in range(first, len(r.z))
             if np.isfinite(r.uncertainty[t]).all()]
    chosen = [picks[j] for j in rng.choice(len(picks), min(count, len(picks)), replace=False)]
    blocks = np.stack([np.asarray(episodes[i].actions[t - frameskip:t], np.float32).reshape(-1) for i, t in chosen])
    return np.stack([runs[i].uncertainty[t] for i, t in chosen]), blocks


def run_uncertainty(model, episodes: list, artifact_episodes: list, seed: int, runs: list | None = None,
                    out: str | Path | None = None) -> dict:
    """The three tests on held-out expert episodes (and the sliding-square episodes of the surprise probe); `seed`
    seeds the draws. JSON-ready results; with `out`, also writes uncertainty.json and uncertainty.png."""
    from lewm.probes.voe import replay_twin, draw_event
    from scenes.render import draw_state

    if UNCERTAINTY not in model.capabilities:
        raise UserError("the model serves no uncertainty; train an ensemble with `lewm train-ensemble`")
    fs, first = model.frameskip, model.frameskip * model.history
    runs = runs if runs is not None and runs[0].uncertainty is not None else run_stream(
        model, episodes, horizon=1, desc="uncertainty: held-out episodes")
    rng = np.random.default_rng(seed)

    # 1. error
    u = np.concatenate([r.uncertainty.sum(1) for r in runs])
    e = np.concatenate([r.surprise[:, 0] for r in runs])
    ep = np.concatenate([np.full(len(r.z), i) for i, r in enumerate(runs)])
    ok = np.isfinite(u) & np.isfinite(e)
    u, e, ep = u[ok], e[ok], ep[ok]
    parts = np.concatenate([r.uncertainty for r in runs])[ok]
    resampled = [_spearman(u[rows], e[rows]) for rows in episode_resamples(ep, seed)]
    error = {"frames": int(ok.sum()), "spearman": _spearman(u, e),
             "interval_95": [float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))],
             "spearman_disagreement": _spearman(parts[:, 0], e), "spearman_noise": _spearman(parts[:, 1], e),
             "uncertainty_median": float(np.median(u))}

    # 2. off-distribution states, each with a typical frame's action block
    typical_parts, blocks = _typical(runs, episodes, fs, first, rng, SAMPLES)
    typical_u = typical_parts.sum(1)
    off, off_values = {}, {"typical": typical_u}
    for kind in OFF_DISTRIBUTION:
        states = off_distribution_states(kind, len(blocks), rng)
        z = model.encode(np.stack([draw_state(s, model.image_size) for s in states]))
        both = model.uncertainty(z, blocks).astype(np.float64)
        values = off_values[kind] = both.sum(1)
        off[kind] = {"frames": len(values), "auroc": _auroc(values, typical_u), "median": float(np.median(values)),
                     "disagreement_auroc": _auroc(both[:, 0], typical_parts[:, 0])}
    off["typical_median"] = float(np.median(typical_u))

    # 3. novelty against ordinary surprise
    ordinary = e > np.quantile(e, ORDINARY_QUANTILE)
    square = []
    for r, episode in zip(run_stream(model, artifact_episodes, horizon=1, desc="uncertainty: sliding square"),
                          artifact_episodes):
        keep = np.asarray(episode.artifact_active, bool) & np.isfinite(r.uncertainty).all(1) & np.isfinite(
            r.surprise[:, 0])
        square.append(np.column_stack([r.uncertainty[keep], r.surprise[keep, 0]]))
    twins = []
    for i, episode in enumerate(episodes):
        length = len(episode.frames)
        if length - 2 * fs < first:
            continue
        clean = replay_twin(episode, model.image_size, length - 1)
        event = draw_event("translation", clean.states, first, length - 2 * fs, np.random.default_rng([seed + i, 0]))
        if event is not None:
            twins.append((event, replay_twin(episode, model.image_size, event.step + fs - 1, event)))
    teleport = []
    for (event, twin), r in zip(twins, run_stream(model, [t for _, t in twins], horizon=1,
                                                  desc="uncertainty: teleports")):
        t = np.arange(event.step, event.step + fs)
        keep = np.isfinite(r.uncertainty[t]).all(1) & np.isfinite(r.surprise[t, 0])
        teleport.append(np.column_stack([r.uncertainty[t[keep]], r.surprise[t[keep], 0]]))
    plain = np.column_stack([parts[ordinary], e[ordinary]])  # disagreement, noise, surprise
    novelty = {"ordinary_frames": int(ordinary.sum()),
               "ordinary_uncertainty_median": float(np.median(u[ordinary])),
               "ordinary_surprise_median": float(np.median(e[ordinary]))}
    novel_sets = {}
    for name, rows in (("sliding_square", square), ("teleport", teleport)):
        rows = np.concatenate(rows) if rows else np.zeros((0, 3))
        novel_sets[name] = rows
        nu, ns = rows[:, :2].sum(1), rows[:, 2]
        novelty[name] = {"frames": int(len(rows)),
                         "uncertainty_median": float(np.median(nu)) if len(rows) else None,
                         "surprise_median": float(np.median(ns)) if len(rows) else None,
                         "auroc_uncertainty": _auroc(nu, u[ordinary]),
                         "auroc_disagreement": _auroc(rows[:, 0], plain[:, 0]),
                         "auroc_surprise": _auroc(ns, e[ordinary]),
                         "auroc_surprise_over_uncertainty": _auroc(ns / np.maximum(nu, 1e-12),
                                                                   e[ordinary] / np.maximum(u[ordinary], 1e-12))}

    result = {"probe": "uncertainty", "definitions": DEFINITIONS, "episodes": len(episodes), "seed": seed,
              "error": error, "off_distribution": off, "novelty": novelty}
    if out is not None:
        write_json(Path(out) / "uncertainty.json", result)
        save_figure(uncertainty_figure(result, u, e, off_values, novel_sets, plain),
                    Path(out) / "uncertainty.png")
    return result


def uncertainty_figure(result: dict, u: np.ndarray, e: np.ndarray, off_values: dict, novel_sets: dict,
                       ordinary: np.ndarray):
    fig = new_figure(figsize=(13, 4))
    ax = fig.add_subplot(1, 3, 1)
    ax.scatter(u, e, s=3, alpha=0.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("uncertainty of the forecast")
    ax.set_ylabel("its error (surprise, 1 - cos)")
    err = result["error"]
    ax.set_title(f"Spearman {err['spearman']:.2f} [{err['interval_95'][0]:.2f}, {err['interval_95'][1]:.2f}]")
    ax = fig.add_subplot(1, 3, 2)
    off = result["off_distribution"]
    labels = ["typical"] + [f"{k}\nAUROC {off[k]['auroc']:.2f}" for k in OFF_DISTRIBUTION]
    ax.boxplot([off_values[k] for k in ("typical", *OFF_DISTRIBUTION)], tick_labels=labels)
    ax.set_yscale("log")
    ax.set_ylabel("uncertainty")
    ax.set_title("off-distribution states against typical ones")
    ax = fig.add_subplot(1, 3, 3)
    for rows, label, colour in ((ordinary, "ordinary surprise (top decile)", "tab:blue"),
                                (novel_sets["sliding_square"], "sliding square in view", "tab:red"),
                                (novel_sets["teleport"], "block teleported", "tab:orange")):
        if len(rows):
            ax.scatter(rows[:, :2].sum(1), rows[:, 2], s=5, alpha=0.5, color=colour, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("uncertainty of the forecast")
    ax.set_ylabel("surprise")
    nov = result["novelty"]
    ax.set_title("AUROC vs ordinary (uncertainty / surprise / ratio): square "
                 + " / ".join(f"{nov['sliding_square'][k] or 0:.2f}" for k in
                              ("auroc_uncertainty", "auroc_surprise", "auroc_surprise_over_uncertainty"))
                 + ", teleport " + " / ".join(f"{nov['teleport'][k] or 0:.2f}" for k in
                                              ("auroc_uncertainty", "auroc_surprise",
                                               "auroc_surprise_over_uncertainty")), fontsize=7)
    ax.legend(fontsize=7)
    return fig


def headline(result: dict) -> dict:
    err, off, nov = result["error"], result["off_distribution"], result["novelty"]
    return {"spearman_vs_next_error": err["spearman"], "interval_95": err["interval_95"],
            "off_distribution_auroc": {k: off[k]["auroc"] for k in OFF_DISTRIBUTION},
            "novelty_auroc": {k: {m: nov[k][f"auroc_{m}"] for m in ("uncertainty", "surprise",
                                                                     "surprise_over_uncertainty")}
                              for k in ("sliding_square", "teleport")}}
