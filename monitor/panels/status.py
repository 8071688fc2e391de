"""The status line, and the help overlay generated from the one key table (monitor/controls.py)."""
from __future__ import annotations

import pygame

from monitor import controls
from monitor.panels import style


class StatusLine:
    def __init__(self, rect: pygame.Rect):
        self.rect = rect

    def draw(self, surface: pygame.Surface, fields: list[tuple[str, tuple]]) -> None:
        pygame.draw.rect(surface, (232, 232, 238), self.rect)
        x = self.rect.x + 8
        for s, color in fields:
            r = style.text(surface, s, (x, self.rect.centery), 18, color, "midleft")
            x = r.right + 14


class HelpOverlay:
    def __init__(self, size: tuple[int, int]):
        self.size = size
        self._surface: pygame.Surface | None = None

    def draw(self, surface: pygame.Surface) -> None:
        if self._surface is None:
            self._surface = self._render()
        surface.blit(self._surface, self._surface.get_rect(center=(self.size[0] // 2, self.size[1] // 2)))

    def _render(self) -> pygame.Surface:
        rows = controls.help_lines() + [(f"mouse: {k}", w) for k, w in controls.MOUSE]
        w, line = 1000, 21
        h = 60 + line * len(rows)
        s = pygame.Surface((w, h), pygame.SRCALPHA)
        s.fill((20, 20, 30, 230))
        style.text(s, "keys (H or F1 closes this)", (20, 14), 24, (255, 255, 255))
        for i, (keys, what) in enumerate(rows):
            y = 48 + i * line
            style.text(s, keys, (20, y), 19, (255, 220, 120))
            style.text(s, what, (230, y), 19, (235, 235, 235))
        return s
