"""What the model expects: the look-ahead forecasts of the next model steps under the active action stream,
decoded into frames by the model's pixel decoder (large enough to read the T's pose), with the expert frame
nearest (cosine) to each forecast in a row below. Beside them, one comparison at a time: the plan's decoded end
frame next to the goal (plan mode), else "predicted" (the decoded one-step forecast) next to "seen" at the last
surprise spike. Without a decoder the nearest expert frames take the large row.

What it shows changes once per model step at most (the look-ahead is renewed every frameskip env steps), so the
panel is drawn anew only then and blitted from its last drawing in between."""
from __future__ import annotations

import numpy as np
import pygame

from monitor.live import LiveData
from monitor.panels import style

GAP = 8


class ExpectsPanel:
    def __init__(self, rect: pygame.Rect, count: int = 5):
        self.rect = rect
        self.count = count
        self._thumbs: dict[tuple[int, int], pygame.Surface] = {}
        self._drawn: pygame.Surface | None = None  # the panel as last drawn, and what it showed:
        self._shown: tuple = ()  # values, compared by equality
        self._pictures: tuple = ()  # LiveData's picture fields: replaced when they change, so compared by identity

    def layout(self) -> tuple[pygame.Rect, int, int, pygame.Rect]:
        """(inner rectangle, side of the large frames, side of the small ones, the comparison box)."""
        inner = pygame.Rect(self.rect.x + 8, self.rect.y + 24, self.rect.w - 16, self.rect.h - 30)
        small = max(16, inner.h * 2 // 5)  # the nearest expert frames: large enough to read the T's pose
        large = inner.h - small - 6
        side_box_w = 2 * large + 3 * GAP
        large = min(large, (inner.w - side_box_w - (self.count - 1) * GAP - 2 * GAP) // self.count)
        box = pygame.Rect(inner.right - side_box_w, inner.y, side_box_w, inner.h)
        return inner, large, small, box

    def draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        shown = (active, data.has_decoder, tuple(data.lookahead_thumbs))
        pictures = (data.bank, data.lookahead_frames, data.spike_view, data.plan_view)
        if (self._drawn is not None and shown == self._shown
                and all(a is b for a, b in zip(pictures, self._pictures, strict=True))):
            surface.blit(self._drawn, self.rect)
            return
        self._draw(surface, data, active)
        self._drawn = surface.subsurface(self.rect).copy()
        self._shown, self._pictures = shown, pictures

    def _draw(self, surface: pygame.Surface, data: LiveData, active: str) -> None:
        decoded = data.lookahead_frames
        what = "decoded forecasts, nearest expert frames below" if data.has_decoder else "nearest expert frames"
        style.frame_panel(surface, self.rect, f"what the model expects ({active} actions), next model steps: {what}")
        _, large, small, box = self.layout()
        frames = self.frame_rects()
        for i, (big, little) in enumerate(frames):
            expert = self._expert(data, i, large if decoded is None and not data.has_decoder else small)
            if data.has_decoder:
                self._frame(surface, big, None if decoded is None or i >= len(decoded) else decoded[i])
                self._blit(surface, little, expert)
            else:
                self._blit(surface, big, expert)
            pygame.draw.rect(surface, style.PANEL, pygame.Rect(big.x + 2, big.y + 2, 24, 16))
            style.text(surface, f"+{i + 1}", (big.x + 4, big.y + 3), 17, style.TEXT)
        if data.has_decoder:  # one caption for the row, after its last frame (between frames it would cover one)
            last = frames[-1][1]
            style.text(surface, "nearest expert frames", (last.right + GAP, last.y + 2), 15, style.DIM)
        self._comparison(surface, data, box)

    def frame_rects(self) -> list[tuple[pygame.Rect, pygame.Rect]]:
        """Per look-ahead step, (its large frame, the small nearest expert frame below it)."""
        inner, large, small, _ = self.layout()
        return [(pygame.Rect(x, inner.y, large, large), pygame.Rect(x, inner.y + large + 6, small, small))
                for x in (inner.x + i * (large + GAP) for i in range(self.count))]

    def _comparison(self, surface: pygame.Surface, data: LiveData, box: pygame.Rect) -> None:
        pygame.draw.line(surface, style.BORDER, (box.x - GAP, box.y), (box.x - GAP, box.bottom))
        side = (box.w - 3 * GAP) // 2
        left = pygame.Rect(box.x + GAP, box.y + 20, side, side)
        right = pygame.Rect(left.right + GAP, left.y, side, side)
        if data.plan_view is not None:
            title, labels, frames = "plan: where it ends vs the goal", ("plan end (decoded)", "goal"), data.plan_view
        elif data.spike_view is not None:
            step, predicted, seen = data.spike_view
            title, labels, frames = f"last surprise spike (env step {step})", ("predicted (decoded)", "seen"), \
                (predicted, seen)
        else:
            hint = "no surprise spike yet" if data.has_decoder else "no pixel decoder: lewm train-decoder"
            style.text(surface, hint, box.center, 17, style.DIM, "center")
            return
        style.text(surface, title, (box.x + GAP, box.y), 17)
        for rect, label, frame in zip((left, right), labels, frames):
            self._frame(surface, rect, frame)
            style.text(surface, label, (rect.x, rect.bottom + 2), 15, style.DIM)

    @staticmethod
    def _frame(surface: pygame.Surface, rect: pygame.Rect, frame: np.ndarray | None) -> None:
        pygame.draw.rect(surface, style.BG, rect)
        if frame is not None:
            img = style.frame_surface(frame)
            surface.blit(pygame.transform.scale(img, rect.size), rect)  # nearest: crisp model pixels
        pygame.draw.rect(surface, style.BORDER, rect, 1)

    @staticmethod
    def _blit(surface: pygame.Surface, rect: pygame.Rect, img: pygame.Surface | None) -> None:
        pygame.draw.rect(surface, style.BG, rect)
        if img is not None:
            surface.blit(img, rect)
        pygame.draw.rect(surface, style.BORDER, rect, 1)

    def _expert(self, data: LiveData, i: int, side: int) -> pygame.Surface | None:
        """The nearest expert frame to forecast i, scaled to `side` (cached per bank frame and size)."""
        if data.bank is None or i >= len(data.lookahead_thumbs):
            return None
        j = data.lookahead_thumbs[i]
        img = self._thumbs.get((j, side))
        if img is None:
            raw = style.frame_surface(data.bank.thumbs[j])
            img = pygame.transform.scale(raw, (side, side))
            if len(self._thumbs) > 256:
                self._thumbs.clear()
            self._thumbs[(j, side)] = img
        return img
