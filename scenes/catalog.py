"""Named scenes: a seed, a policy and a schedule of artifacts and perturbations.

`lewm scenes` lists them; the monitor and the probes start from them by name."""
from __future__ import annotations

import math
import copy
from dataclasses import dataclass, field, replace

from scenes.artifacts import Artifact, Perturbation, sliding_square
from lewm_errors import UserError


@dataclass
class Scene:
    name: str
    description: str
    policy: str = "expert"
    seed: int = 0
    steps: int = 300
    artifacts: list[Artifact] = field(default_factory=list)
    perturbations: list[Perturbation] = field(default_factory=list)

    def with_seed(self, seed: int) -> "Scene":
        return replace(self, seed=seed)


def _scenes() -> dict[str, Scene]:
    scenes = [
        Scene("expert", "the scripted expert pushes the T onto the goal; nothing added"),
        Scene("seed-artifact", "expert episode; the published red 20 px square slides across the frame "
              "from model step 5 to 15 (env steps 25-75)", steps=150, artifacts=[sliding_square()]),
        Scene("teleport", "expert episode; the block jumps to another pose at env step 60",
              perturbations=[Perturbation("teleport_block", 60, (150.0, 350.0, math.pi / 2))]),
        Scene("recolor", "expert episode; the block turns orange at env step 60",
              perturbations=[Perturbation("recolor_block", 60, (255, 140, 0))]),
        Scene("noise-patch", "expert episode; a static 40 px noise patch from env step 25 to 75",
              artifacts=[Artifact(kind="noise", size=40, start=(170, 60), enter=25, exit=75)]),
        Scene("occluder", "expert episode; a dark bar covers part of the arena from env step 25 to 75",
              artifacts=[Artifact(kind="occluder", size=30, start=(60, 112), enter=25, exit=75)]),
        Scene("random", "random exploration near the block (the training data's exploratory policy)",
              policy="random"),
        Scene("manual", "no policy: you drive the agent (mouse or arrow keys)", policy="manual", steps=10**9),
    ]
    return {s.name: s for s in scenes}


SCENES = _scenes()


def get_scene(name: str) -> Scene:
    if name not in SCENES:
        raise UserError(f"unknown scene {name!r}; known scenes: {', '.join(SCENES)} (see `lewm scenes`)")
    return copy.deepcopy(SCENES[name])
