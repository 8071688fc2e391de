"""Violation of expectation: each held-out expert episode is played twice from the same start state with the same
actions, once clean and once with one event at a random env step: the block teleported (translation only, rotation
only about its area centroid, or both) or recoloured. Surprise under the real actions in a short window from the
event on is compared with the same frames of the clean twin, per event type, as in V-JEPA's intuitive-physics
protocol (pairwise accuracy and AUROC of the window's max and mean surprise), with paired tests beside.

Both twins replay the clean episode's recorded actions, so the agent takes the same path in both and only the world
differs: an expert reacting to the event would change the actions, and part of the surprise with them.

The window. Surprise exists at every env frame: frame t is predicted from frames t - 5, t - 10, t - 15 (frameskip 5,
history 3). With the event first shown at frame e, frames e .. e + 4 are predicted from contexts that end before the
event (the pure violation), and frames e + 5 .. e + 9 from contexts whose newest frame already shows it. The window is
those two model steps, env frames e .. e + 9; the curves show two model steps before and four after.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lewm.probes.common import nan_stat, new_figure, ratio, run_stream, save_figure, write_json
from lewm_errors import UserError

EVENTS = ("translation", "rotation", "both", "colour")
SHIFT_RANGE = (50.0, 150.0)  # how far the T's centroid jumps, world units (the arena is 512 wide)
TURN_RANGE_DEG = (45.0, 90.0)  # how far the T turns about its centroid, either way
RECOLOUR = (255, 140, 0)  # orange instead of LightSlateGray
WINDOW_STEPS = 2  # the window: the event's model step and the next, in env frames 0 .. 2 * frameskip - 1
CURVE_STEPS = (2, 4)  # model steps of surprise shown before and after the event frame
ARENA = (10.0, 501.0)  # a moved T lies inside this square of the world (the walls' inner faces: 7 and 504)
AGENT_CLEARANCE = 5.0  # world units between a moved T and the agent's disc on its way from frame e - 1 to e
MAX_DRAWS = 1000
STATISTICS = ("max", "mean")

DEFINITIONS = {
    "twins": "per episode and event type: the clean twin and the event twin, both replaying the episode's recorded "
             "actions from its first state (for an episode this simulator played, the clean twin is the episode "
             "itself, bit for bit); identical up to frame e - 1",
    "event_step": "env step e at which the event is applied, before that step's physics: frame e is the first to "
                  "show it. Drawn uniformly from [frameskip * history, T - window length] so the window lies in the "
                  "episode and its first frame has a full real context; redrawn (with its magnitudes, up to 1000 "
                  "times) until the moved T lies inside the arena and 5 units clear of the agent's disc on its way "
                  "from frame e - 1 to e (so no contact alters the event)",
    "translation": "the T's area centroid jumps by a distance uniform in [50, 150] world units in a uniform direction; "
                   "the angle is kept",
    "rotation": "the T turns by an angle uniform in [45, 90] degrees, either way, about its area centroid (the "
                "centroid stays, the body origin moves)",
    "both": "a translation and a rotation drawn as above, applied together",
    "colour": "the block turns orange (255, 140, 0) and stays so; nothing moves",
    "surprise": "1 - cos(z_hat_t, z_t) under the real actions (lewm.stream, record.surprise[0]), at every env frame t; "
                "the prediction of frame t comes from the frames t - frameskip * k, k = 1..history",
    "window": "env frames e .. e + 2 * frameskip - 1: the event's model step, whose predictions all come from "
              "contexts before the event, and the next one, whose contexts hold the first changed frames",
    "score": "per twin, the window's max and mean surprise",
    "mean_ratio": "mean over episodes of score(event twin) / score(clean twin)",
    "ratio_of_means": "mean score(event twin) / mean score(clean twin)",
    "ttest": "scipy.stats.ttest_rel(event, clean, alternative='greater') over the episodes' paired scores: t, p "
             "(one-sided: does the event raise surprise); null with fewer than two episodes",
    "wilcoxon": "scipy.stats.wilcoxon(event, clean, alternative='greater'), the signed-rank test of the same pairs "
                "(surprise is skewed); null with fewer than two episodes or when every pair is equal",
    "pairwise_accuracy": "share of episodes whose event twin's score exceeds its clean twin's (V-JEPA's relative "
                         "accuracy)",
    "auroc": "sklearn.metrics.roc_auc_score separating event twins (1) from clean twins (0) by the score, pooled "
             "over episodes (V-JEPA's absolute protocol)",
    "curve": "surprise by env frame offset from the event frame, mean and std over episodes, event and clean twin",
    "skipped": "episodes left out of an event type because no draw fitted (the agent against the block throughout "
               "the steps allowed); the figures of a type without trials are absent",
}


@dataclass(frozen=True)
class Event:
    kind: str
    step: int  # env step e: frame e is the first to show the event
    shift: tuple[float, float] = (0.0, 0.0)  # the centroid's jump, world units
    turn: float = 0.0  # radians about the centroid

    def perturbation(self):
        from scenes.artifacts import Perturbation

        if self.kind == "colour":
            return Perturbation("recolor_block", self.step, RECOLOUR)
        return Perturbation("move_block", self.step, (*self.shift, self.turn))


def _fits(event: Event, states: np.ndarray) -> bool:
    """Whether the moved T lies inside the arena and clear of the agent's way into the event frame."""
    import shapely.geometry

    from scenes.pusht import AGENT_RADIUS, moved_block_pose, t_polygon

    t = t_polygon(*moved_block_pose(states[event.step - 1, 2:5], event.shift, event.turn))
    if not shapely.geometry.box(ARENA[0], ARENA[0], ARENA[1], ARENA[1]).contains(t):
        return False
    way = shapely.geometry.LineString([states[event.step - 1, :2], states[event.step, :2]])
    return t.distance(way) > AGENT_RADIUS + AGENT_CLEARANCE


def draw_event(kind: str, states: np.ndarray, first: int, last: int, rng: np.random.Generator) -> Event | None:
    """An event of `kind` at a step in [first, last], given the clean twin's states (the world before the event is
    the clean twin's state at e - 1); None when no draw fits (the agent stays against the block throughout)."""
    if kind not in EVENTS:
        raise ValueError(f"unknown event {kind!r}; known: {', '.join(EVENTS)}")
    for _ in range(MAX_DRAWS):
        step = int(rng.integers(first, last + 1))
        shift, turn = (0.0, 0.0), 0.0
        if kind in ("translation", "both"):
            distance, direction = rng.uniform(*SHIFT_RANGE), rng.uniform(0, 2 * math.pi)
            shift = (distance * math.cos(direction), distance * math.sin(direction))
        if kind in ("rotation", "both"):
            turn = math.radians(rng.uniform(*TURN_RANGE_DEG)) * rng.choice((-1.0, 1.0))
        event = Event(kind, step, shift, turn)
        if kind == "colour" or _fits(event, states):
            return event
    return None


def replay_twin(episode, image_size: int, steps: int, event: Event | None = None):
    """The episode replayed from its first state with its recorded actions for `steps` env steps, with `event`
    applied (None: the clean twin)."""
    from scenes.catalog import get_scene
    from scenes.episode import play_episode

    scene = replace(get_scene("expert"), artifacts=[], perturbations=[] if event is None else [event.perturbation()])
    return play_episode(scene, image_size, steps=steps, state=episode.states[0], actions=episode.actions)


@dataclass
class Trial:
    """One episode's twins for one event type, clipped to the frames the aligned curve needs (from `start`)."""

    episode: int
    event: Event
    clean: object  # scenes.episode.Episode
    twin: object
    start: int


def _clip(episode, first: int, end: int):
    """Frames first .. end - 1 of an episode, as an Episode the stream can run over."""
    fields = ("frames", "clean_frames", "actions", "states", "coverage", "artifact_active")
    return replace(episode, **{f: getattr(episode, f)[first:end] for f in fields})


def _paired_tests(event: np.ndarray, clean: np.ndarray) -> tuple[dict, dict]:
    from scipy import stats

    ttest = wilcoxon = None
    if len(event) > 1:
        t = stats.ttest_rel(event, clean, alternative="greater")
        ttest = {"t": float(t.statistic), "p": float(t.pvalue)}
        if np.any(event != clean):
            w = stats.wilcoxon(event, clean, alternative="greater")
            wilcoxon = {"statistic": float(w.statistic), "p": float(w.pvalue)}
    return ttest, wilcoxon


def _auroc(event: np.ndarray, clean: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(event)), np.zeros(len(clean))]
    return float(roc_auc_score(labels, np.r_[event, clean]))


def scores_summary(event: dict, clean: dict) -> dict:
    """The figures of one event type from the per-episode window scores {statistic: (N,)} of both twins."""
    out = {key: {} for key in ("mean_ratio", "ratio_of_means", "ttest", "wilcoxon", "pairwise_accuracy", "auroc")}
    for s in STATISTICS:
        e, c = np.asarray(event[s], np.float64), np.asarray(clean[s], np.float64)
        out["mean_ratio"][s] = float(np.nanmean(ratio(e, c)))
        out["ratio_of_means"][s] = float(ratio(e.mean(), c.mean()))
        out["ttest"][s], out["wilcoxon"][s] = _paired_tests(e, c)
        out["pairwise_accuracy"][s] = float(np.mean(e > c))
        out["auroc"][s] = _auroc(e, c)
    return out


def run_voe(model, episodes: list, seed: int, out: str | Path | None = None) -> dict:
    """Episodes with states and recorded actions (e.g. held-out expert episodes); `seed` seeds the event draws
    (episode i, event type k: numpy generator [seed + i, k]). JSON-ready results; with `out` (a folder), also
    writes voe.json and voe.png."""
    from tqdm import tqdm

    fs, size = model.frameskip, model.image_size
    window = WINDOW_STEPS * fs
    before, after = CURVE_STEPS[0] * fs, max(CURVE_STEPS[1] * fs, window - 1)
    offsets = np.arange(-before, after + 1)
    first = fs * model.history
    short = [len(e.frames) for e in episodes if len(e.frames) - window < first]
    if short:
        raise UserError(f"episodes of {short[0] - 1} env steps are too short for the voe probe: it needs at least "
                        f"{first + window - 1} (--steps)")
    trials = {kind: [] for kind in EVENTS}  # per kind: Trial per episode where an event fits
    skipped = {kind: [] for kind in EVENTS}
    for i, episode in enumerate(tqdm(episodes, desc="voe: playing the twins", leave=False)):
        T = len(episode.frames)
        clean = replay_twin(episode, size, T - 1)
        for k, kind in enumerate(EVENTS):
            event = draw_event(kind, clean.states, first, T - window, np.random.default_rng([seed + i, k]))
            if event is None:
                skipped[kind].append(i)
                continue
            end = min(T, event.step + after + 1)
            twin = replay_twin(episode, size, end - 1, event)
            start = max(0, event.step - before - first)
            trials[kind].append(Trial(i, event, _clip(clean, start, end), _clip(twin, start, end), start))
    if not any(trials.values()):
        raise UserError("no event fits any episode: the agent stays against the block throughout; "
                        "use longer episodes (--steps)")
    results = {kind: {**_figures(model, trials[kind], offsets, window, kind), "skipped": skipped[kind]}
               for kind in EVENTS}
    result = {
        "probe": "voe",
        "definitions": DEFINITIONS,
        "episodes": len(episodes),
        "seed": seed,
        "events": list(EVENTS),
        "statistics": list(STATISTICS),
        "window": [0, window - 1],
        "offsets": offsets,
        "results": results,
    }
    if out is not None:
        write_json(Path(out) / "voe.json", result)
        examples = {kind: trials[kind][0] for kind in EVENTS if trials[kind]}
        save_figure(voe_figure(result, examples, fs), Path(out) / "voe.png")
    return result


def _figures(model, trials: list[Trial], offsets: np.ndarray, window: int, kind: str) -> dict:
    """One event type's figures from its trials: the stream over both twins' clips, scores, tests, curves."""
    if not trials:
        return {"trials": []}
    n, before = len(trials), -offsets[0]
    runs = run_stream(model, [t.clean for t in trials] + [t.twin for t in trials], horizon=1, desc=f"voe: {kind}")
    curves = np.full((2, n, len(offsets)), np.nan)  # (event twin, clean twin)
    for j, trial in enumerate(trials):
        for twin, run in enumerate((runs[n + j], runs[j])):
            at = np.arange(len(run.surprise)) + trial.start - trial.event.step + before
            keep = (at >= 0) & (at < len(offsets))
            curves[twin, j, at[keep]] = run.surprise[keep, 0]
    in_window = (offsets >= 0) & (offsets < window)
    scores = [{"max": c[:, in_window].max(axis=1), "mean": c[:, in_window].mean(axis=1)} for c in curves]
    return {
        **scores_summary(*scores),
        "curve": {twin: {"mean": nan_stat(np.nanmean, c), "std": nan_stat(np.nanstd, c)}
                  for twin, c in zip(("event", "clean"), curves)},
        "trials": [{"episode": t.episode, "event_step": t.event.step, "shift": math.hypot(*t.event.shift),
                    "turn_deg": math.degrees(t.event.turn),
                    "score": {twin: {s: scores[x][s][j] for s in STATISTICS}
                              for x, twin in enumerate(("event", "clean"))}}
                   for j, t in enumerate(trials)],
    }


COLOURS = {"event": "tab:red", "clean": "tab:blue"}


def voe_figure(result: dict, examples: dict, frameskip: int):
    """Per event type: the first episode's clean and event frames at the event, and the surprise curves aligned on
    the event (mean with a +- 1 std band, the window shaded); below, AUROC and pairwise accuracy per type."""
    fig = new_figure(figsize=(4 * len(EVENTS), 9))
    grid = fig.add_gridspec(3, len(EVENTS), height_ratios=[1, 2, 1.6], hspace=0.45)
    offsets = np.asarray(result["offsets"])
    lo, hi = result["window"]
    for j, kind in enumerate(EVENTS):
        if kind not in examples:
            continue
        trial = examples[kind]
        clean, twin, at = trial.clean, trial.twin, trial.event.step - trial.start
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(np.concatenate([clean.frames[at], np.full_like(clean.frames[at][:, :4], 255), twin.frames[at]], 1))
        ax.set_title(f"{kind}: clean | event twin at the event frame", fontsize=8)
        ax.axis("off")
        ax = fig.add_subplot(grid[1, j])
        ax.axvspan(lo - 0.5, hi + 0.5, color="0.88", label="window")
        ax.axvline(0, color="0.4", lw=0.8, ls="--")
        for twin_name in ("clean", "event"):
            m = np.asarray(result["results"][kind]["curve"][twin_name]["mean"], float)
            s = np.asarray(result["results"][kind]["curve"][twin_name]["std"], float)
            ax.plot(offsets, m, color=COLOURS[twin_name], label=f"{twin_name} twin")
            ax.fill_between(offsets, m - s, m + s, color=COLOURS[twin_name], alpha=0.15, lw=0)
        ax.set_xticks(offsets[offsets % frameskip == 0])
        ax.set_xlabel("env frames from the event")
        if j == 0:
            ax.set_ylabel("surprise  1 - cos(z_hat, z)")
        auroc = result["results"][kind]["auroc"]
        ax.set_title(f"{kind}: AUROC max {auroc['max']:.2f}, mean {auroc['mean']:.2f}", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper right", fontsize=7)
    x = np.arange(len(EVENTS))
    for col, (key, label) in enumerate((("auroc", "AUROC (event vs clean twins)"),
                                        ("pairwise_accuracy", "pairwise accuracy (event > its clean twin)"))):
        half = len(EVENTS) // 2
        ax = fig.add_subplot(grid[2, col * half:(col + 1) * half])
        for k, s in enumerate(STATISTICS):
            values = [result["results"][kind].get(key, {}).get(s, np.nan) for kind in EVENTS]
            bars = ax.bar(x + (k - 0.5) * 0.38, values, 0.38, label=f"window {s}")
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.axhline(0.5, color="0.4", lw=0.8, ls="--", label="chance")
        ax.set_xticks(x, EVENTS)
        ax.set_ylim(0, 1.08)
        ax.set_title(label, fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle(f"violation of expectation: {result['episodes']} episodes, seed {result['seed']}; window: env frames "
                 f"{lo}-{hi} from the event", fontsize=10)
    return fig


def headline(result: dict) -> dict:
    keys = ("auroc", "pairwise_accuracy", "mean_ratio", "ttest", "wilcoxon")
    return {kind: {"trials": len(r["trials"]), **{key: r.get(key) for key in keys}}
            for kind, r in result["results"].items()}
