"""Horizon forecasts: live mean cosine distance against horizon h = 1..H per action stream, filled in as the
forecasts made h model steps ago meet their frames, with the copy-last baseline; and the strip of "what the
model expects": for the next few model steps, the reference frame nearest to the look-ahead prediction."""
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


class ExpectsPanel:
    """The look-ahead strip: nearest expert frame to the prediction of each of the next steps."""

    def __init__(self, rect: pygame.Rect, count: int = 5):
        self.rect = rect
        self.count = count
        self._cache: dict[int, pygame.Surface] = {}

    def draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        inner = style.frame_panel(surface, self.rect, f"what the model expects ({active} actions): nearest expert frames")
        side = min(inner.h - 16, (inner.w - (self.count - 1) * 8) // self.count)
        for i in range(self.count):
            box = pygame.Rect(inner.x + i * (side + 8), inner.y + 2, side, side)
            pygame.draw.rect(surface, style.BG, box)
            if data.bank is not None and i < len(data.lookahead_thumbs):
                j = data.lookahead_thumbs[i]
                surface.blit(self._thumb(data.bank, j, side), box)
            pygame.draw.rect(surface, style.BORDER, box, 1)
            style.text(surface, f"+{i + 1}", (box.x + 3, box.bottom + 1), 15, style.DIM)

    def _thumb(self, bank, j: int, side: int) -> pygame.Surface:
        img = self._cache.get(j)
        if img is None or img.get_width() != side:
            raw = pygame.surfarray.make_surface(np.ascontiguousarray(bank.thumbs[j].transpose(1, 0, 2)))
            img = pygame.transform.scale(raw, (side, side))
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[j] = img
        return img
