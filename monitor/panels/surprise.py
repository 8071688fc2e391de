"""Live surprise: the last ~30 s, one line per action stream (the active one bold), a shaded band while an
artifact is in the frame, and the spikes of the active stream marked."""
from __future__ import annotations

import numpy as np
import pygame

from lewm.stream import ACTION_STREAMS
from monitor.live import CHART_STEPS, LiveData
from monitor.panels import style


class SurprisePanel:
    def __init__(self, rect: pygame.Rect):
        self.rect = rect
        self.top = 0.1

    def draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        inner = style.frame_panel(surface, self.rect, "surprise  1 - cos(predicted, seen), per action stream")
        plot = pygame.Rect(inner.x + 34, inner.y + 4, inner.w - 40, inner.h - 22)
        values = np.array(data.surprise) if data.surprise else np.zeros((0, 3))
        n = len(values)
        finite = values[np.isfinite(values)]
        target = style.nice_max(finite.max() * 1.1 if finite.size else 0.0)
        self.top = target if target > self.top else max(target, self.top * 0.995)  # slow to shrink
        x_of = lambda i: plot.x + plot.w * (i + CHART_STEPS - n) / (CHART_STEPS - 1)  # newest at the right
        y_of = lambda v: plot.bottom - plot.h * min(v, self.top) / self.top

        flags = list(data.artifact)  # the band: runs of steps with an artifact drawn
        i = 0
        while i < n:
            if flags[i]:
                j = i
                while j < n and flags[j]:
                    j += 1
                x0, x1 = x_of(i), x_of(j - 1) + 1
                pygame.draw.rect(surface, style.BAND, pygame.Rect(x0, plot.y, max(x1 - x0, 2), plot.h))
                i = j
            else:
                i += 1
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom - plot.h * frac
            pygame.draw.line(surface, style.BORDER, (plot.x, y), (plot.right, y))
            style.text(surface, f"{self.top * frac:.2f}", (plot.x - 4, y), 15, style.DIM, "midright")
        style.text(surface, "-30 s", (plot.x, plot.bottom + 2), 15, style.DIM)
        style.text(surface, "now", (plot.right, plot.bottom + 2), 15, style.DIM, "topright")

        order = [s for s in ACTION_STREAMS if s != active] + [active]  # the active one on top
        for name in order:
            k = ACTION_STREAMS.index(name)
            width = 3 if name == active else 1
            run: list = []
            for i in range(n):
                v = values[i, k]
                if np.isfinite(v):
                    run.append((x_of(i), y_of(v)))
                elif run:
                    self._line(surface, style.STREAM_COLORS[name], run, width)
                    run = []
            self._line(surface, style.STREAM_COLORS[name], run, width)
        k = ACTION_STREAMS.index(active)
        for i, spike in enumerate(data.spike):
            if spike and np.isfinite(values[i, k]):
                x, y = x_of(i), y_of(values[i, k])
                pygame.draw.polygon(surface, style.SPIKE, [(x, y - 6), (x - 4, y - 13), (x + 4, y - 13)])
        x = inner.right - 6
        for name in reversed(ACTION_STREAMS):
            r = style.text(surface, name, (x, inner.y - 18), 17, style.STREAM_COLORS[name], "topright")
            x = r.x - 10
        if n and np.isfinite(values[-1, k]):
            style.text(surface, f"{values[-1, k]:.3f}", (x - 6, inner.y - 18), 17, style.TEXT, "topright")

    @staticmethod
    def _line(surface, color, points, width) -> None:
        if len(points) >= 2:
            pygame.draw.lines(surface, color, False, points, width)
        elif len(points) == 1:
            pygame.draw.circle(surface, color, points[0], width)
