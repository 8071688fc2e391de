"""Horizon forecasts: live mean cosine distance against horizon h = 1..H per action stream, filled in as the
forecasts made h model steps ago meet their frames, with the copy-last baseline."""
from __future__ import annotations

import numpy as np
import pygame

from lewm.stream import ACTION_STREAMS
from monitor.live import LiveData
from monitor.panels import style


class HorizonPanel:
    def __init__(self, rect: pygame.Rect):
        self.rect = rect

    def draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        inner = style.frame_panel(surface, self.rect, "forecast error vs horizon (model steps)")
        plot = pygame.Rect(inner.x + 52, inner.y + 22, inner.w - 62, inner.h - 44)
        means, copy_last = data.horizon_means()
        H = means.shape[1]
        finite = np.concatenate([means[np.isfinite(means)], copy_last[np.isfinite(copy_last)]])
        top = style.nice_max(finite.max() * 1.05 if finite.size else 0.0, 0.1)
        x_of = lambda h: plot.x + plot.w * (h - 1) / max(H - 1, 1)
        y_of = lambda v: plot.bottom - plot.h * min(v, top) / top
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom - plot.h * frac
            pygame.draw.line(surface, style.BORDER, (plot.x, y), (plot.right, y))
            style.text(surface, f"{top * frac:.2f}", (plot.x - 4, y), 15, style.DIM, "midright")
        style.vertical_text(surface, "mean 1 - cos(forecast, seen)", (inner.x + 6, plot.centery))
        for h in range(1, H + 1):
            style.text(surface, str(h), (x_of(h), plot.bottom + 3), 15, style.DIM, "midtop")
        series = [("copy last", copy_last, style.COPY_LAST, 1)]
        series += [(n, means[k], style.STREAM_COLORS[n], 3 if n == active else 1)
                   for k, n in enumerate(ACTION_STREAMS) if n != active]
        series.append((active, means[ACTION_STREAMS.index(active)], style.STREAM_COLORS[active], 3))
        for _, values, color, width in series:
            pts = [(x_of(h + 1), y_of(v)) for h, v in enumerate(values) if np.isfinite(v)]
            if len(pts) >= 2:
                pygame.draw.lines(surface, color, False, pts, width)
            for p in pts:
                pygame.draw.circle(surface, color, p, 2 + (width > 1))
        x = inner.x
        for name, color in [(n, style.STREAM_COLORS[n]) for n in ACTION_STREAMS] + [("copy last", style.COPY_LAST)]:
            r = style.text(surface, name, (x, inner.y), 16, color)
            x = r.right + 10

