"""Live surprise: the last ~30 s, one line per action stream (the active one bold), a shaded band while an
artifact is in the frame, and the spikes of the active stream marked; where the model serves it, beside them its
uncertainty about each frame's forecast (a purple area, on its own axis at the right): surprise says the world did
what the model did not expect, uncertainty says where the model did not know what to expect. The uncertainty's part
the ensemble's members disagree on is drawn dense inside its area: what more data would teach the model (it rises
where the data were thin: lewm probe uncertainty), where the rest, the error the members expect of themselves, rises
at contact, where the next step is hard to call.

The axes never rescale with the data: surprise, 1 - cos, lies in [0, 2], and the chart shows it on a fixed log
scale from 0.001 to 2, so a model's quiet baseline (~0.003-0.08) and an artifact's spike (0.3-1) are both readable
and a spike never squashes the rest of the chart. The time axis spans the data (at least 10 s, at most 30 s) so a
short run fills the chart instead of its right end. Uncertainty (squared latent distance: the ensemble's
disagreement plus its expected error, lewm/ensemble/model.py) has its own fixed log axis, UNCERTAINTY_RANGE.
"""
from __future__ import annotations

import numpy as np
import pygame

from lewm.stream import ACTION_STREAMS
from monitor.live import CHART_STEPS, LiveData
from monitor.panels import style

SURPRISE_RANGE = (1e-3, 2.0)  # the y axis, log scale; values below the floor sit on it
SURPRISE_TICKS = (0.001, 0.01, 0.1, 1.0)
MIN_SPAN = 100  # env steps: the time axis spans at least 10 s
STEPS_PER_SECOND = 10  # PushT's control rate: env steps per second of simulated time
TICK_SECONDS = 5
UNCERTAINTY_RANGE = (0.1, 100.0)  # the right y axis, log scale
UNCERTAINTY_TICKS = (0.1, 1.0, 10.0, 100.0)
UNCERTAINTY_ALPHA = 45  # of the area under the uncertainty curve
DISAGREEMENT_ALPHA = 150  # of the area under its disagreement part


def log_fraction(values, value_range: tuple[float, float]) -> np.ndarray:
    """Height (0 = bottom, 1 = top) of values on a fixed log axis over value_range; NaN stays NaN."""
    lo, hi = np.log10(value_range)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.maximum(np.asarray(values, np.float64), value_range[0]))
    return np.clip((logs - lo) / (hi - lo), 0.0, 1.0)


def surprise_fraction(values) -> np.ndarray:
    """Height (0 = bottom, 1 = top of the chart) of surprise values on the fixed log axis; NaN stays NaN."""
    return log_fraction(values, SURPRISE_RANGE)


def time_span(n: int) -> int:
    """Env steps the time axis spans when `n` steps of data are shown: the data, within [10 s, 30 s]."""
    return int(np.clip(n, MIN_SPAN, CHART_STEPS))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where mask is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


class SurprisePanel:
    def __init__(self, rect: pygame.Rect):
        self.rect = rect

    def draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        inner = style.frame_panel(surface, self.rect, "surprise  1 - cos(predicted, seen)")
        parts = np.array(data.uncertainty, np.float64).reshape(-1, 2)  # (disagreement, noise) per step
        unsure, disagreement = parts.sum(axis=1), parts[:, 0]
        right = 44 if np.isfinite(unsure).any() else 6  # room for the uncertainty axis where there is one
        plot = pygame.Rect(inner.x + 52, inner.y + 4, inner.w - 52 - right, inner.h - 22)
        values = np.array(data.surprise, np.float64).reshape(-1, len(ACTION_STREAMS))
        n = len(values)
        span = time_span(n)
        xs = plot.x + plot.w * (np.arange(n) + span - n) / (span - 1)  # newest at the right
        ys = plot.bottom - plot.h * surprise_fraction(values)

        for i, j in _runs(np.array(data.artifact, bool)):  # the band: runs of steps with an artifact drawn
            x0, x1 = xs[i], xs[j - 1] + 1
            pygame.draw.rect(surface, style.BAND, pygame.Rect(x0, plot.y, max(x1 - x0, 2), plot.h))
        for v in SURPRISE_TICKS:
            y = plot.bottom - plot.h * float(surprise_fraction(v))
            pygame.draw.line(surface, style.BORDER, (plot.x, y), (plot.right, y))
            style.text(surface, f"{v:g}", (plot.x - 4, y), 15, style.DIM, "midright")
        style.vertical_text(surface, "1 - cos (log scale)", (inner.x + 6, plot.centery))
        for seconds in range(0, span // STEPS_PER_SECOND + 1, TICK_SECONDS):
            x = plot.right - plot.w * seconds * STEPS_PER_SECOND / (span - 1)
            label, anchor = ("now", "topright") if seconds == 0 else (f"-{seconds} s", "midtop")
            if x >= plot.x - 2:  # the oldest tick may sit a pixel left of the first step
                pygame.draw.line(surface, style.BORDER, (x, plot.bottom), (x, plot.bottom + 3))
                style.text(surface, label, (x, plot.bottom + 3), 15, style.DIM, anchor)

        if right > 6:
            self._draw_uncertainty(surface, plot, xs, unsure, disagreement)
        order = [s for s in ACTION_STREAMS if s != active] + [active]  # the active one on top
        for name in order:
            k = ACTION_STREAMS.index(name)
            width = 3 if name == active else 1
            for i, j in _runs(np.isfinite(values[:, k])):
                points = np.column_stack([xs[i:j], ys[i:j, k]]).tolist()
                self._line(surface, style.STREAM_COLORS[name], points, width)
        k = ACTION_STREAMS.index(active)
        spikes = np.array(data.spike, bool) & np.isfinite(values[:, k])
        for i in np.flatnonzero(spikes):
            x, y = xs[i], ys[i, k]
            pygame.draw.polygon(surface, style.SPIKE, [(x, y - 6), (x - 4, y - 13), (x + 4, y - 13)])
        x = inner.right - 6
        for name in reversed(ACTION_STREAMS):
            r = style.text(surface, name, (x, inner.y - 18), 17, style.STREAM_COLORS[name], "topright")
            x = r.x - 10
        if n and np.isfinite(values[-1, k]):
            r = style.text(surface, f"{active} now: {values[-1, k]:.3f}", (x - 12, inner.y - 18), 17, style.TEXT,
                           "topright")
            x = r.x
        if len(unsure) and np.isfinite(unsure[-1]):
            style.text(surface, f"uncertainty now: {unsure[-1]:.2f} (disagreement {disagreement[-1]:.2f})",
                       (x - 12, inner.y - 18), 17, style.UNCERTAINTY, "topright")

    def _draw_uncertainty(self, surface: pygame.Surface, plot: pygame.Rect, xs: np.ndarray, unsure: np.ndarray,
                          disagreement: np.ndarray) -> None:
        """The uncertainty as a translucent purple area under its curve, its disagreement part dense inside it
        (both under the surprise lines, which stay readable through them), and their axis at the plot's right
        edge."""
        for v in UNCERTAINTY_TICKS:
            y = plot.bottom - plot.h * float(log_fraction(v, UNCERTAINTY_RANGE))
            pygame.draw.line(surface, style.UNCERTAINTY, (plot.right, y), (plot.right + 4, y))
            style.text(surface, f"{v:g}", (plot.right + 6, y), 15, style.UNCERTAINTY, "midleft")
        pygame.draw.line(surface, style.UNCERTAINTY, (plot.right, plot.y), (plot.right, plot.bottom))
        for values, alpha in ((unsure, UNCERTAINTY_ALPHA), (disagreement, DISAGREEMENT_ALPHA)):
            ys = plot.h * (1 - log_fraction(values, UNCERTAINTY_RANGE))  # in the plot's own coordinates
            layer = pygame.Surface(plot.size, pygame.SRCALPHA)
            for i, j in _runs(np.isfinite(values)):
                points = np.column_stack([xs[i:j] - plot.x, ys[i:j]]).tolist()
                if len(points) == 1:
                    pygame.draw.circle(layer, (*style.UNCERTAINTY, alpha), points[0], 2)
                    continue
                outline = [(points[0][0], plot.h)] + points + [(points[-1][0], plot.h)]
                pygame.draw.polygon(layer, (*style.UNCERTAINTY, alpha), outline)
                if values is unsure:
                    pygame.draw.lines(layer, style.UNCERTAINTY, False, points, 1)
            surface.blit(layer, plot.topleft)

    @staticmethod
    def _line(surface, color, points, width) -> None:
        if len(points) >= 2:
            pygame.draw.lines(surface, color, False, points, width)
        elif len(points) == 1:
            pygame.draw.circle(surface, color, points[0], width)
