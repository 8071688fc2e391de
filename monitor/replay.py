"""Replay sources: a recorded session (its log) or a dataset episode, played back as frames and actions.

A session row holds the state, the artifacts drawn (as static patches at their drawn positions) and the block
colour, so its frames are redrawn exactly (scenes.render.draw_state, the one drawing path) at the model's
image size, and the actions are the ones it took. A dataset episode gives its pixels (redrawn from the states
when their size differs from the model's) and its actions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.session import read_log, read_meta
from monitor.sim import View, render_view
from scenes.errors import UserError
from scenes.render import draw_state


class Playback:
    """A position in `len(self)` recorded steps, shared by both sources: it starts at the first step and, once at
    the last, stays there (finished)."""
    i: int = 0  # the current step

    def reset(self) -> None:
        self.i = 0

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
        self.meta = read_meta(self.folder)
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
                    r.get("coverage") or float("nan"), self.action(), {"plan": r["plan"]} if r.get("plan") else {})

    def action(self):
        a = self.rows[self.i].get("action")
        return None if a is None or any(v is None for v in a) else np.asarray(a, np.float64)


class DatasetReplay(Playback):
    def __init__(self, path: str | Path, episode: int = 0):
        from scenes.dataset import EpisodeDataset

        data = EpisodeDataset(path)
        try:
            if not 0 <= episode < data.num_episodes:
                raise UserError(f"{path} has {data.num_episodes} episodes; --episode {episode} is out of range")
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
