"""Artifacts drawn into the observation, and physical perturbations applied to the world.

Artifacts live in the 224 px reference frame (positions and sizes in reference pixels) and are
scaled to whatever resolution they are drawn at, so a scene means the same thing for a 64 px model
and the 224 px official one. Each has an active window of env steps [enter, exit) and a motion.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from lewm_errors import UserError

REFERENCE_SIZE = 224
ARTIFACT_KINDS = ("square", "disc", "noise", "occluder")
MOTIONS = ("static", "horizontal", "vertical", "path")
OCCLUDER_COLOR = (40, 40, 40)


@dataclass
class Artifact:
    """A patch drawn over the frame. Positions are the patch centre in reference pixels.

    motion "static": at `start`; "horizontal"/"vertical": from `start` to `end` linearly over the
    active window; "path": along `path`, a list of (env_step, x, y) keyframes, interpolated.
    """

    kind: str = "square"
    size: float = 20.0
    color: tuple = (255, 50, 50)
    opacity: float = 1.0
    motion: str = "static"
    start: tuple = (112.0, 112.0)
    end: tuple = (112.0, 112.0)
    path: list = field(default_factory=list)
    enter: int = 0
    exit: int | None = None  # None: until the end of the episode
    seed: int = 0  # for the noise patch

    def __post_init__(self):
        if self.kind not in ARTIFACT_KINDS:
            raise UserError(f"unknown artifact kind {self.kind!r}; known kinds: {', '.join(ARTIFACT_KINDS)}")
        if self.motion not in MOTIONS:
            raise UserError(f"unknown artifact motion {self.motion!r}; known motions: {', '.join(MOTIONS)}")
        if not 0.0 <= self.opacity <= 1.0:
            raise UserError(f"artifact opacity must be in [0, 1]; got {self.opacity}")
        self.color = tuple(int(c) for c in self.color)
        self.start = tuple(float(c) for c in self.start)
        self.end = tuple(float(c) for c in self.end)
        self.path = [tuple(float(v) for v in p) for p in self.path]

    def active(self, env_step: int) -> bool:
        return env_step >= self.enter and (self.exit is None or env_step < self.exit)

    def center(self, env_step: int) -> tuple[float, float]:
        """The patch centre (reference pixels) at `env_step`."""
        if self.motion == "path" and self.path:
            steps = [p[0] for p in self.path]
            return (float(np.interp(env_step, steps, [p[1] for p in self.path])),
                    float(np.interp(env_step, steps, [p[2] for p in self.path])))
        if self.motion in ("horizontal", "vertical") and self.exit is not None and self.exit > self.enter:
            # Reaches `end` on the last active step, so the whole slide is seen.
            f = np.clip((env_step - self.enter) / max(self.exit - 1 - self.enter, 1), 0.0, 1.0)
            x = self.start[0] + f * (self.end[0] - self.start[0])
            y = self.start[1] + f * (self.end[1] - self.start[1])
            return (x, self.start[1]) if self.motion == "horizontal" else (self.start[0], y)
        return self.start

    def contains(self, x: float, y: float, env_step: int) -> bool:
        """Whether reference-pixel point (x, y) lies on the artifact at `env_step` (for mouse picking)."""
        cx, cy = self.center(env_step)
        return abs(x - cx) <= self.size / 2 and abs(y - cy) <= self._height / 2

    @property
    def _height(self) -> float:
        return self.size * 3 if self.kind == "occluder" else self.size

    def draw(self, frame: np.ndarray, env_step: int) -> None:
        """Blend the artifact into `frame` (H, W, 3) uint8 in place, if active at `env_step`."""
        if not self.active(env_step):
            return
        n = frame.shape[0]
        scale = n / REFERENCE_SIZE
        cx, cy = (c * scale for c in self.center(env_step))
        half_w, half_h = self.size * scale / 2, self._height * scale / 2
        x0, x1 = int(round(cx - half_w)), int(round(cx + half_w))
        y0, y1 = int(round(cy - half_h)), int(round(cy + half_h))
        cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, n), max(y0, 0), min(y1, n)
        if cx1 <= cx0 or cy1 <= cy0:
            return
        region = frame[cy0:cy1, cx0:cx1].astype(np.float32)
        if self.kind == "noise":
            # Same noise for the same artifact and step: sessions and probes stay reproducible.
            rng = np.random.default_rng(zlib.crc32(f"{self.seed}:{env_step}".encode()))
            paint = rng.integers(0, 256, size=region.shape).astype(np.float32)
        else:
            color = OCCLUDER_COLOR if self.kind == "occluder" else self.color
            paint = np.broadcast_to(np.array(color, np.float32), region.shape)
        alpha = np.full(region.shape[:2] + (1,), self.opacity, np.float32)
        if self.kind == "disc":
            yy, xx = np.mgrid[cy0:cy1, cx0:cx1]
            inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= half_w ** 2
            alpha *= inside[..., None]
        frame[cy0:cy1, cx0:cx1] = np.round(region * (1 - alpha) + paint * alpha).astype(np.uint8)

    def to_dict(self) -> dict:
        return asdict(self)


PERTURBATION_KINDS = ("teleport_block", "teleport_agent", "recolor_block", "move_block")


@dataclass
class Perturbation:
    """A physical change applied to the world at env step `step`.

    teleport_block: value = (x, y, angle); teleport_agent: value = (x, y); recolor_block: value = RGB;
    move_block: value = (dx, dy, turn), the block's area centroid moves by (dx, dy) and the block turns by `turn`
    radians about it, from wherever it is, with no physics step (the agent's path is untouched).
    """

    kind: str
    step: int
    value: tuple

    def __post_init__(self):
        if self.kind not in PERTURBATION_KINDS:
            raise UserError(f"unknown perturbation {self.kind!r}; known: {', '.join(PERTURBATION_KINDS)}")
        self.value = tuple(float(v) for v in self.value)

    def to_dict(self) -> dict:
        return asdict(self)


def sliding_square(model_enter: int = 5, model_exit: int = 15, frameskip: int = 5) -> Artifact:
    """The published probe's artifact: a red (255, 50, 50) 20 px square, opacity 1, sliding
    horizontally across the frame, entering at model step 5 and leaving at model step 15."""
    half = 10.0
    return Artifact(kind="square", size=20.0, color=(255, 50, 50), opacity=1.0, motion="horizontal",
                    start=(half, REFERENCE_SIZE / 2), end=(REFERENCE_SIZE - half, REFERENCE_SIZE / 2),
                    enter=model_enter * frameskip, exit=model_exit * frameskip)
