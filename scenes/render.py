"""The one drawing function: a PushT state (plus artifacts) -> an RGB uint8 frame of any size.

Data collection, the probes and the monitor all draw through draw_state, so the model sees the
same pixels everywhere. The reference look (gym-pusht and stable-worldmodel): a 512 x 512 canvas, white background,
light-grey walls, the goal T in LightGreen under everything, the block in LightSlateGray brightened
1.2x with a 2 px LightSlateGray outline around each of its two boxes, and the agent as a RoyalBlue
disc with a brighter inner disc; then the canvas is resized to the observation size (OpenCV, area
averaging).
"""
from __future__ import annotations

import math
import os
import sys
import threading

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import cv2
import numpy as np
import pygame

from scenes.pusht import AGENT_RADIUS, GOAL_POSE, T_BOXES, WALL_RADIUS, WALLS, WORLD_SIZE

cv2.setNumThreads(1)  # one small resize per frame: threads only add overhead beside the model's

WHITE = (255, 255, 255)
LIGHT_GRAY = (211, 211, 211)
LIGHT_GREEN = (144, 238, 144)
LIGHT_SLATE_GRAY = (119, 136, 153)
ROYAL_BLUE = (65, 105, 225)


def brighten(color, factor: float = 1.2) -> tuple[int, int, int]:
    return tuple(int(min(255.0, c * factor)) for c in color)


def _t_boxes_world(x: float, y: float, angle: float) -> list[list[tuple[float, float]]]:
    c, s = math.cos(angle), math.sin(angle)
    return [[(x + c * px - s * py, y + s * px + c * py) for px, py in box] for box in T_BOXES]


def _fat_outline(canvas: pygame.Surface, color, points, radius: int) -> None:
    """Closed outline of `radius` on each side of the edges, with round joints (pymunk's fat segments)."""
    pygame.draw.lines(canvas, color, True, points, 2 * radius)
    for p in points:
        pygame.draw.circle(canvas, color, p, radius)


def _fat_segment(canvas: pygame.Surface, color, segment, radius: int) -> None:
    """One segment of `radius` on each side, with round ends (a pymunk fat segment)."""
    pygame.draw.line(canvas, color, segment[0], segment[1], 2 * radius)
    for p in segment:
        pygame.draw.circle(canvas, color, p, radius)


_local = threading.local()  # one canvas per thread: a training run draws its next batch beside its main thread
XRGB_MASKS = (0xFF0000, 0xFF00, 0xFF, 0)  # 32-bit XRGB: the canvas's usual pixel layout


def draw_canvas(state: np.ndarray, block_color=None) -> pygame.Surface:
    """Draw the scene on this thread's 512 x 512 canvas (reused between calls: no allocation)."""
    canvas = getattr(_local, "canvas", None)
    if canvas is None:
        canvas = _local.canvas = pygame.Surface((WORLD_SIZE, WORLD_SIZE))
    block_color = block_color or LIGHT_SLATE_GRAY
    canvas.fill(WHITE)
    for box in _t_boxes_world(*GOAL_POSE):
        pygame.draw.polygon(canvas, LIGHT_GREEN, box)
    for wall in WALLS:
        _fat_segment(canvas, LIGHT_GRAY, wall, WALL_RADIUS)
    for box in _t_boxes_world(state[2], state[3], state[4]):
        pygame.draw.polygon(canvas, brighten(block_color), box)
        _fat_outline(canvas, block_color, box, 2)
    agent = (float(state[0]), float(state[1]))
    pygame.draw.circle(canvas, ROYAL_BLUE, agent, AGENT_RADIUS)
    pygame.draw.circle(canvas, brighten(ROYAL_BLUE), agent, AGENT_RADIUS - 4)
    return canvas


def _canvas_rgb(canvas: pygame.Surface, size: int) -> np.ndarray:
    """The canvas as an RGB (size, size, 3) frame. Area averaging: exact for flat colours (white stays 255), no
    aliasing of the 4 px agent at 64 px. The canvas's own 32-bit pixels are resized where they are (each channel
    is averaged on its own, so the result is the same as resizing an RGB copy, without making one)."""
    layout = (canvas.get_bitsize(), canvas.get_masks(), canvas.get_pitch(), sys.byteorder)
    if layout == (32, XRGB_MASKS, 4 * WORLD_SIZE, "little"):
        view = canvas.get_buffer()  # its bytes, row by row: B, G, R, unused
        bgrx = np.frombuffer(view, np.uint8).reshape(WORLD_SIZE, WORLD_SIZE, 4)
        small = cv2.resize(bgrx, (size, size), interpolation=cv2.INTER_AREA) if size != WORLD_SIZE else bgrx
        del bgrx, view  # unlocks the canvas
        return np.ascontiguousarray(small[:, :, 2::-1])
    frame = np.frombuffer(pygame.image.tobytes(canvas, "RGB"), np.uint8).reshape(WORLD_SIZE, WORLD_SIZE, 3)
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) if size != WORLD_SIZE else frame.copy()


def draw_state(state: np.ndarray, size: int, artifacts=(), env_step: int = 0,
               block_color=None) -> np.ndarray:
    """An RGB uint8 (size, size, 3) frame of `state`, with any active artifacts drawn over it.

    `artifacts` are scenes.artifacts.Artifact objects, placed at `env_step`; sizes are given at the
    224 px reference scale and scaled to `size`.
    """
    frame = _canvas_rgb(draw_canvas(state, block_color), size)
    for artifact in artifacts:
        artifact.draw(frame, env_step)
    return frame


def draw_states(states: np.ndarray, size: int) -> np.ndarray:
    """Frames of many states (..., 7) -> (..., size, size, 3) uint8, each drawn by draw_state."""
    states = np.asarray(states)
    out = np.empty((*states.shape[:-1], size, size, 3), np.uint8)
    flat = out.reshape(-1, size, size, 3)
    for i, state in enumerate(states.reshape(-1, states.shape[-1])):
        flat[i] = draw_state(state, size)
    return out
