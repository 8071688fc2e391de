"""What every probe shares: where episodes come from, running the LatentStream over episodes once (keeping its
records as arrays), and writing JSON and figures. The model is handed in by the command (torch weights or the
ONNX engine, see export/backends.py); nothing here chooses or imports an implementation.

The probes never roll the model out themselves: every number comes from lewm.stream.LatentStream, the
computation the monitor runs live, so a probe's JSON and the monitor's panels agree.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lewm_errors import UserError

HELD_OUT_SEED = 1_000_000  # our training data uses seeds below this


# -- episodes ----------------------------------------------------------------------------------------------
def scene_episodes(scene: str, count: int, seed: int, image_size: int, steps: int | None = None,
                   desc: str | None = None) -> list:
    """`count` episodes of the named scene with seeds seed, seed + 1, ...: scenes.episode.Episode objects."""
    from tqdm import tqdm

    from scenes.catalog import get_scene
    from scenes.episode import play_episode

    base = get_scene(scene)
    if base.policy == "manual":
        raise UserError(f"scene {scene!r} has no policy to play it offline; choose another scene")
    return [play_episode(base.with_seed(seed + i), image_size, steps=steps, seed=seed + i)
            for i in tqdm(range(count), desc=desc or f"playing {scene}", leave=False)]


def dataset_episodes(path: str | Path, count: int, image_size: int, first: int = 0,
                     steps: int | None = None) -> list:
    """Episodes first .. first + count - 1 of an HDF5 dataset, as Episode objects (clean = recorded frames)."""
    from scenes.dataset import EpisodeDataset
    from scenes.episode import Episode

    with EpisodeDataset(path) as data:
        if data.image_size != image_size:
            raise UserError(f"{path} holds {data.image_size} px frames but the model expects {image_size} px")
        if first + count > data.num_episodes:
            raise UserError(f"{path} holds {data.num_episodes} episodes; the probe needs {first + count}")
        episodes = []
        for i in range(first, first + count):
            rows = data.rows(i)
            frames = data.frames(i)
            actions, states = data.action[rows].copy(), data.state[rows].copy()
            if steps is not None:
                frames, actions, states = frames[:steps + 1], actions[:steps + 1], states[:steps + 1]
                actions[-1] = np.nan  # the action after the last frame kept is not part of the episode
            n = len(frames)
            episodes.append(Episode(frames=frames, clean_frames=frames, actions=actions, states=states,
                                    coverage=np.zeros(n, np.float32), artifact_active=np.zeros(n, bool)))
    return episodes


def action_blocks(episode, frameskip: int) -> np.ndarray:
    """The episode's model-step action blocks (frameskip raw actions concatenated), finite ones only: (K, fs*A)."""
    a = np.asarray(episode.actions, np.float32)
    k = len(a) // frameskip
    blocks = a[:k * frameskip].reshape(k, -1)
    return blocks[np.all(np.isfinite(blocks), axis=1)]


def shuffle_banks(episodes: list, frameskip: int) -> list[np.ndarray]:
    """Per episode, the pooled action blocks of all OTHER episodes (with a single episode, its own blocks)."""
    blocks = [action_blocks(e, frameskip) for e in episodes]
    banks = []
    for i in range(len(episodes)):
        others = [b for j, b in enumerate(blocks) if j != i] or [blocks[i]]
        bank = np.concatenate(others)
        if not len(bank):
            raise UserError("episodes too short to give a single action block for the shuffled stream")
        banks.append(bank)
    return banks


# -- running the stream ------------------------------------------------------------------------------------
@dataclass
class StreamRun:
    """One episode through the LatentStream: the per-frame records, stacked (row t = frame t)."""

    z: np.ndarray  # (T, D)
    surprise: np.ndarray  # (T, 3) per action stream (real, shuffled, zero)
    forecast_error: np.ndarray  # (T, 3, H): the horizon h forecast checked at frame t, index h-1
    copy_last_error: np.ndarray  # (T, H)
    probe_surprise: np.ndarray | None  # (T, 3) against the probe frames, when given
    frameskip: int
    history: int
    uncertainty: np.ndarray | None = None  # (T, 2) of each frame's forecast (lewm.stream), where the model serves it

    @property
    def horizon(self) -> int:
        return self.forecast_error.shape[-1]

    def by_start(self, first_start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Re-index the forecasts by their start frame: errors (S, 3, H) and copy-last (S, H), with start frames
        (S,) from `first_start` on; entry [s, :, h-1] is the forecast made at frame s checked at s + fs*h."""
        T, _, H = self.forecast_error.shape
        starts = np.arange(first_start, T)
        errors = np.full((len(starts), 3, H), np.nan)
        copy_last = np.full((len(starts), H), np.nan)
        for h in range(1, H + 1):
            checked = starts + self.frameskip * h
            ok = checked < T
            errors[ok, :, h - 1] = self.forecast_error[checked[ok], :, h - 1]
            copy_last[ok, h - 1] = self.copy_last_error[checked[ok], h - 1]
        return starts, errors, copy_last


def run_stream(model, episodes: list, horizon: int = 1, frames: str = "frames", probe_frames: str | None = None,
               desc: str = "stream") -> list[StreamRun]:
    """Feed each episode's frames (attribute `frames` of the Episode) and actions through a fresh LatentStream.

    probe_frames: another frame attribute scored as the stream's probe_frame (never entering the context).
    The shuffled action stream draws from the other episodes' blocks; stream i is seeded with i."""
    from tqdm import tqdm

    from lewm.stream import LatentStream

    banks = shuffle_banks(episodes, model.frameskip)
    runs = []
    for i, episode in enumerate(tqdm(episodes, desc=desc, leave=False)):
        stream = LatentStream(model, horizon=horizon, shuffle_bank=banks[i], seed=i)
        shown = getattr(episode, frames)
        probes = None if probe_frames is None else getattr(episode, probe_frames)
        records = [stream.step(shown[t], episode.actions[t], None if probes is None else probes[t])
                   for t in range(len(shown))]
        runs.append(StreamRun(
            z=np.stack([r.z for r in records]),
            surprise=np.stack([r.surprise for r in records]),
            forecast_error=np.stack([r.forecast_error for r in records]),
            copy_last_error=np.stack([r.copy_last_error for r in records]),
            probe_surprise=None if probes is None else np.stack([r.probe_surprise for r in records]),
            frameskip=model.frameskip, history=model.history,
            uncertainty=None if records[0].uncertainty is None else np.stack([r.uncertainty for r in records])))
    return runs


def forecast_runs(model, episodes: list, horizon: int, runs: list[StreamRun] | None, desc: str) -> list[StreamRun]:
    """The stream runs a forecast probe reads: `runs` when given (shared with other probes; they must track
    forecasts up to `horizon`), else a fresh run_stream of `episodes` to that horizon."""
    if runs is None:
        return run_stream(model, episodes, horizon=horizon, desc=desc)
    if runs[0].horizon < horizon:
        raise ValueError(f"the stream ran with horizon {runs[0].horizon} < {horizon}")
    return runs


def forecasts_by_horizon(runs: list[StreamRun]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All forecasts started from a full real context (start frame >= frameskip * (history - 1)), pooled over
    episodes: start-major errors (S, 3, H), copy-last (S, H) and the (episode, start frame) of each row (S, 2)."""
    errors, copy_last, index = [], [], []
    for e, run in enumerate(runs):
        starts, err, copy = run.by_start(first_start=run.frameskip * (run.history - 1))
        keep = np.isfinite(err[:, 0, 0])  # a start whose h=1 forecast never arrived has no curve at all
        errors.append(err[keep])
        copy_last.append(copy[keep])
        index.append(np.stack([np.full(keep.sum(), e), starts[keep]], axis=1))
    H = runs[0].horizon
    if not errors or sum(len(x) for x in errors) == 0:
        raise UserError("episodes too short: no forecast from a full context was checked; "
                        "use longer episodes (--steps)")
    return (np.concatenate(errors).reshape(-1, 3, H), np.concatenate(copy_last).reshape(-1, H),
            np.concatenate(index).reshape(-1, 2))


# -- numbers and files -------------------------------------------------------------------------------------
BOOTSTRAP_RESAMPLES = 1000


def episode_resamples(episode: np.ndarray, seed: int = 0, count: int = BOOTSTRAP_RESAMPLES):
    """Row indices of `count` bootstrap resamples that draw whole episodes with replacement (rows of one episode
    are not independent), for an interval over the choice of episodes; `episode` holds each row's episode."""
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(episode == e) for e in np.unique(episode)]
    for _ in range(count):
        yield np.concatenate([rows[i] for i in rng.integers(0, len(rows), len(rows))])


def nan_stat(fn, values: np.ndarray, axis: int = 0) -> np.ndarray:
    """fn (np.nanmean, np.nanmedian, ...) over `axis`, NaN (not a warning) where a column is all NaN."""
    values = np.asarray(values, np.float64)
    out = np.full(np.delete(values.shape, axis), np.nan)
    has = np.isfinite(values).any(axis=axis)
    if has.any():
        moved = np.moveaxis(values, axis, -1)[has]
        out[has] = fn(moved, axis=-1)
    return out


def ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def jsonable(value):
    """Numpy to plain Python, NaN and infinities to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    return path


def new_figure(**kwargs):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(**kwargs)


def save_figure(fig, path: str | Path, palette: bool = False) -> Path:
    """palette: store the PNG with 256 colours (a third of the size for a figure of thousands of translucent
    points, which true colour stores poorly)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=120, bbox_inches="tight")
        Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    else:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
