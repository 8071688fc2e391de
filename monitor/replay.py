"""Replay sources: a recorded session (its log) or a dataset episode, played back as frames and actions.

A session row holds the state, the artifacts drawn (as static patches at their drawn positions) and the block
colour, so its frames are redrawn exactly (scenes.render.draw_state, the one drawing path) at the model's
image size, and the actions are the ones it took. The stream is reset where the recording's was: each logged
`episode_start` starts an episode again, and each frame logged `dropped` is dropped again. A dataset episode
gives its pixels (redrawn from the states when their size differs from the model's) and its actions.

A session replay runs with the session's own settings (scene, seed, model, precision, horizon, reference bank:
`replay_settings`); a flag that says otherwise is an error, since the numbers would no longer be the recording's.
Nothing is guessed: a missing or unreadable session.json, or a recorded model folder that is gone, is an error; an
explicit --model replays on another model and the replay's session.json records that it did.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lewm.config import read_json_object
from monitor.session import META, read_log
from monitor.sim import View, render_view
from lewm_errors import UserError
from scenes.render import draw_state


class Playback:
    """A position in `len(self)` recorded steps, shared by both sources: it starts at the first step and, once at
    the last, stays there (finished)."""
    i: int = 0  # the current step

    def reset(self) -> None:
        self.i = 0

    @property
    def episode_start(self) -> bool:
        return self.i == 0

    @property
    def finished(self) -> bool:
        return self.i >= len(self) - 1

    def advance(self) -> None:
        if not self.finished:
            self.i += 1


class SessionReplay(Playback):
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.exists():
            raise UserError(f"no session at {self.folder}")
        try:
            self.meta = read_json_object(self.folder / META, "the session's settings file")
        except UserError as err:
            raise UserError(f"{err}; a replay runs with the settings the session recorded there (model, scene, "
                            "seed, horizon), so it cannot run without them: restore the file from a copy of the "
                            "session") from None
        self.rows = [r for r in read_log(self.folder) if r.get("state") is not None]
        if not self.rows:
            raise UserError(f"the session {self.folder} has no steps to replay")
        self.name = f"session {self.folder.name}"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def env_step(self) -> int:
        return int(self.rows[self.i]["env_step"])

    def current(self, size: int) -> View:
        r = self.rows[self.i]
        color = r.get("block_color")
        color = None if color is None else tuple(color)
        frame = render_view(r["state"], size, r.get("artifacts", []), r["env_step"], color)
        return View(int(r["env_step"]), frame, np.asarray(r["state"]), list(r.get("artifacts", [])), color,
                    r.get("coverage") or float("nan"), self.action(), dropped=bool(r.get("dropped")),
                    active_stream=r.get("active_stream"),
                    extra={key: r[key] for key in ("plan", "seed") if r.get(key) is not None})

    @property
    def episode_start(self) -> bool:
        return self.i == 0 or bool(self.rows[self.i].get("episode_start"))

    def action(self):
        a = self.rows[self.i].get("action")
        return None if a is None or any(v is None for v in a) else np.asarray(a, np.float64)


class DatasetReplay(Playback):
    def __init__(self, path: str | Path, episode: int = 0):
        from scenes.dataset import EpisodeDataset

        data = EpisodeDataset(path)
        try:
            if not 0 <= episode < data.num_episodes:
                raise UserError(f"{path} has {data.num_episodes} episodes; episode {episode} is out of range")
            rows = data.rows(episode)
            self.pixels = data.frames(episode)
            self.actions = data.action[rows]
            self.states = data.state[rows]
        finally:
            data.close()
        self.name = f"{Path(path).name} episode {episode}"

    def __len__(self) -> int:
        return len(self.states)

    @property
    def env_step(self) -> int:
        return self.i

    def current(self, size: int) -> View:
        if self.pixels.shape[1] == size:
            frame = self.pixels[self.i]
        else:
            frame = draw_state(self.states[self.i], size)
        return View(self.i, frame, self.states[self.i], [], None, float("nan"), self.action())

    def action(self):
        a = self.actions[self.i]
        return np.asarray(a, np.float64) if np.all(np.isfinite(a)) else None


# What a session replay takes from session.json: (option, meta key). The model is compared as a resolved folder.
REPLAYED_SETTINGS = (("scene", "scene"), ("seed", "seed"), ("horizon", "horizon"), ("precision", "precision"),
                     ("reference_episodes", "reference_episodes"), ("reference_steps", "reference_steps"))


def replay_settings(meta: dict, given: dict) -> dict:
    """The settings a session replay runs with: the session's, where it recorded them. `given` maps option names
    (those of REPLAYED_SETTINGS and "model") to what the command line says, None where it says nothing. A value
    that contradicts the session is an error."""
    out = dict(given)
    clashes = []
    for option, key in REPLAYED_SETTINGS:
        if meta.get(key) is None:
            continue
        if given.get(option) is not None and given[option] != meta[key]:
            clashes.append(f"--{option.replace('_', '-')} {given[option]} (the session's is {meta[key]})")
        out[option] = meta[key]
    recorded = meta.get("model")
    if given.get("model") is not None:
        if recorded is None or Path(given["model"]).resolve() != Path(recorded).resolve():
            out["model_replaced"] = {"recorded": recorded, "replayed_on": str(Path(given["model"]).resolve())}
    elif recorded is None or not Path(recorded).is_dir():
        raise UserError(f"the session's model folder {recorded} is gone, so its numbers cannot be reproduced; pass "
                        "--model DIR to replay it on another model (the replay's session.json says so)")
    else:
        out["model"] = recorded
    if clashes:
        raise UserError("a replay runs as the session ran; drop " + ", ".join(clashes))
    return out
