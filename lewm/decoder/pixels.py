"""Reading decoded pictures (numpy and OpenCV only): PSNR, SSIM, and where the agent and the block are.

Positions are read from colour: every pixel takes the nearest colour of the renderer's palette (scenes/render.py),
and counts as agent or block only when that colour is the agent's or the block's and lies within PALETTE_RADIUS of
it (so a blurred or blended pixel counts as neither); a blob over three times the object's area is not read. The
agent's and block's positions are the centroids of their pixels; the block's orientation is the axis of its
pixels' second moments (defined modulo 180 degrees). The same reading of the true frames gives the floor of the
method, and the true state gives the reference (state_positions).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from scenes.pusht import AGENT_RADIUS, T_BOXES, WORLD_SIZE

AGENT_COLOURS = (3, 4)
BLOCK_COLOURS = (5, 6)
PALETTE_RADIUS = 40.0  # RGB distance within which a pixel takes its nearest palette colour


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """A decoder's output in [0, 1] -> uint8 frames (rounded)."""
    return np.clip(np.asarray(frames, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def palette() -> np.ndarray:
    """The renderer's colours (7, 3): white, light grey, light green, the agent's two blues, the block's two greys."""
    from scenes.render import LIGHT_GRAY, LIGHT_GREEN, LIGHT_SLATE_GRAY, ROYAL_BLUE, WHITE, brighten

    return np.array([WHITE, LIGHT_GRAY, LIGHT_GREEN, ROYAL_BLUE, brighten(ROYAL_BLUE), LIGHT_SLATE_GRAY,
                     brighten(LIGHT_SLATE_GRAY)], np.float32)


def psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray | float:
    """PSNR in dB of uint8-range images: one value per frame for (N, H, W, 3), or a float for one frame."""
    single = pred.ndim == 3
    a = np.asarray(pred, np.float64).reshape((1,) * single + pred.shape)
    b = np.asarray(target, np.float64).reshape(a.shape)
    err = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    out = 10 * np.log10(255.0 ** 2 / np.maximum(err, 1e-10))
    return float(out[0]) if single else out


def ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray | float:
    """SSIM (Wang et al. 2004: 11 x 11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255), averaged over
    the pixels and the three channels; per frame for (N, H, W, 3), a float for one frame."""
    if pred.ndim == 4:
        return np.array([ssim(p, t) for p, t in zip(pred, target)])
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = np.asarray(pred, np.float64), np.asarray(target, np.float64)

    def blur(img):
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def colour_labels(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., H, W) palette index of each pixel, -1 where none is within PALETTE_RADIUS."""
    px = np.asarray(frames, np.float32)[..., None, :]
    dist = np.linalg.norm(px - palette(), axis=-1)
    labels = dist.argmin(-1)
    return np.where(dist.min(-1) <= PALETTE_RADIUS, labels, -1)


def read_positions(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame of (N, H, W, 3) uint8: agent centroid (N, 2), block centroid (N, 2) (x, y in pixels, pixel centres
    at i + 0.5; NaN where no pixel has the colour) and block axis angle (N,) in radians, modulo pi."""
    labels = colour_labels(frames)
    n, h, w = labels.shape
    scale = (w / WORLD_SIZE) ** 2
    # a colour blob far larger than the object (a blur or a flat grey picture) is not read as the object
    largest = {"agent": 3 * math.pi * AGENT_RADIUS ** 2 * scale, "block": 3 * _T_AREA * scale}
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    out = {"agent": np.full((n, 2), np.nan), "block": np.full((n, 2), np.nan), "block_axis": np.full(n, np.nan)}
    for i in range(n):
        for name, colours in (("agent", AGENT_COLOURS), ("block", BLOCK_COLOURS)):
            mask = np.isin(labels[i], colours)
            if not 2 <= mask.sum() <= largest[name]:
                continue
            x, y = xs[mask], ys[mask]
            out[name][i] = x.mean(), y.mean()
            if name == "block":
                dx, dy = x - x.mean(), y - y.mean()
                out["block_axis"][i] = _axis(np.mean(dx * dx), np.mean(dy * dy), np.mean(dx * dy))
    return out


def _axis(mu20: float, mu02: float, mu11: float) -> float:
    """Angle of the principal axis of second central moments, in [0, pi)."""
    return (0.5 * math.atan2(2 * mu11, mu20 - mu02)) % math.pi


def _t_moments() -> tuple[float, np.ndarray, np.ndarray]:
    """The T's area, centroid and second central moments (mu20, mu02, mu11) in body coordinates (exact, from its
    two boxes, which do not overlap)."""
    area, first, second = 0.0, np.zeros(2), np.zeros(3)
    for box in T_BOXES:
        xs, ys = [p[0] for p in box], [p[1] for p in box]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        a = (x1 - x0) * (y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        area += a
        first += a * np.array([cx, cy])
        second += a * np.array([cx * cx + (x1 - x0) ** 2 / 12, cy * cy + (y1 - y0) ** 2 / 12, cx * cy])
    centroid = first / area
    raw = second / area
    central = raw - np.array([centroid[0] ** 2, centroid[1] ** 2, centroid[0] * centroid[1]])
    return area, centroid, central


_T_AREA, _T_CENTROID, _T_CENTRAL = _t_moments()


def state_positions(states: np.ndarray, image_size: int) -> dict[str, np.ndarray]:
    """The same quantities as read_positions, from true states (N, >= 5): agent xy, the block's area centroid and
    its principal axis, in pixels of an image_size frame."""
    s = np.asarray(states, np.float64)
    scale = image_size / WORLD_SIZE
    c, si = np.cos(s[:, 4]), np.sin(s[:, 4])
    cx, cy = _T_CENTROID
    block = np.stack([s[:, 2] + c * cx - si * cy, s[:, 3] + si * cx + c * cy], 1) * scale
    mu20, mu02, mu11 = _T_CENTRAL
    # second moments of the rotated shape: R M R^T
    r20 = c * c * mu20 - 2 * c * si * mu11 + si * si * mu02
    r02 = si * si * mu20 + 2 * c * si * mu11 + c * c * mu02
    r11 = c * si * (mu20 - mu02) + (c * c - si * si) * mu11
    axis = np.array([_axis(a, b, m) for a, b, m in zip(r20, r02, r11)])
    return {"agent": s[:, :2] * scale, "block": block, "block_axis": axis}


def position_errors(read: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per frame: agent and block centroid distance (pixels) and block axis difference (degrees, in [0, 90])."""
    axis = np.abs(read["block_axis"] - reference["block_axis"]) % math.pi
    return {"agent_px": np.linalg.norm(read["agent"] - reference["agent"], axis=1),
            "block_px": np.linalg.norm(read["block"] - reference["block"], axis=1),
            "block_axis_deg": np.degrees(np.minimum(axis, math.pi - axis))}
