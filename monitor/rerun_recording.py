"""A session as a Rerun recording: every signal of the monitor on one timeline, laid out like the window.

Timeline `step`: the session's env steps one after another, episodes included (the log's `seq`); a second
timeline, `env_step`, is each episode's own step. Entities:
  scene/frame                 the frame the model saw (artifacts drawn in), at the model's size
  scene/action                the action taken after it: an arrow from the agent to its target
  scene/plan/...              plan mode: the last CEM iteration's candidates and elites, the chosen path
  surprise/<stream>           1 - cos(predicted, seen) under the real, shuffled and zero actions
  uncertainty/<part>          where the model serves one: its uncertainty about this frame's one-step forecast,
                              the ensemble's disagreement and its noise (lewm.ensemble.model), and their sum
  forecast_error/<stream>/hH  the horizon-H forecast of this frame vs the frame, as each forecast arrives
  copy_last/hH                the copy-last baseline at horizon H
  horizon/<stream>            running mean forecast error per horizon (the window's middle panel), a bar chart
  pca/...                     the reference cloud, the episode's path, the look-ahead forecast points
  expects/lookahead           the look-ahead forecasts decoded into frames (or the nearest expert frames)
  expects/spike               at the last surprise spike: the decoded prediction beside the frame seen
  expects/plan                plan mode: the decoded end of the chosen plan beside the goal
  actions/x, actions/y        the raw action
  events                      episode starts, artifacts entering and leaving, teleports, stream and mode switches,
                              dropped frames, plans

`SessionRecorder` is an observer of a MonitorApp (app.observers): it logs each step as the app drains it, with the
app's own state for what the log does not keep (decoded pictures, running means, plan candidates). The live
monitor streams it to a viewer; `build_recording` replays a session through the app and logs each step's logged
values, after checking that the replay computed the same numbers as the recording.

This module imports rerun: import it only where a recording is asked for.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rerun as rr
import rerun.blueprint as rrb
from rerun.blueprint.encodings import TextLogColumn, TextLogColumnKind

from lewm.stream import ACTION_STREAMS
from monitor.panels import style
from monitor.plan_mode import view_from_record
from monitor.session import json_ready
from lewm_errors import UserError
from scenes.pusht import ACTION_SCALE, WORLD_SIZE

TIMELINE = "step"
APPLICATION = "lewm-monitor"
# What the replay recomputes and must find equal to the log before anything is taken from it.
CHECKED = ("env_step", "episode_start", "dropped", "state", "action", "artifacts", "block_color", "surprise",
           "forecast_error", "copy_last_error", "pca", "active_stream", "uncertainty")
UNCERTAINTY_PARTS = ("disagreement", "noise")
GREY = (170, 170, 170)
SMALL = rr.components.Radius.ui_points(2.0)
MARK = rr.components.Radius.ui_points(5.0)


def blueprint() -> rrb.Blueprint:
    """The monitor's window in Rerun: the scene at the top left, surprise and under it the model's uncertainty across
    the top right, forecast error by horizon and the PCA trace under them, the "what the model expects" strip and
    the events across the bottom."""
    forecasts = rrb.Tabs(
        # one stream and the baseline: a bar chart view stacks the series it shows (the others are in horizon/)
        rrb.BarChartView(origin="horizon", contents=["horizon/real", "horizon/copy_last"],
                         name="forecast error vs horizon, real actions (running mean), copy-last on top"),
        rrb.TimeSeriesView(origin="/", contents=["forecast_error/real/**", "copy_last/**"],
                           name="forecast errors as they arrive (real actions, copy-last)"),
        rrb.TimeSeriesView(origin="actions", name="actions"),
    )
    top = rrb.Horizontal(
        rrb.Spatial2DView(origin="scene", name="what the model sees"),
        rrb.Vertical(
            rrb.TimeSeriesView(origin="surprise", name="surprise: 1 - cos(predicted, seen)",
                               axis_y=rrb.ScalarAxis(range=(0.0, 1.0))),
            rrb.TimeSeriesView(origin="uncertainty", name="uncertainty about the forecast (ensemble)"),
            rrb.Horizontal(forecasts, rrb.Spatial2DView(origin="pca", name="latent PCA"), column_shares=[420, 428]),
            row_shares=[130, 96, 206]),
        column_shares=[400, 856])
    bottom = rrb.Horizontal(
        rrb.Spatial2DView(origin="expects/lookahead", name="what the model expects (look-ahead, decoded)"),
        rrb.Tabs(rrb.Spatial2DView(origin="expects/spike", name="predicted | seen at the last spike"),
                 rrb.Spatial2DView(origin="expects/plan", name="plan end | goal")),
        rrb.TextLogView(origin="events", name="events", columns=rrb.TextLogColumns(text_log_columns=[
            TextLogColumn(kind=TextLogColumnKind.LogLevel, visible=True),
            TextLogColumn(kind=TextLogColumnKind.Body, visible=True),
            TextLogColumn(kind=TextLogColumnKind.EntityPath, visible=False)])),
        column_shares=[700, 280, 284])
    return rrb.Blueprint(rrb.Vertical(top, bottom, row_shares=[428, 252]),
                         rrb.TimePanel(timeline=TIMELINE), collapse_panels=True)


def open_stream(name: str, live: bool = True) -> rr.RecordingStream:
    """A recording stream for a session. Not live (a file made at once): rows are batched into large chunks (a few
    per entity, where small batches made thousands, which a viewer takes minutes to load)."""
    batching = None if live else rr.ChunkBatcherConfig(flush_tick=3600.0, flush_num_bytes=256 << 20,
                                                       flush_num_rows=1 << 20)
    return rr.RecordingStream(APPLICATION, recording_id=name, batcher_config=batching)


class SessionRecorder:
    """Logs a MonitorApp's steps into a Rerun recording stream: `app.observers.append(recorder)`."""

    def __init__(self, stream: rr.RecordingStream, app):
        self.rec = stream
        self.app = app
        self.size = app.engine.image_size
        self.horizon = app.options.horizon
        self.previous: dict | None = None
        self._shown: dict = {}  # picture name -> the array last logged (pictures are replaced, never changed)
        self._log_static()

    # ---------------------------------------------------------------- once
    def _log_static(self) -> None:
        log = self.rec.log
        for k, name in enumerate(ACTION_STREAMS):
            colour = style.STREAM_COLORS[name]
            log(f"surprise/{name}", rr.SeriesLines(colors=colour, names=name, widths=2 if k == 0 else 1), static=True)
            for h in range(1, self.horizon + 1):
                shade = style.plasma((h - 1) / max(self.horizon - 1, 1))
                log(f"forecast_error/{name}/h{h}", rr.SeriesPoints(colors=shade, names=f"{name} h={h}", marker_sizes=2),
                    static=True)
        for h in range(1, self.horizon + 1):
            log(f"copy_last/h{h}", rr.SeriesPoints(colors=style.COPY_LAST, names=f"copy-last h={h}", marker_sizes=1),
                static=True)
        for name, colour in zip((*UNCERTAINTY_PARTS, "total"), ((150, 120, 200), (190, 170, 220), style.UNCERTAINTY)):
            log(f"uncertainty/{name}", rr.SeriesLines(colors=colour, names=name, widths=2 if name == "total" else 1),
                static=True)
        log("actions/x", rr.SeriesLines(colors=(200, 0, 120), names="action x"), static=True)
        log("actions/y", rr.SeriesLines(colors=(20, 150, 60), names="action y"), static=True)
        bank = self.app.bank
        if bank is not None:
            log("pca/reference", rr.Points2D(_flip(bank.cloud), colors=GREY, radii=SMALL), static=True)

    # ---------------------------------------------------------------- each step
    def __call__(self, result, row: dict) -> None:
        self.log_step(json_ready(row), result.item.frame, result)  # the values as the log writes them

    def log_step(self, row: dict, frame: np.ndarray, result=None) -> None:
        """One step: `row` as the session log has it, `frame` as the model saw it, `result` the worker's (for the
        look-ahead points; None where the step was not computed)."""
        rec = self.rec
        rec.set_time(TIMELINE, sequence=int(row["seq"]))
        rec.set_time("env_step", sequence=int(row["env_step"]))
        rec.log("scene/frame", rr.Image(frame, magnification_filter="Nearest"))
        self._log_action(row)
        self._log_events(row)
        if row.get("episode_start"):
            rec.log("scene/plan", rr.Clear(recursive=True))
            rec.log("pca/path", rr.Clear(recursive=True))
        if row.get("plan"):
            self._log_plan(row["plan"])
        for k, name in enumerate(ACTION_STREAMS):
            value = (row.get("surprise") or [None] * 3)[k]
            if value is not None:
                rec.log(f"surprise/{name}", rr.Scalars(value))
        unsure = row.get("uncertainty")
        if unsure is not None and None not in unsure:  # (None before the model has a history to forecast from)
            for name, value in zip(UNCERTAINTY_PARTS, unsure):
                rec.log(f"uncertainty/{name}", rr.Scalars(value))
            rec.log("uncertainty/total", rr.Scalars(float(np.sum(unsure))))
        for k, name in enumerate(ACTION_STREAMS):
            for h, value in enumerate((row.get("forecast_error") or [[]] * 3)[k], start=1):
                if value is not None:
                    rec.log(f"forecast_error/{name}/h{h}", rr.Scalars(value))
        for h, value in enumerate(row.get("copy_last_error") or [], start=1):
            if value is not None:
                rec.log(f"copy_last/h{h}", rr.Scalars(value))
        self._log_running_means()
        self._log_pca(row, result)
        self._log_pictures()
        self.previous = row

    def _px(self, world_xy) -> np.ndarray:
        """World units -> pixels of the model's frame."""
        return np.asarray(world_xy, np.float64) * self.size / WORLD_SIZE

    def _log_action(self, row: dict) -> None:
        action = row.get("action")
        if action is None or any(v is None for v in action):
            self.rec.log("scene/action", rr.Clear(recursive=False))
            return
        self.rec.log("actions/x", rr.Scalars(action[0]))
        self.rec.log("actions/y", rr.Scalars(action[1]))
        agent = self._px(row["state"][:2])
        target = np.clip(np.asarray(row["state"][:2]) + ACTION_SCALE * np.asarray(action), 0, WORLD_SIZE)
        self.rec.log("scene/action", rr.Arrows2D(origins=[agent], vectors=[self._px(target) - agent],
                                                 colors=(200, 0, 120), radii=SMALL))

    def _log_events(self, row: dict) -> None:
        before = self.previous or {}
        lines = []
        if row.get("episode_start"):
            lines.append(("INFO", f"episode starts (env step {row['env_step']}, seed {row.get('seed')}, "
                                  f"mode {row.get('mode')})"))
        elif before.get("mode") not in (None, row.get("mode")):
            lines.append(("INFO", f"mode: {before['mode']} -> {row.get('mode')}"))
        stream, was = row.get("active_stream"), before.get("active_stream")
        if stream is not None and was is not None and stream != was:
            lines.append(("INFO", f"action stream: {was} -> {stream}"))
        if row.get("dropped"):
            lines.append(("WARN", "frame dropped: the model fell behind; the stream restarts after it"))
        for event in row.get("events") or []:
            if event == "teleport":
                x, y, angle = row["state"][2:5]
                lines.append(("INFO", f"block teleported to ({x:.0f}, {y:.0f}), angle {angle:.2f}"))
            else:
                lines.append(("INFO", event))
        now = {_artifact_key(a): a for a in row.get("artifacts") or []}
        then = {_artifact_key(a) for a in before.get("artifacts") or []} if not row.get("episode_start") else set()
        for key, a in now.items():
            if key not in then:
                lines.append(("INFO", f"artifact enters: {a['kind']} {a['size']:g} px, colour {tuple(a['color'])} "
                                      f"at ({a['x']:.0f}, {a['y']:.0f})"))
        for key in then - set(now):
            lines.append(("INFO", f"artifact leaves: {key[0]}"))
        if row.get("plan"):
            plan = row["plan"]
            lines.append(("INFO", f"plan {plan['number']}: {plan['seconds']:.2f} s, elite cost "
                                  f"{plan['elite_cost'][0]:.3f} -> {plan['elite_cost'][-1]:.3f}"))
        for level, text in lines:
            self.rec.log("events", rr.TextLog(text, level=level))

    def _log_plan(self, record: dict) -> None:
        """The plan that starts executing at this step: the live plan mode's view (its last CEM iteration's
        candidates and elites), else the logged plan (the chosen path)."""
        shown = self.app.shown_plan()
        view = shown[0] if shown is not None and shown[0] is not None else None
        if view is None or view.number != record["number"] or view.chosen is None:
            view = view_from_record(record, self.app.engine.config.action_dim)
        if view.paths is not None:
            elites = set(int(i) for i in (view.elites if view.elites is not None else ()))
            others = [self._px(p) for i, p in enumerate(view.paths) if i not in elites]
            self.rec.log("scene/plan/candidates", rr.LineStrips2D(others, colors=(120, 130, 160, 50), radii=0.15))
            self.rec.log("scene/plan/elites", rr.LineStrips2D([self._px(view.paths[i]) for i in sorted(elites)],
                                                              colors=(255, 140, 0, 190), radii=0.2))
        else:
            self.rec.log("scene/plan/candidates", rr.Clear(recursive=False))
            self.rec.log("scene/plan/elites", rr.Clear(recursive=False))
        self.rec.log("scene/plan/chosen", rr.LineStrips2D([self._px(view.chosen)], colors=(200, 0, 120), radii=0.6))
        goal_pca = record.get("goal_pca")
        if goal_pca is not None:
            self.rec.log("pca/goal", rr.Points2D(_flip(np.asarray(goal_pca)[None]), colors=(20, 150, 60), radii=MARK))
        if record.get("end_pca") is not None:
            self.rec.log("pca/plan_end", rr.Points2D(_flip(np.asarray(record["end_pca"])[None]), colors=(200, 0, 120),
                                                     radii=MARK))

    def _log_running_means(self) -> None:
        means, copy_last = self.app.data.horizon_means()
        h = np.arange(1, self.horizon + 1)
        for k, name in enumerate(ACTION_STREAMS):  # (static values would hide these: colours go with each)
            self.rec.log(f"horizon/{name}", rr.BarChart(np.nan_to_num(means[k]), abscissa=h,
                                                        color=style.STREAM_COLORS[name]))
        self.rec.log("horizon/copy_last", rr.BarChart(np.nan_to_num(copy_last), abscissa=h, color=style.COPY_LAST))

    def _log_pca(self, row: dict, result) -> None:
        if row.get("pca") is None:
            return
        path = np.array(self.app.data.path)
        if len(path) >= 2:
            n = len(path)
            chunks = [_flip(path[i:i + 9]) for i in range(0, n - 1, 8)]
            colours = [style.plasma(i / (n - 1)) for i in range(0, n - 1, 8)]
            self.rec.log("pca/path/trace", rr.LineStrips2D(chunks, colors=colours, radii=SMALL))
        self.rec.log("pca/path/now", rr.Points2D(_flip(np.asarray(row["pca"])[None]), colors=style.plasma(1.0),
                                                 radii=MARK))
        ahead = None if result is None or result.record is None else result.record.lookahead_pca
        if ahead is not None:
            pts = _flip(np.vstack([np.asarray(row["pca"])[None], ahead]))
            self.rec.log("pca/path/lookahead", rr.LineStrips2D([pts], colors=style.STREAM_COLORS[
                self.app.active_stream], radii=SMALL))

    def _log_pictures(self) -> None:
        data = self.app.data
        if data.lookahead_frames is not None:
            self._picture("expects/lookahead", data.lookahead_frames, lambda f: _strip(list(f)))
        elif data.lookahead_thumbs and data.bank is not None:  # no decoder: the nearest expert frames
            self._picture("expects/lookahead", tuple(data.lookahead_thumbs),
                          lambda idx: _strip([data.bank.thumbs[i] for i in idx]))
        if data.spike_view is not None:
            self._picture("expects/spike", data.spike_view, lambda v: _strip([v[1], v[2]]))
        if data.plan_view is not None:
            self._picture("expects/plan", data.plan_view, lambda v: _strip([v[0], v[1]]))

    def _picture(self, entity: str, source, draw) -> None:
        """Log a picture when its source changed (the app replaces them, never changes them in place)."""
        last = self._shown.get(entity)
        if last is source or (isinstance(source, tuple) and last == source):
            return
        self._shown[entity] = source
        self.rec.log(entity, rr.Image(draw(source), magnification_filter="Nearest"))


def _flip(points: np.ndarray) -> np.ndarray:
    """PCA coordinates -> a 2-D view's (y grows downward there)."""
    points = np.asarray(points, np.float64)
    return np.column_stack([points[:, 0], -points[:, 1]])


def _strip(frames: list) -> np.ndarray:
    """Frames side by side, 2 white pixels between them (all scaled to the first's height)."""
    h = frames[0].shape[0]
    parts = []
    for f in frames:
        if f.shape[0] != h:
            f = np.repeat(np.repeat(f, h // f.shape[0], 0), h // f.shape[1], 1)
        parts += [f, np.full((h, 2, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def _artifact_key(a: dict) -> tuple:
    return a["kind"], a.get("seed", 0), a["size"]


def build_recording(replay, engine, bank, scene: str, horizon: int, stream: rr.RecordingStream) -> int:
    """Replay a session (monitor.replay.SessionReplay) through the monitor and log every step into `stream`: the
    logged values as logged, and what the log does not keep (pictures, running means, look-ahead points) as the
    replay computes them, once the replay's numbers are found equal to the log's at that step. Returns the steps."""
    from tqdm import tqdm

    from monitor.app import MonitorApp, Options

    app = MonitorApp(engine, bank, Options(scene=scene, mode="replay", headless=True, lockstep=True, horizon=horizon,
                                           draw=False, session=False, video=False), replay=replay)
    recorder = SessionRecorder(stream, app)
    bar = tqdm(total=len(replay), desc="session -> rerun", unit="step")
    done = []

    def observe(result, row: dict) -> None:
        logged = replay.rows[len(done)]
        check_row(logged, row, replay.folder)
        recorder.log_step(logged, result.item.frame, result)
        done.append(1)
        bar.update()

    app.observers.append(observe)
    try:
        app.run_headless(len(replay))
    finally:
        app.close()
        bar.close()
    return len(done)


def check_row(logged: dict, replayed: dict, folder: Path) -> None:
    """The replay computed what the recording logged (monitor/replay.py), so what it adds belongs to the same run."""
    again = json_ready(replayed)
    for key in CHECKED:
        if logged.get(key) != again.get(key):
            raise UserError(f"the replay of {folder} differs from its log at step {logged.get('seq')} ({key}): "
                            f"the session's model folder or reference bank changed since it was recorded")
