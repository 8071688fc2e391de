"""The status line, and the help overlay generated from the one key table (monitor/controls.py)."""
from __future__ import annotations

import pygame

from monitor import controls
from monitor.panels import style

STATUS_FONT = 22  # large enough to stay legible in an H.264 recording of the window
HELP_BG = (20, 20, 30, 230)


class StatusLine:
    def __init__(self, rect: pygame.Rect):
        self.rect = rect

    def draw(self, surface: pygame.Surface, fields: list[tuple[str, tuple]]) -> None:
        pygame.draw.rect(surface, (232, 232, 238), self.rect)
        x = self.rect.x + 8
        for s, color in fields:
            r = style.text(surface, s, (x, self.rect.centery), STATUS_FONT, color, "midleft")
            x = r.right + 14


def wrap(text: str, font: pygame.font.Font, width: int) -> list[str]:
    """`text` in lines no wider than `width` pixels, broken at spaces."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.size(f"{lines[-1]} {word}")[0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


class HelpOverlay:
    """Every key and mouse gesture, sized to the text and kept inside the window (long lines wrap, and the font
    shrinks if the rows would not fit the window's height)."""

    MARGIN = 12  # window pixels kept free around the overlay
    PAD = 20  # overlay pixels around its text

    def __init__(self, size: tuple[int, int]):
        self.size = size
        self._surface: pygame.Surface | None = None

    def draw(self, surface: pygame.Surface) -> None:
        if self._surface is None:
            self._surface = self.render()
        surface.blit(self._surface, self._surface.get_rect(center=(self.size[0] // 2, self.size[1] // 2)))

    def render(self) -> pygame.Surface:
        rows = controls.help_lines() + [(f"mouse: {k}", w) for k, w in controls.MOUSE]
        max_w, max_h = self.size[0] - 2 * self.MARGIN, self.size[1] - 2 * self.MARGIN
        for size in range(19, 11, -1):
            placed, w, h = self._layout(rows, size, max_w)
            if h <= max_h:
                break
        s = pygame.Surface((w, h), pygame.SRCALPHA)
        s.fill(HELP_BG)
        for text, pos, text_size, color in placed:
            style.text(s, text, pos, text_size, color)
        return s

    def _layout(self, rows, size: int, max_w: int):
        """(texts to draw as (text, (x, y), size, colour), width, height) at font `size`."""
        font, line, title = style.font(size), size + 2, size + 5
        keys_w = max(font.size(keys)[0] for keys, _ in rows)
        x_what = self.PAD + keys_w + 16
        wrap_w = max_w - x_what - self.PAD
        placed = [("keys (H or F1 closes this)", (self.PAD, 14), title, (255, 255, 255))]
        y, widest = 14 + title + 10, 0
        for keys, what in rows:
            placed.append((keys, (self.PAD, y), size, (255, 220, 120)))
            for part in wrap(what, font, wrap_w):
                placed.append((part, (x_what, y), size, (235, 235, 235)))
                widest = max(widest, font.size(part)[0])
                y += line
        return placed, x_what + widest + self.PAD, y + self.PAD - (line - size)
