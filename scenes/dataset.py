"""Datasets in the stable-worldmodel HDF5 layout (ARCHITECTURE.md lists its columns), ours and the official one.

Flat rows over all episodes: pixels (N, H, W, 3) uint8, action (N, 2), proprio (N, 4), state (N, 7),
episode_idx (N), step_idx (N); per episode ep_offset (E) int64 and ep_len (E) int32. Row t pairs
frame o_t with the action taken after it; an episode's last action is NaN.

A dataset may also leave the pixels out and keep only what makes them: every frame is a drawing of its state row
(scenes.render.draw_state), so a file of states and actions (attribute pixels = "drawn") gives the same frames,
byte for byte, at any image size, in about 1/1000 of the disk (10,000 episodes: tens of MB instead of tens of GB).
Readers draw such frames on demand; everything else reads the two kinds alike.

Files are written under a temporary name and renamed when complete, so an interrupted collection
never leaves a file that looks whole.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lewm_errors import UserError

ROW_COLUMNS = ("pixels", "action", "proprio", "state", "episode_idx", "step_idx")
EPISODE_COLUMNS = ("ep_offset", "ep_len")

try:  # registers the Blosc filter the official file's pixels are compressed with
    import hdf5plugin  # noqa: F401

    HAVE_HDF5PLUGIN = True
except ImportError:
    HAVE_HDF5PLUGIN = False


DRAWN = "drawn"  # the value of the file attribute "pixels" in a file whose frames are drawn from its states


class DatasetWriter:
    """Appends episodes to `path` (written as `path`.partial, renamed on close()).

    drawn=True writes no pixels column: the frames are drawn from the states when read (image_size is then the
    size readers draw at unless they ask for another).
    Use as a context manager: on an exception the partial file is removed.
    """

    def __init__(self, path: str | Path, image_size: int, attrs: dict | None = None, drawn: bool = False):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = h5py.File(self.partial, "w")
        except OSError as err:
            raise UserError(f"cannot write the dataset at {self.path}: {err.strerror or err}; "
                            f"choose a writable --out path") from None
        f = self.file
        s = image_size
        if drawn:
            f.attrs["pixels"] = DRAWN
        else:
            f.create_dataset("pixels", (0, s, s, 3), np.uint8, maxshape=(None, s, s, 3),
                             chunks=(16, s, s, 3), compression="lzf")
        f.attrs["image_size"] = image_size
        for name, width, dtype in (("action", 2, np.float32), ("proprio", 4, np.float64), ("state", 7, np.float64)):
            f.create_dataset(name, (0, width), dtype, maxshape=(None, width), chunks=(4096, width))
        for name, dtype in (("episode_idx", np.int32), ("step_idx", np.int32)):
            f.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(4096,))
        f.create_dataset("ep_offset", (0,), np.int64, maxshape=(None,))
        f.create_dataset("ep_len", (0,), np.int32, maxshape=(None,))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        self.rows = 0
        self.episodes = 0

    def add_episode(self, frames: np.ndarray | None, actions: np.ndarray, states: np.ndarray) -> None:
        """One episode's rows; frames None in a file without pixels."""
        n = len(states)
        f = self.file
        columns = {
            **({} if frames is None else {"pixels": frames}),
            "action": actions,
            "proprio": states[:, [0, 1, 5, 6]],
            "state": states,
            "episode_idx": np.full(n, self.episodes),
            "step_idx": np.arange(n),
        }
        for name, values in columns.items():
            f[name].resize(self.rows + n, axis=0)
            f[name][self.rows:] = values
        for name, value in (("ep_offset", self.rows), ("ep_len", n)):
            f[name].resize(self.episodes + 1, axis=0)
            f[name][self.episodes] = value
        self.rows += n
        self.episodes += 1

    def close(self) -> Path:
        self.file.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


class EpisodeDataset:
    """Read access to a dataset file. Columns other than pixels are loaded into memory; pixels are
    read on demand (`frames(i)`, `frames_at(rows)`, or `load_pixels()` for the whole array).

    In a file without pixels (`drawn`) the frames are drawn from the states at `image_size` (default: the size the
    file was collected at); a file with pixels is read at its own size (`image_size` None or equal to it)."""

    def __init__(self, path: str | Path, image_size: int | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"no dataset at {self.path}; make one with `lewm collect --out {self.path}`")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise UserError(f"{self.path} is not a readable HDF5 dataset ({err})") from None
        self.drawn = "pixels" not in self.file and self.file.attrs.get("pixels") == DRAWN
        needed = [c for c in ROW_COLUMNS + EPISODE_COLUMNS if not (self.drawn and c == "pixels")]
        missing = [c for c in needed if c not in self.file]
        if missing:
            self.file.close()
            raise UserError(f"{self.path} is missing the column(s) {', '.join(missing)}; a LeWM dataset "
                            f"needs {', '.join(needed)}")
        self.pixels = None if self.drawn else self.file["pixels"]
        self.action = self.file["action"][:].astype(np.float32)
        self.state = self.file["state"][:].astype(np.float64)
        self.proprio = self.file["proprio"][:].astype(np.float64)
        self.ep_offset = self.file["ep_offset"][:].astype(np.int64)
        self.ep_len = self.file["ep_len"][:].astype(np.int64)
        stored = int(self.file.attrs["image_size"]) if self.drawn else int(self.pixels.shape[1])
        if not self.drawn and image_size not in (None, stored):
            self.file.close()
            raise UserError(f"{self.path} holds {stored} px frames, not the {image_size} px asked for; collect it "
                            f"again with --image-size {image_size}, or with --pixels drawn (frames drawn at any size)")
        self.image_size = image_size or stored

    @property
    def num_episodes(self) -> int:
        return len(self.ep_offset)

    def rows(self, episode: int) -> slice:
        return slice(int(self.ep_offset[episode]), int(self.ep_offset[episode] + self.ep_len[episode]))

    def _read_pixels(self, selection) -> np.ndarray:
        if self.drawn:
            return self.frames_at(np.arange(len(self.state))[selection])
        try:
            return self.pixels[selection]
        except OSError as err:
            if not HAVE_HDF5PLUGIN:
                raise UserError(f"the pixels in {self.path} are compressed with a filter h5py lacks "
                                f"(the official file uses Blosc): pip install hdf5plugin") from None
            raise UserError(f"cannot read the pixels of {self.path}: {err}") from None

    def frames(self, episode: int) -> np.ndarray:
        return self._read_pixels(self.rows(episode))

    def frames_at(self, rows: np.ndarray) -> np.ndarray:
        """The frames of any rows (N,) -> (N, H, W, 3) uint8; drawn from their states in a file without pixels."""
        rows = np.asarray(rows)
        if not self.drawn:
            order, inverse = np.unique(rows, return_inverse=True)  # h5py reads increasing rows only
            return self._read_pixels(order)[inverse.reshape(rows.shape)]
        from scenes.render import draw_states

        return draw_states(self.state[rows], self.image_size)

    def load_pixels(self) -> np.ndarray:
        return self._read_pixels(slice(None))

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def action_statistics(dataset: EpisodeDataset) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the raw env actions (NaN rows, i.e. episode ends, excluded)."""
    a = dataset.action[np.all(np.isfinite(dataset.action), axis=1)]
    return a.mean(axis=0), a.std(axis=0)


def replay(first_state: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """States reached from `first_state` under `actions` (NaN actions end the replay): (len, 7)."""
    from scenes.pusht import PushT

    env = PushT(image_size=8)
    _, info = env.reset(options={"state": first_state})
    states = [info["state"]]
    for a in actions:
        if not np.all(np.isfinite(a)):
            break
        _, _, _, _, info = env.step(a)
        states.append(info["state"])
    return np.stack(states)
