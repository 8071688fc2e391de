"""Colours, fonts and the small drawing helpers the panels share."""
from __future__ import annotations

import functools

import numpy as np
import pygame

BG = (246, 246, 248)
PANEL = (255, 255, 255)
BORDER = (200, 200, 208)
TEXT = (30, 30, 40)
DIM = (120, 120, 130)
STREAM_COLORS = {"real": (31, 119, 180), "shuffled": (255, 127, 14), "zero": (44, 160, 44)}
COPY_LAST = (90, 90, 90)
UNCERTAINTY = (148, 60, 190)  # the model's uncertainty about its forecast (surprise panel, Rerun)
BAND = (255, 225, 225)
SPIKE = (214, 39, 40)
SELECT = (255, 200, 0)
HOVER = (0, 200, 255)

# plasma, 6 anchors (matplotlib's), interpolated: time colouring of the PCA path
_PLASMA = np.array([(13, 8, 135), (106, 0, 168), (177, 42, 144), (225, 100, 98), (252, 166, 54), (240, 249, 33)],
                   np.float64)


def plasma(t: float) -> tuple[int, int, int]:
    t = float(np.clip(t, 0.0, 1.0)) * (len(_PLASMA) - 1)
    i = min(int(t), len(_PLASMA) - 2)
    c = _PLASMA[i] + (t - i) * (_PLASMA[i + 1] - _PLASMA[i])
    return int(c[0]), int(c[1]), int(c[2])


@functools.lru_cache(maxsize=8)
def font(size: int) -> pygame.font.Font:
    if not pygame.font.get_init():
        pygame.font.init()
    return pygame.font.Font(None, size)


@functools.lru_cache(maxsize=512)
def _text(s: str, size: int, color: tuple) -> pygame.Surface:
    return font(size).render(s, True, color)


def text(surface: pygame.Surface, s: str, pos, size: int = 18, color=TEXT, anchor: str = "topleft",
         backing=None) -> pygame.Rect:
    """Draw a (cached) text, on a filled box of colour `backing` where given (text over drawings); returns its
    rectangle."""
    img = _text(s, size, tuple(color))
    rect = img.get_rect(**{anchor: pos})
    if backing is not None:
        surface.fill(backing, rect.inflate(6, 2))
    surface.blit(img, rect)
    return rect


@functools.lru_cache(maxsize=32)
def _vertical(s: str, size: int, color: tuple) -> pygame.Surface:
    return pygame.transform.rotate(_text(s, size, color), 90)


def vertical_text(surface: pygame.Surface, s: str, center, size: int = 15, color=DIM) -> pygame.Rect:
    """A y-axis caption: the text turned to read upwards, centred on `center`."""
    img = _vertical(s, size, tuple(color))
    rect = img.get_rect(center=center)
    surface.blit(img, rect)
    return rect


def frame_surface(frame: np.ndarray) -> pygame.Surface:
    """An RGB uint8 (H, W, 3) frame as a surface, read from the array's own memory (no transposed copy); use it
    before the array can change (scale or blit it at once)."""
    frame = np.ascontiguousarray(frame, np.uint8)
    return pygame.image.frombuffer(frame, (frame.shape[1], frame.shape[0]), "RGB")


def frame_panel(surface: pygame.Surface, rect: pygame.Rect, title: str) -> pygame.Rect:
    """A white panel with a title; returns the inner rectangle below the title."""
    pygame.draw.rect(surface, PANEL, rect)
    pygame.draw.rect(surface, BORDER, rect, 1)
    text(surface, title, (rect.x + 8, rect.y + 5), 20)
    return pygame.Rect(rect.x + 8, rect.y + 24, rect.w - 16, rect.h - 30)


def nice_max(value: float, floor: float = 0.05) -> float:
    """A rounded axis top >= value."""
    value = max(float(value) if np.isfinite(value) else 0.0, floor)
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0):
        if value <= step:
            return step
    return float(np.ceil(value))
