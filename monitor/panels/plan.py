"""The plan mode's drawing: over the scene, the candidate action sequences as the agent-target paths they imply (all
faint, shaded from blue to purple by the model's uncertainty about their forecasts where it serves one, the elites
brighter, the chosen plan bold), clipped to the scene; beside the scene, in a panel of its own (where the horizon
panel is otherwise), the goal with, where the model has a pixel decoder, the decoded end of the
chosen plan (what the plan expects to reach), the cost per CEM iteration and the plan's status, so nothing covers
the scene; in the PCA panel, the goal's embedding and the predicted end of the chosen plan."""
from __future__ import annotations

import numpy as np
import pygame

from monitor.panels import style
from monitor.panels.surprise import log_fraction
from monitor.plan_mode import PlanView
from scenes.pusht import WORLD_SIZE

SAMPLE = (120, 130, 160, 50)
SURE, UNSURE = np.array([70, 150, 230, 70]), np.array([150, 30, 190, 150])  # candidates by uncertainty
PATH_UNCERTAINTY_RANGE = (0.5, 500.0)  # summed over a plan's steps; log scale
ELITE = (255, 140, 0, 190)
CHOSEN = (200, 0, 120)
GOAL = (20, 150, 60)
THUMB = 128  # the goal and the plan's end: a 128 px model's frame at its own size


class PlanOverlay:
    def __init__(self, scene_image: pygame.Rect, side: pygame.Rect):
        self.image = scene_image  # where the scene panel draws the frame
        self.side = side  # the plan's own panel, beside the scene
        self._lines = pygame.Surface(scene_image.size, pygame.SRCALPHA)
        self._thumbs: dict[str, tuple] = {}  # "goal" / "end" -> (key of the frame, its scaled surface)

    def layout(self) -> tuple[pygame.Rect, pygame.Rect, pygame.Rect]:
        """Where the side panel's parts go: (the goal, the plan's decoded end, the elite-cost plot)."""
        goal = pygame.Rect(self.side.x + 10, self.side.y + 30, THUMB, THUMB)
        end = goal.move(THUMB + 14, 0)
        costs = pygame.Rect(end.right + 14, goal.y, self.side.right - end.right - 24, THUMB)
        return goal, end, costs

    def _px(self, points: np.ndarray) -> list[tuple[float, float]]:
        """World units -> pixels of the scene image (relative to its corner)."""
        s = self.image.w / WORLD_SIZE
        return [(float(x) * s, float(y) * s) for x, y in points]

    def draw(self, surface: pygame.Surface, view: PlanView | None, goal_frame: np.ndarray | None,
             status: str, end_frame: np.ndarray | None = None, live: bool = True) -> None:
        """end_frame: the chosen plan's predicted end, decoded (None: no decoder, or not decoded yet); live: the
        plan mode itself (G sets the goal), not a replay of it."""
        style.frame_panel(surface, self.side, "plan: the goal, where the plan ends, its elite cost")
        goal, end, costs = self.layout()
        if view is not None:
            self._draw_paths(surface, view)
            self._draw_costs(surface, view, costs)
        if goal_frame is not None:
            self._draw_thumb(surface, "goal", goal_frame, goal, GOAL, "goal (G: this frame)" if live else "goal")
        if end_frame is not None:
            self._draw_thumb(surface, "end", end_frame, end, CHOSEN, "plan end (decoded)")
        style.text(surface, status, (self.side.x + 10, self.side.bottom - 6), 18, CHOSEN, "bottomleft")

    def _draw_paths(self, surface: pygame.Surface, view: PlanView) -> None:
        clip = surface.get_clip()
        surface.set_clip(self.image)  # a path that leaves the scene is cut at its border
        try:
            self._paths(surface, view)
        finally:
            surface.set_clip(clip)

    def _paths(self, surface: pygame.Surface, view: PlanView) -> None:
        lines = self._lines
        lines.fill((0, 0, 0, 0))
        if view.paths is not None:
            colours = [SAMPLE] * len(view.paths)
            if view.uncertainty is not None:
                share = log_fraction(view.uncertainty, PATH_UNCERTAINTY_RANGE)[:, None]
                colours = [tuple(int(c) for c in row) for row in SURE + share * (UNSURE - SURE)]
            for path, colour in zip(view.paths, colours):
                pygame.draw.lines(lines, colour, False, self._px(path), 1)
            for i in view.elites if view.elites is not None else ():
                pygame.draw.lines(lines, ELITE, False, self._px(view.paths[i]), 1)
        surface.blit(lines, self.image)
        if view.uncertainty is not None:
            style.text(surface, "candidates: blue = model sure, purple = unsure", (self.image.x + 6, self.image.y + 6),
                       16, tuple(int(c) for c in UNSURE[:3]), "topleft", backing=style.PANEL)
        if view.chosen is not None:
            pts = [(x + self.image.x, y + self.image.y) for x, y in self._px(view.chosen)]
            pygame.draw.lines(surface, CHOSEN, False, pts, 4)
            for p in pts[5::5]:  # one dot per model step (action block)
                pygame.draw.circle(surface, CHOSEN, p, 5)
        x, y = self._px(view.start_xy[None])[0]
        pygame.draw.circle(surface, CHOSEN, (x + self.image.x, y + self.image.y), 6, 2)

    def _draw_thumb(self, surface: pygame.Surface, name: str, frame: np.ndarray, rect: pygame.Rect, colour,
                    label: str) -> None:
        # scaled once per new frame, not per window frame: the goal and the decoded end are replaced, never changed
        # in place (LiveData, PlanDriver), so the array itself (kept here, so never recycled) is the key
        if self._thumbs.get(name, (None,))[0] is not frame:
            img = style.frame_surface(frame)
            self._thumbs[name] = (frame, pygame.transform.smoothscale(img, rect.size))
        surface.blit(self._thumbs[name][1], rect)
        pygame.draw.rect(surface, colour, rect.inflate(4, 4), 2)
        style.text(surface, label, (rect.centerx, rect.bottom + 4), 16, colour, "midtop")

    def _draw_costs(self, surface: pygame.Surface, view: PlanView, box: pygame.Rect) -> None:
        costs = np.asarray(view.costs, np.float64)
        pygame.draw.rect(surface, style.BORDER, box, 1)
        style.text(surface, f"elite cost, plan {view.number}", (box.x + 4, box.y + 2), 16)
        plot = pygame.Rect(box.x + 6, box.y + 18, box.w - 12, box.h - 24)
        if len(costs) >= 2 and np.all(np.isfinite(costs)):
            lo, hi = costs.min(), costs.max()
            span = hi - lo if hi > lo else 1.0
            pts = [(plot.x + plot.w * i / (len(costs) - 1), plot.bottom - plot.h * (c - lo) / span)
                   for i, c in enumerate(costs)]
            pygame.draw.lines(surface, CHOSEN, False, pts, 2)
            style.text(surface, f"{costs[-1]:.3g}", (plot.right, plot.y), 15, style.DIM, "topright")


def draw_pca_marks(surface: pygame.Surface, to_px, goal_pca, view: PlanView | None) -> None:
    """The goal's embedding (green ring) and the predicted end of the chosen plan (magenta diamond) in the PCA panel;
    to_px: the panel's PCA -> pixel map."""
    if goal_pca is not None:
        x, y = to_px(goal_pca)
        pygame.draw.circle(surface, GOAL, (x, y), 8, 3)
    if view is not None and view.end_pca is not None:
        x, y = to_px(view.end_pca)
        pygame.draw.polygon(surface, CHOSEN, [(x, y - 7), (x + 7, y), (x, y + 7), (x - 7, y)])
