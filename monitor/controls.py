"""The one key table: every key the monitor answers to, what it does, and the help text.

The help overlay, the README's key table and the tests are all generated from KEYS, so a key cannot
do one thing and be documented as another. Each binding names an action; MonitorApp.perform(action)
carries it out (monitor/app.py). Mouse gestures are listed in MOUSE (they are not keys).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Binding:
    key: str  # pygame key name, as pygame.key.key_code() accepts it
    action: str  # MonitorApp.perform(action)
    help: str
    shift: bool = False  # the binding needs Shift held (Shift + arrows move the selected artifact)
    label: str = ""  # how the help shows the key (default: the key name)

    @property
    def shown(self) -> str:
        name = self.label or self.key
        return f"Shift+{name}" if self.shift else name


KEYS: tuple[Binding, ...] = (
    Binding("escape", "quit", "quit (finalises the video and the session)", label="Esc"),
    Binding("h", "help", "show / hide this help", label="H"),
    Binding("f1", "help", "show / hide this help", label="F1"),
    Binding("space", "pause", "pause / resume the simulator", label="Space"),
    Binding(".", "single_step", "one env step (pauses first)", label="."),
    Binding("1", "speed_half", "speed x0.5 (5 env steps/s)"),
    Binding("2", "speed_1", "speed x1 (10 env steps/s, PushT's control rate)"),
    Binding("3", "speed_2", "speed x2 (20 env steps/s)"),
    Binding("4", "speed_max", "speed: as fast as the model keeps up"),
    Binding("n", "new_seed", "reset: new episode with a new seed", label="N"),
    Binding("m", "cycle_mode", "cycle the mode: expert / manual / plan (/ replay when one is loaded)", label="M"),
    Binding("g", "set_goal", "make the current frame the plan mode's goal", label="G"),
    Binding("a", "cycle_stream", "cycle the action stream shown in forecasts and PCA: real / shuffled / zero",
            label="A"),
    Binding("t", "cycle_kind", "cycle the type of the next artifact: square / disc / noise / occluder", label="T"),
    Binding("c", "cycle_color", "cycle the colour of the next artifact (and of the selected one)", label="C"),
    Binding("s", "sliding_square", "start the published sliding red 20 px square now", label="S"),
    Binding("b", "teleport_block", "teleport the block to a random pose (a physical surprise)", label="B"),
    Binding("tab", "select_next", "select the next artifact", label="Tab"),
    Binding("delete", "remove_selected", "remove the selected artifact", label="Delete"),
    Binding("x", "clear_artifacts", "remove every artifact", label="X"),
    Binding("r", "record", "start / stop recording the window to mp4", label="R"),
    Binding("left", "move_left", "manual mode: push the agent left", label="Left"),
    Binding("right", "move_right", "manual mode: push the agent right", label="Right"),
    Binding("up", "move_up", "manual mode: push the agent up", label="Up"),
    Binding("down", "move_down", "manual mode: push the agent down", label="Down"),
    Binding("left", "artifact_left", "move the selected artifact left", shift=True, label="Left"),
    Binding("right", "artifact_right", "move the selected artifact right", shift=True, label="Right"),
    Binding("up", "artifact_up", "move the selected artifact up", shift=True, label="Up"),
    Binding("down", "artifact_down", "move the selected artifact down", shift=True, label="Down"),
)

MOUSE: tuple[tuple[str, str], ...] = (
    ("move (manual mode)", "the agent's target follows the mouse over the scene (standard PushT teleop)"),
    ("left press + drag", "place an artifact of the current type and colour and drag it along (its path is kept);"
                          " press on an existing one to grab it"),
    ("right click", "remove the artifact under the cursor"),
)

# Held keys (not one-shot): the manual-mode arrows push the agent while held.
HOLD_ACTIONS = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}
ARTIFACT_NUDGE = {"artifact_left": (-1, 0), "artifact_right": (1, 0), "artifact_up": (0, -1),
                  "artifact_down": (0, 1)}

SPEEDS = {"speed_half": 0.5, "speed_1": 1.0, "speed_2": 2.0, "speed_max": float("inf")}
COLORS = ((255, 50, 50), (50, 200, 50), (50, 90, 255), (250, 210, 40), (255, 255, 255), (0, 0, 0))
COLOR_NAMES = ("red", "green", "blue", "yellow", "white", "black")


def lookup(key_name: str, shift: bool) -> Binding | None:
    """The binding of a key press (pygame key name), Shift-specific bindings first."""
    matches = [b for b in KEYS if b.key == key_name]
    for b in matches:
        if b.shift == shift:
            return b
    return next((b for b in matches if not b.shift), None)


def help_lines() -> list[tuple[str, str]]:
    """(keys, what) rows for the help overlay and README: bindings of one action share a row."""
    rows: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for b in KEYS:
        if b.action in seen:
            keys, what = rows[seen[b.action]]
            rows[seen[b.action]] = (f"{keys} / {b.shown}", what)
            continue
        seen[b.action] = len(rows)
        rows.append((b.shown, b.help))
    return rows


def markdown_table() -> str:
    lines = ["| key | does |", "| --- | --- |"]
    lines += [f"| {k} | {w} |" for k, w in help_lines()]
    lines += [f"| mouse: {k} | {w} |" for k, w in MOUSE]
    return "\n".join(lines)
