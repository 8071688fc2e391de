"""The reference bank of a model: expert episodes seen through its encoder, built once and cached.

Built with the engine (no torch) from `episodes` expert episodes of held-out seeds (2000000 + i, never
used for training data), keeping the frame of every model step (every `frameskip` env steps):
  z            (N, D)   their embeddings
  episode, t   (N,)     which episode, and the normalised time in it
  pca          the frozen 2-D PCA fitted on z (lewm.stream.PCA): the grey cloud, axes fixed for good
  thumbs       (N, s, s, 3) uint8, the frames subsampled to at most 64 px, for "what the model expects":
               the nearest bank frame (cosine) to each look-ahead prediction
  shuffle_bank (M, frameskip * 2) raw action blocks of the episodes, the LatentStream's shuffled stream

Cached in MODEL/reference.npz, keyed by the ONNX files and the build settings; if the folder is read-only or
the write fails, the bank lives in memory for this run.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lewm.stream import PCA

CACHE = "reference.npz"
VERSION = 1
FIRST_SEED = 2_000_000
THUMB = 64


@dataclass
class ReferenceBank:
    z: np.ndarray
    episode: np.ndarray
    time: np.ndarray
    pca: PCA
    cloud: np.ndarray  # (N, 2) PCA coordinates of z
    thumbs: np.ndarray
    shuffle_bank: np.ndarray
    key: str = ""

    def __post_init__(self):
        norm = np.linalg.norm(self.z, axis=1, keepdims=True)
        self._zn = (self.z / np.maximum(norm, 1e-12)).astype(np.float32)

    def nearest(self, z: np.ndarray) -> np.ndarray:
        """Index of the bank frame nearest (cosine) to each row of z (F, D)."""
        z = np.atleast_2d(np.asarray(z, np.float32))
        zn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return np.argmax(zn @ self._zn.T, axis=1)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, z=self.z, episode=self.episode, time=self.time, pca_mean=self.pca.mean,
                 pca_components=self.pca.components, thumbs=self.thumbs, shuffle_bank=self.shuffle_bank,
                 key=np.array(self.key))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ReferenceBank:
        with np.load(path) as f:
            pca = PCA(f["pca_mean"], f["pca_components"])
            return cls(z=f["z"], episode=f["episode"], time=f["time"], pca=pca, cloud=pca.transform(f["z"]),
                       thumbs=f["thumbs"], shuffle_bank=f["shuffle_bank"], key=str(f["key"]))


def cache_key(engine, episodes: int, steps: int) -> str:
    parts = [f"v{VERSION}", f"e{episodes}", f"s{steps}", f"i{engine.image_size}", f"p{engine.precision}"]
    folder = engine.folder
    if folder is not None:
        for name in sorted(os.listdir(folder)):
            if name.endswith((".onnx", ".weights")):
                st = (Path(folder) / name).stat()
                parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def build_reference(engine, episodes: int = 10, steps: int = 150,
                    progress: Callable[[float, str], None] | None = None) -> ReferenceBank:
    from scenes.catalog import get_scene
    from scenes.episode import ScenePlayer

    fs, size = engine.frameskip, engine.image_size
    stride = -(-size // THUMB)  # thumbnails of at most THUMB px
    zs, eps, times, thumbs, blocks = [], [], [], [], []
    for e in range(episodes):
        seed = FIRST_SEED + e
        player = ScenePlayer(get_scene("expert").with_seed(seed), size)
        step = player.reset(seed)
        frames, actions = [step.frame], []
        for _ in range(steps):
            action, step = player.step()
            actions.append(action)
            frames.append(step.frame)
        kept = np.stack(frames[::fs])
        zs.append(engine.encode(kept))
        eps.append(np.full(len(kept), e))
        times.append(np.linspace(0.0, 1.0, len(kept)))
        thumbs.append(kept[:, ::stride, ::stride])
        actions = np.asarray(actions, np.float32)
        for s in range(0, len(actions) - fs + 1, fs):
            blocks.append(actions[s:s + fs].reshape(-1))
        if progress:
            progress((e + 1) / episodes, f"reference bank: episode {e + 1}/{episodes}")
    z = np.concatenate(zs).astype(np.float32)
    pca = PCA.fit(z)
    return ReferenceBank(z=z, episode=np.concatenate(eps), time=np.concatenate(times).astype(np.float32), pca=pca,
                         cloud=pca.transform(z), thumbs=np.concatenate(thumbs), shuffle_bank=np.stack(blocks))


def load_or_build(engine, episodes: int = 10, steps: int = 150,
                  progress: Callable[[float, str], None] | None = None) -> tuple[ReferenceBank, str]:
    """The bank of engine's model folder: from its cache, or built (and cached if the folder is writable).
    Returns (bank, where it lives: the cache path or "memory")."""
    key = cache_key(engine, episodes, steps)
    folder = engine.folder
    path = Path(folder) / CACHE if folder is not None else None
    if path is not None and path.is_file():
        try:
            bank = ReferenceBank.load(path)
            if bank.key == key:
                return bank, str(path)
        except Exception:  # a damaged cache is rebuilt
            pass
    bank = build_reference(engine, episodes, steps, progress)
    bank.key = key
    if path is None:
        return bank, "memory"
    try:
        bank.save(path)
        return bank, str(path)
    except OSError as err:
        warnings.warn(f"cannot cache the reference bank in {path} ({err.strerror or err}); keeping it in memory",
                      RuntimeWarning, stacklevel=2)
        return bank, "memory"
