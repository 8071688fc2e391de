"""What the panels show, read from their pixels: the surprise axis does not move when a spike arrives, a short
run fills the time axis, headless videos carry no window-only fields (fps, REC, the help hint), and the scene is
the model's own frame, each of its pixels a block of window pixels."""
import numpy as np
import pygame
import pytest

from monitor.live import LiveData
from monitor.panels import style
from monitor.panels.status import StatusLine
from monitor.panels.surprise import SurprisePanel

RECT = pygame.Rect(0, 0, 716, 250)
REAL = style.STREAM_COLORS["real"]


def chart(values: list[float]) -> np.ndarray:
    """The surprise panel drawn over `values` (all three streams equal); (w, h) mask of the real stream's line."""
    pygame.font.init()
    data = LiveData(horizon=3)
    for v in values:
        data.surprise.append(np.full(3, v))
        data.artifact.append(False)
        data.spike.append(False)
    surface = pygame.Surface(RECT.size)
    SurprisePanel(RECT).draw(surface, data, "real")
    return (pygame.surfarray.array3d(surface) == REAL).all(axis=2)


def line_rows(mask: np.ndarray, column: int) -> np.ndarray:
    return np.flatnonzero(mask[column])


def test_a_spike_does_not_rescale_the_surprise_axis():
    quiet = [0.05] * 60
    before = line_rows(chart(quiet), RECT.w - 40)
    after = line_rows(chart(quiet + [1.2] + quiet), RECT.w - 40)
    assert len(before) and before.tolist() == after.tolist()


def test_a_short_run_fills_the_time_axis():
    mask = chart([0.05] * 150)  # 15 s
    columns = np.flatnonzero(mask[:, 40:].any(axis=1)) + 40  # right of the legend area on the left
    assert columns.min() < RECT.w * 0.15 and columns.max() > RECT.w * 0.9


def test_uncertainty_is_an_area_whose_height_reads_on_its_log_axis():
    """The uncertainty is shaded from the plot's floor up to its value on its log axis (0.1 to 100), so where it
    is 50 the shaded column stands (log 500 / log 10) = 2.7 times as tall as where it is 1."""
    pygame.font.init()
    data = LiveData(horizon=3)
    for v in [1.0] * 100 + [50.0] * 100:
        data.surprise.append(np.full(3, np.nan))  # no surprise lines: only the uncertainty in the plot
        data.uncertainty.append(np.array([0.0, v]))  # (disagreement, noise)
        data.artifact.append(False)
        data.spike.append(False)
    surface = pygame.Surface(RECT.size)
    SurprisePanel(RECT).draw(surface, data, "real")
    rgb = pygame.surfarray.array3d(surface).astype(int)
    purple = (rgb[..., 2] - rgb[..., 1] > 10) & (rgb[..., 0] - rgb[..., 1] > 5)  # the area's tint, and its line
    heights = purple.sum(axis=1)
    low, high = np.median(heights[150:300]), np.median(heights[450:600])
    assert low > 10 and high / low == pytest.approx(np.log10(500) / np.log10(10), rel=0.1)


def test_the_disagreement_is_a_dense_area_inside_the_uncertaintys_on_the_same_axis():
    """The part of the uncertainty the ensemble disagrees on is drawn dense inside the uncertainty's light area, on
    the same log axis: where it is 10 its column stands (log 100 / log 10) = 2 times as tall as where it is 1, while
    the total, 20 throughout, keeps its height."""
    pygame.font.init()
    data = LiveData(horizon=3)
    for k in range(200):
        data.surprise.append(np.full(3, np.nan))
        disagreement = 1.0 if k < 100 else 10.0
        data.uncertainty.append(np.array([disagreement, 20.0 - disagreement]))
        data.artifact.append(False)
        data.spike.append(False)
    surface = pygame.Surface(RECT.size)
    SurprisePanel(RECT).draw(surface, data, "real")
    rgb = pygame.surfarray.array3d(surface).astype(int)[:, 30:]  # below the title and the purple legend
    tinted = (rgb[..., 2] - rgb[..., 1] > 10) & (rgb[..., 0] - rgb[..., 1] > 5)
    dense = tinted & (rgb[..., 1] < 170)  # the light area over the panel's white stays above 200 in green
    columns = (slice(150, 300), slice(450, 600))
    low, high = (np.median(dense[c].sum(axis=1)) for c in columns)
    assert low > 10 and high / low == pytest.approx(2.0, rel=0.1)
    assert np.median(tinted[columns[0]].sum(axis=1)) == pytest.approx(np.median(tinted[columns[1]].sum(axis=1)),
                                                                      abs=2)


def test_headless_videos_show_no_window_only_fields(make_app):
    app = make_app(steps=3)  # headless, recording its video
    assert app.recorder is not None
    shown = " ".join(text for text, _ in app.status_fields())
    assert "fps" not in shown and "REC" not in shown and "help" not in shown
    window = make_app(headless=False, session=False)
    window.start_recording(str(app.session.folder / "window.mp4"))
    fields = window.status_fields()
    shown = " ".join(text for text, _ in fields)
    assert "fps" in shown and "REC" in shown and "help" in shown
    # and the window's status line, all fields present, fits the window
    surface = pygame.Surface((1280, 720))
    surface.fill((0, 0, 0))
    StatusLine(pygame.Rect(0, 694, 1280, 26)).draw(surface, fields)
    row = pygame.surfarray.array3d(surface)[:, 707]
    ink = np.flatnonzero((row != (232, 232, 238)).any(axis=1))
    assert ink.max() < 1280 - 8
    window.stop_recording()


def test_the_scene_panel_shows_the_models_frame_pixel_for_pixel():
    from monitor.panels.scene import ScenePanel

    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)  # every pixel its own colour
    panel = ScenePanel(pygame.Rect(8, 8, 400, 420), image_px=96)
    surface = pygame.Surface((420, 440))
    panel.draw(surface, frame, "title", 0)
    shown = pygame.surfarray.array3d(surface.subsurface(panel.image)).transpose(1, 0, 2)  # (y, x, RGB)
    expected = frame.repeat(3, axis=0).repeat(3, axis=1)
    inside = (slice(1, -1), slice(1, -1))  # inside the 1 px border
    assert np.array_equal(shown[inside], expected[inside])


@pytest.fixture(autouse=True)
def _pygame():
    pygame.font.init()
    yield
