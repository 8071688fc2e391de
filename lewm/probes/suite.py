"""The probes as `lewm probe` runs them: which episodes each probe gets, and `all`, which runs the stream over
the expert episodes once for the latent, horizon and actions probes and writes summary.json.

Episodes come from named scenes with held-out seeds (seed, seed + 1, ...; the training data uses seeds below
1,000,000) or from a dataset file (its first episodes). The pose probe draws still frames instead, from the same
held-out seeds, with or without a dataset.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from lewm.probes import actions, decoder, horizon, latent, physics, pose, surprise, uncertainty, voe
from lewm.probes.common import HELD_OUT_SEED, dataset_episodes, run_stream, scene_episodes, write_json
from lewm.model_interface import UNCERTAINTY

PROBES = ("latent", "horizon", "surprise", "actions", "physics", "pose", "voe")
PHYSICS_TRAIN_OFFSET = 100_000  # the physics probe's training episodes: seeds seed + 100000 + i


@dataclass
class ProbeSettings:
    episodes: int = 20
    fit_episodes: int = 200  # the physics probe's fitting episodes (its test episodes: `episodes`)
    seed: int = HELD_OUT_SEED
    steps: int | None = None  # env steps per episode (None: the scene's own length)
    dataset: str | None = None
    horizon: int = 20
    frames: int = 1000  # the pose probe's scored frames (seeds seed, seed + 1, ...)
    fit_frames: int = 4000  # the pose probe's fitting frames (seeds seed + 100000, ...)


class EpisodeSource:
    """The episodes of each probe at the model's image size, played (or read) once and reused."""

    def __init__(self, settings: ProbeSettings, image_size: int, frameskip: int):
        self.settings = settings
        self.image_size = image_size
        self.frameskip = frameskip
        self._cache: dict = {}

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def scene(self, name: str, count: int | None = None, offset: int = 0) -> list:
        s = self.settings
        count = s.episodes if count is None else count
        return self._get(("scene", name, count, offset), lambda: scene_episodes(
            name, count, s.seed + offset, self.image_size, steps=s.steps))

    def dataset(self, count: int | None = None, first: int = 0, steps: int | None = None) -> list:
        s = self.settings
        count = s.episodes if count is None else count
        steps = s.steps if steps is None else steps
        return self._get(("dataset", count, first, steps), lambda: dataset_episodes(
            s.dataset, count, self.image_size, first=first, steps=steps))

    def expert(self) -> list:
        return self.dataset() if self.settings.dataset else self.scene("expert")

    def artifact(self) -> list:
        """Episodes with the published sliding square drawn in (scene "seed-artifact", or dataset episodes)."""
        if not self.settings.dataset:
            return self.scene("seed-artifact")
        from scenes.artifacts import sliding_square
        from scenes.catalog import get_scene

        steps = self.settings.steps or get_scene("seed-artifact").steps
        square = sliding_square(frameskip=self.frameskip)
        return [surprise.with_artifact(e, square) for e in self.dataset(steps=steps)]

    def physics(self) -> tuple[list, list, dict]:
        """`fit_episodes` expert episodes to fit and the `episodes` held-out expert episodes of the other probes to
        test, from separate seed ranges (with a dataset: its first F episodes to fit, the next N to test)."""
        s = self.settings
        fit, test = s.fit_episodes, s.episodes
        if s.dataset:
            return self.dataset(fit), self.dataset(test, first=fit), {
                "train": f"{s.dataset} episodes 0..{fit - 1}", "test": f"{s.dataset} episodes {fit}..{fit + test - 1}"}
        off = PHYSICS_TRAIN_OFFSET
        train, tested = self.scene("expert", fit, off), self.expert()
        sources = {"train": f"expert seeds {s.seed + off}..{s.seed + off + fit - 1}",
                   "test": f"expert seeds {s.seed}..{s.seed + test - 1}"}
        return train, tested, sources


def run_probe(name: str, model, settings: ProbeSettings, out: str | Path, source: EpisodeSource | None = None,
              runs: list | None = None, pixel_decoder=None) -> dict:
    """Run one probe, writing OUT/<name>.json and OUT/<name>.png; returns its results. The decoder probe needs
    `pixel_decoder` (anything with decode(z) -> uint8 frames)."""
    source = source or EpisodeSource(settings, model.image_size, model.frameskip)
    if name == "latent":
        return latent.run_latent(model, source.expert(), runs=runs, out=out)
    if name == "horizon":
        return horizon.run_horizon(model, source.expert(), horizon=settings.horizon, runs=runs, out=out)
    if name == "actions":
        return actions.run_actions(model, source.expert(), horizon=settings.horizon, runs=runs, out=out)
    if name == "surprise":
        return surprise.run_surprise(model, source.artifact(), out=out)
    if name == "physics":
        train, test, sources = source.physics()
        return physics.run_physics(model, train, test, out=out, sources=sources)
    if name == "pose":
        return pose.run_pose(model, seed=settings.seed, frames=settings.frames, fit_frames=settings.fit_frames,
                             out=out)
    if name == "voe":
        return voe.run_voe(model, source.expert(), seed=settings.seed, out=out)
    if name == "uncertainty":
        return uncertainty.run_uncertainty(model, source.expert(), source.artifact(), seed=settings.seed, runs=runs,
                                           out=out)
    if name == "decoder":
        if pixel_decoder is None:
            raise ValueError("the decoder probe needs the model's pixel decoder")
        episodes = source.expert()  # short episodes: fewer horizons rather than none
        longest = decoder.fitting_horizon(model, episodes, min(settings.horizon, decoder.MAX_HORIZON))
        return decoder.run_decoder(model, pixel_decoder, episodes, horizon=longest, out=out)
    raise ValueError(f"unknown probe {name!r}; known probes: {', '.join(PROBES)}")


HEADLINES = {"latent": latent.headline, "horizon": horizon.headline, "surprise": surprise.headline,
             "actions": actions.headline, "physics": physics.headline, "pose": pose.headline, "voe": voe.headline,
             "decoder": decoder.headline, "uncertainty": uncertainty.headline}


def run_all(model, settings: ProbeSettings, out: str | Path, model_name: str = "", backend: str = "",
            pixel_decoder=None) -> dict:
    """Every probe (the decoder probe where there is a `pixel_decoder`, the uncertainty probe where the model serves
    uncertainty), the expert episodes' stream run once for latent, horizon, actions and uncertainty; writes
    summary.json."""
    source = EpisodeSource(settings, model.image_size, model.frameskip)
    shared = run_stream(model, source.expert(), horizon=settings.horizon, desc="stream (latent, horizon, actions)")
    summary = {"model": model_name, "backend": backend, "image_size": model.image_size,
               "frameskip": model.frameskip, "history": model.history, "settings": asdict(settings)}
    for name in PROBES:
        result = run_probe(name, model, settings, out, source=source,
                           runs=shared if name in ("latent", "horizon", "actions") else None)
        summary[name] = HEADLINES[name](result)
    if UNCERTAINTY in model.capabilities:
        summary["uncertainty"] = uncertainty.headline(run_probe("uncertainty", model, settings, out, source=source,
                                                                runs=shared))
    if pixel_decoder is not None:
        summary["decoder"] = decoder.headline(run_probe("decoder", model, settings, out, source=source,
                                                        pixel_decoder=pixel_decoder))
    write_json(Path(out) / "summary.json", summary)
    return summary
