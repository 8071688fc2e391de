"""The scene: the model's observation frame scaled up crisply (nearest), with hover and selection outlines.

It also maps window pixels to the 224 px reference frame of artifacts and to world units for the agent.
"""
from __future__ import annotations

import numpy as np
import pygame

from monitor.panels import style
from scenes.artifacts import REFERENCE_SIZE
from scenes.pusht import WORLD_SIZE


class ScenePanel:
    def __init__(self, rect: pygame.Rect, image_px: int = 512):
        self.rect = rect
        self.image = pygame.Rect(rect.x + (rect.w - image_px) // 2, rect.y + 26, image_px, image_px)

    # ---------------------------------------------------------------- coordinates
    def contains(self, pos) -> bool:
        return self.image.collidepoint(pos)

    def to_reference(self, pos) -> tuple[float, float]:
        """Window pixel -> 224 px reference frame (artifacts)."""
        return ((pos[0] - self.image.x) * REFERENCE_SIZE / self.image.w,
                (pos[1] - self.image.y) * REFERENCE_SIZE / self.image.h)

    def to_world(self, pos) -> tuple[float, float]:
        """Window pixel -> world units (the agent's target)."""
        return ((pos[0] - self.image.x) * WORLD_SIZE / self.image.w,
                (pos[1] - self.image.y) * WORLD_SIZE / self.image.h)

    def from_reference(self, x: float, y: float) -> tuple[float, float]:
        return self.image.x + x * self.image.w / REFERENCE_SIZE, self.image.y + y * self.image.h / REFERENCE_SIZE

    # ---------------------------------------------------------------- drawing
    def draw(self, surface: pygame.Surface, frame: np.ndarray, title: str, env_step: int,
             hover=None, selected=None) -> None:
        style.frame_panel(surface, self.rect, title)
        img = style.frame_surface(frame)
        surface.blit(pygame.transform.scale(img, self.image.size), self.image)  # nearest: crisp model pixels
        pygame.draw.rect(surface, style.BORDER, self.image, 1)
        for artifact, color in ((hover, style.HOVER), (selected, style.SELECT)):
            if artifact is None or not artifact.active(env_step):
                continue
            cx, cy = artifact.center(env_step)
            h = artifact.size * (3 if artifact.kind == "occluder" else 1)
            x0, y0 = self.from_reference(cx - artifact.size / 2, cy - h / 2)
            x1, y1 = self.from_reference(cx + artifact.size / 2, cy + h / 2)
            pygame.draw.rect(surface, color, pygame.Rect(x0 - 2, y0 - 2, x1 - x0 + 4, y1 - y0 + 4), 2)
