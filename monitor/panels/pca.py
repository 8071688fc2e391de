"""The PCA trace: the reference cloud of expert episodes in grey (the PCA is fitted once and frozen, so the
axes never flip; the cloud is drawn once), the live path coloured by time (plasma, old to new), and the
forecast points ahead of it under the active action stream."""
from __future__ import annotations

import numpy as np
import pygame

from monitor.live import LiveData
from monitor.panels import style


class PCAPanel:
    def __init__(self, rect: pygame.Rect, bank=None):
        self.rect = rect
        self.plot = pygame.Rect(rect.x + 10, rect.y + 28, rect.w - 20, rect.h - 38)
        self.bank = bank
        self._background: pygame.Surface | None = None
        if bank is not None:
            lo, hi = bank.cloud.min(0), bank.cloud.max(0)
            pad = (hi - lo) * 0.15 + 1e-6
            self.lo, self.hi = lo - pad, hi + pad
        else:
            self.lo, self.hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])

    def to_px(self, p: np.ndarray) -> tuple[float, float]:
        f = np.clip((np.asarray(p, np.float64) - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        return self.plot.x + f[0] * self.plot.w, self.plot.bottom - f[1] * self.plot.h

    def to_px_many(self, points: np.ndarray) -> list[list[float]]:
        """to_px of each row of `points` (N, 2), at once."""
        f = np.clip((np.asarray(points, np.float64) - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        return np.column_stack([self.plot.x + f[:, 0] * self.plot.w, self.plot.bottom - f[:, 1] * self.plot.h]).tolist()

    def _prerender(self, size) -> pygame.Surface:
        bg = pygame.Surface(size)
        bg.fill(style.BG)
        bg.fill(style.PANEL, self.rect)
        pygame.draw.rect(bg, style.BORDER, self.rect, 1)
        style.text(bg, "latent PCA: experts (grey), live path, forecast", (self.rect.x + 8, self.rect.y + 5), 20)
        if self.bank is not None:
            for p in self.bank.cloud:
                x, y = self.to_px(p)
                pygame.draw.circle(bg, (200, 200, 200), (x, y), 2)
        return bg.subsurface(self.rect).copy()

    def draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        if self._background is None:
            self._background = self._prerender(surface.get_size())
        surface.blit(self._background, self.rect)
        path = list(data.path)
        n = len(path)
        if n >= 2:
            pts = self.to_px_many(np.array(path))
            chunk = 8  # colour changes every few segments: cheap and smooth enough
            for i in range(0, n - 1, chunk):
                seg = pts[i:i + chunk + 1]
                if len(seg) >= 2:
                    pygame.draw.lines(surface, style.plasma(i / (n - 1)), False, seg, 2)
        if n:
            pygame.draw.circle(surface, style.plasma(1.0), self.to_px(path[-1]), 5)
            pygame.draw.circle(surface, style.TEXT, self.to_px(path[-1]), 5, 1)
        if data.lookahead_pca is not None and n:
            color = style.STREAM_COLORS[active]
            prev = self.to_px(path[-1])
            for p in data.lookahead_pca:
                q = self.to_px(p)
                pygame.draw.line(surface, color, prev, q, 1)
                pygame.draw.circle(surface, color, q, 4, 2)
                prev = q
