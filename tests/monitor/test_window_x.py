"""The real window on a virtual X display (Xvfb), driven with xdotool as a person drives it: keys and a mouse
drag go through X and SDL's X11 driver, and what they did is read back from screenshots and the session log.

One app process is driven through every check in turn (starting it is most of the cost)."""
import json
import math
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pygame
import pytest

from monitor.app import SCENE_IMAGE_PX, SCENE_RECT
from monitor.panels.scene import ScenePanel
from monitor.panels.status import HELP_BG, HelpOverlay
from monitor.recorder import count_frames
from monitor.session import read_log

ROOT = Path(__file__).resolve().parents[2]
XVFB, XDOTOOL, IMPORT = shutil.which("Xvfb"), shutil.which("xdotool"), shutil.which("import")
WINDOW = (1280, 720)
SCENE = ScenePanel(pygame.Rect(SCENE_RECT), image_px=SCENE_IMAGE_PX)  # where monitor/app.py lays it out

needs_x = pytest.mark.skipif(XVFB is None or XDOTOOL is None or IMPORT is None,
                             reason="needs Xvfb, xdotool and ImageMagick's import "
                                    "(apt-get install xvfb xdotool imagemagick; .ci/run installs them)")


def test_help_overlay_fits_the_window_with_its_text_inside():
    overlay = HelpOverlay(WINDOW).render()
    w, h = overlay.get_size()
    assert w <= WINDOW[0] - 2 * HelpOverlay.MARGIN and h <= WINDOW[1] - 2 * HelpOverlay.MARGIN
    pixels = pygame.surfarray.array3d(overlay)  # (w, h, 3)
    edge = 8  # no text in the last pixels of any side: nothing is cut
    for strip in (pixels[-edge:], pixels[:edge], pixels[:, -edge:], pixels[:, :edge]):
        assert (strip == HELP_BG[:3]).all()


@pytest.fixture
def display():
    """A fresh Xvfb server; its display name (":N", chosen by the server)."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen([XVFB, "-displayfd", str(write_end), "-screen", "0", "1280x720x24", "-noreset",
                               "-nolisten", "tcp"], pass_fds=(write_end,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 20)
        assert ready, "Xvfb did not start"
        name = ":" + os.read(read_end, 32).decode().strip()
        env = dict(os.environ, DISPLAY=name)
        for _ in range(100):  # until it accepts clients
            if subprocess.run([XDOTOOL, "getdisplaygeometry"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        yield name
    finally:
        server.terminate()
        server.wait(10)
        os.close(read_end)  # only now: the server dies of SIGPIPE if it writes to a closed pipe


class Driver:
    """The monitor process on `display`, its session folder and xdotool."""

    def __init__(self, display: str, proc: subprocess.Popen, sessions: Path, tmp: Path):
        self.env = dict(os.environ, DISPLAY=display)
        self.proc, self.sessions, self.tmp = proc, sessions, tmp
        self.folder: Path | None = None
        self.window = ""

    def xdotool(self, *args) -> str:
        out = subprocess.run([XDOTOOL, *args], env=self.env, capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def rows(self) -> list[dict]:
        return read_log(self.folder)

    def wait_rows(self, n: int, timeout: float = 60) -> list[dict]:
        end = time.time() + timeout
        while time.time() < end:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            if self.folder is None:
                logs = list(self.sessions.glob("*/log.jsonl"))
                self.folder = logs[0].parent if logs else None
            if self.folder is not None:
                rows = self.rows()
                if len(rows) >= n:
                    return rows
            time.sleep(0.1)
        raise AssertionError(f"the session log did not reach {n} rows in {timeout} s")

    def until(self, check, what: str, timeout: float = 30.0):
        """Poll `check()` until it returns a true value, which is returned; fail saying `what` otherwise."""
        end = time.time() + timeout
        while time.time() < end:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{what} (waited {timeout:.0f} s)")

    def press(self, key: str) -> None:
        self.xdotool("key", "--clearmodifiers", key)

    def screenshot(self, name: str) -> np.ndarray:
        path = self.tmp / f"{name}.png"
        out = subprocess.run([IMPORT, "-window", self.window, f"png:{path}"], env=self.env, capture_output=True,
                             timeout=20)
        assert out.returncode == 0, out.stderr
        return pygame.surfarray.array3d(pygame.image.load(str(path)))  # (w, h, 3)


def overlay_box(shot: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, x1, y0, y1) of the help overlay: the columns and rows that are mostly its dark backdrop."""
    dark = shot.max(axis=2) < 80
    cols, rows = np.flatnonzero(dark.mean(axis=1) > 0.6), np.flatnonzero(dark.mean(axis=0) > 0.6)
    if not len(cols) or not len(rows):
        return None
    return cols[0], cols[-1], rows[0], rows[-1]


def readable_frames(path) -> int:
    """Frames of a finalised video; 0 while it is not (ffmpeg cannot open an mp4 before its index is written)."""
    try:
        return count_frames(path)
    except OSError:
        return 0


def block_jumps(rows: list[dict]) -> list[int]:
    """Indices i where the block moved between rows i-1 and i further than a push can move it in one step."""
    rows = sorted(rows, key=lambda r: r["seq"])
    out = []
    for i in range(1, len(rows)):
        a, b = np.array(rows[i - 1]["state"]), np.array(rows[i]["state"])
        turn = abs(math.remainder(b[4] - a[4], 2 * math.pi))
        if rows[i]["seed"] == rows[i - 1]["seed"] and (np.hypot(*(b[2:4] - a[2:4])) > 25 or turn > 0.5):
            out.append(i)
    return out


@needs_x
def test_the_window_does_what_a_person_asks(display, tiny_model, reference_sizes, tmp_path):
    episodes, steps = reference_sizes
    sessions = tmp_path / "sessions"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    env.update(DISPLAY=display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "lewm_cli", "monitor", "--model", str(tiny_model), "--scene", "expert", "--speed", "2",
           "--sessions", str(sessions), "--reference-episodes", str(episodes), "--reference-steps", str(steps)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app = Driver(display, proc, sessions, tmp_path)
    try:
        app.wait_rows(10)
        app.window = app.xdotool("search", "--pid", str(proc.pid)).split()[0]
        app.xdotool("windowfocus", "--sync", app.window)

        # H: the help overlay appears, whole, inside the window; H again hides it
        assert overlay_box(app.screenshot("before-help")) is None
        app.press("h")
        def overlay_shown():
            shot = app.screenshot("help")
            box = overlay_box(shot)
            return box and (box, shot)

        (x0, x1, y0, y1), shot = app.until(overlay_shown, "H showed no help overlay")
        assert 0 < x0 and x1 < WINDOW[0] - 1 and 0 < y0 and y1 < WINDOW[1] - 1
        inside = shot[x0:x1 + 1, y0:y1 + 1]
        assert (inside.max(axis=2) > 150).any(), "the overlay shows no text"
        assert (inside[-8:].max(axis=2) < 80).all(), "text runs into the overlay's right edge (cut)"
        app.press("h")
        app.until(lambda: overlay_box(app.screenshot("after-help")) is None, "H again did not hide the help")

        # Space: the env steps stop; Space again: they go on
        app.press("space")

        def settled():
            n = len(app.rows())
            time.sleep(2.0)
            return n if len(app.rows()) == n else None

        paused = app.until(settled, "env steps went on after Space")
        time.sleep(2.0)
        assert len(app.rows()) == paused, "env steps went on while paused"
        app.press("space")
        app.wait_rows(paused + 5)

        # a mouse drag over the scene places an artifact where the drag ended
        start, end = (150, 150), (330, 270)
        app.xdotool("mousemove", "--window", app.window, *map(str, start), "mousedown", "1",
                    "mousemove", "--window", app.window, "240", "210",
                    "mousemove", "--window", app.window, *map(str, end), "mouseup", "1")
        want = SCENE.to_reference(end)

        def placed_at_end():
            drawn = app.rows()[-1]["artifacts"]
            return drawn and np.hypot(drawn[-1]["x"] - want[0], drawn[-1]["y"] - want[1]) <= 1.0 and drawn

        drawn = app.until(placed_at_end, "no artifact was logged where the drag ended")
        assert len(drawn) == 1 and drawn[0]["kind"] == "square"

        # B: the block jumps (a teleport), which no push does in one step
        assert block_jumps(app.rows()) == []
        app.press("b")
        assert len(app.until(lambda: block_jumps(app.rows()), "B did not teleport the block")) == 1

        # A: the action stream the forecasts follow switches from real to shuffled
        assert {r.get("active_stream") for r in app.rows() if not r["dropped"]} == {"real"}
        app.press("a")
        app.until(lambda: app.rows()[-1].get("active_stream") == "shuffled", "A did not switch to shuffled")

        # R: a recording starts; R again finalises it (a readable mp4 with frames)
        app.press("r")
        videos = app.until(lambda: json.loads((app.folder / "session.json").read_text())["videos"],
                           "R started no recording")
        assert [Path(v).name for v in videos] == ["recording-1.mp4"]
        app.press("r")
        app.until(lambda: readable_frames(videos[0]), "R again did not finalise the recording")

        # Esc: exit 0, the session finalised (whole log lines, the paths printed)
        app.press("Escape")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert f"session: {app.folder}" in out
        text = (app.folder / "log.jsonl").read_text()
        assert text.endswith("\n") and len(read_log(app.folder)) == text.count("\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def colour_pixels(shot: np.ndarray, rect: pygame.Rect, colour) -> int:
    """Pixels of exactly `colour` inside `rect` of a screenshot (w, h, 3)."""
    part = shot[rect.left:rect.right, rect.top:rect.bottom]
    return int(np.all(part == np.array(colour), axis=2).sum())


@needs_x
def test_plan_mode_shows_the_whole_scene_unobstructed(display, tiny_model, reference_sizes, tmp_path):
    """In the real window, plan mode's boxes (goal, elite cost, status) sit beside the scene and the candidate
    paths stop at its border: over the scene there is nothing but the scene and the paths."""
    from monitor.app import HORIZON_RECT
    from monitor.panels import style
    from monitor.panels.plan import CHOSEN, GOAL

    episodes, steps = reference_sizes
    sessions = tmp_path / "sessions"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    env.update(DISPLAY=display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "lewm_cli", "monitor", "--model", str(tiny_model), "--scene", "expert", "--mode",
           "plan", "--sessions", str(sessions), "--reference-episodes", str(episodes), "--reference-steps",
           str(steps)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app = Driver(display, proc, sessions, tmp_path)
    try:
        app.wait_rows(1)
        app.until(lambda: any(r.get("plan") for r in app.rows()), "no plan was made", timeout=120)
        app.window = app.xdotool("search", "--pid", str(proc.pid)).split()[0]
        image, side = SCENE.image, pygame.Rect(HORIZON_RECT)

        def plan_drawn():
            shot = app.screenshot("plan")
            return colour_pixels(shot, side, GOAL) > 0 and colour_pixels(shot, image, CHOSEN) > 0 and [shot]

        [shot] = app.until(plan_drawn, "the goal beside the scene and the chosen path over it were not drawn")
        for colour in (GOAL, style.BORDER):  # the goal's frame, the boxes' outlines: never over the scene
            assert colour_pixels(shot, image.inflate(-2, -2), colour) == 0, colour
        for band in (pygame.Rect(image.right + 1, image.top, 6, image.h),
                     pygame.Rect(image.left, image.bottom + 1, image.w, 6)):
            assert colour_pixels(shot, band, CHOSEN) == 0  # the paths stop at the scene's border
        app.press("Escape")
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
