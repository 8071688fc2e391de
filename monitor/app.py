"""The monitor: the loop that ties simulator, inference worker, panels, session log and recorder together.

Layout (1280 x 720): the scene (the model's frame, scaled up 3x for a 128 px model) at the top left; live
surprise across the top right, forecast error vs horizon and the PCA trace below it; the "what the model expects"
strip across the bottom (decoded look-ahead frames, nearest expert frames, spike or plan comparison); the status
line at the bottom; the help overlay on H / F1.

Pacing: the simulator runs at 10 Hz x speed (x0.5, x1, x2, or as fast as the model keeps up), drawing at up to
60 fps; inference runs in the worker thread (monitor/worker.py). Headless (no display, or --headless): the scene
runs in lockstep for --steps env steps, one drawn window frame per step into the video and one row per step
into the session log.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from export.engine import available_cores  # noqa: E402
from lewm.model_interface import DECODE  # noqa: E402
from lewm.stream import ACTION_STREAMS, LatentStream  # noqa: E402
from monitor import controls  # noqa: E402
from monitor.live import LiveData  # noqa: E402
from monitor.panels import style  # noqa: E402
from monitor.panels.expects import ExpectsPanel  # noqa: E402
from monitor.panels.horizon import HorizonPanel  # noqa: E402
from monitor.panels.pca import PCAPanel  # noqa: E402
from monitor.panels.plan import PlanOverlay, draw_pca_marks  # noqa: E402
from monitor.panels.scene import ScenePanel  # noqa: E402
from monitor.panels.status import HelpOverlay, StatusLine  # noqa: E402
from monitor.panels.surprise import SurprisePanel  # noqa: E402
from monitor.plan_mode import PlanDriver, view_from_record  # noqa: E402
from monitor.recorder import Recorder  # noqa: E402
from monitor.session import Session  # noqa: E402
from monitor.sim import MODES, Simulator, render_view  # noqa: E402
from monitor.worker import FrameItem, InferenceWorker, Result  # noqa: E402

SIZE = (1280, 720)
SIM_HZ = 10.0
DRAW_FPS = 60
RECORD_FPS = 30
LOOKAHEAD = 5
SCENE_RECT, SCENE_IMAGE_PX = (8, 8, 400, 420), 384  # where the scene panel sits (the window tests drag in it)
HORIZON_RECT = (416, 222, 420, 206)  # the horizon panel's place: the plan's panel while a plan is shown
STREAM_SEED = 0  # the shuffled stream's generator: the same in the monitor and an offline probe


@dataclass
class Options:
    scene: str = "seed-artifact"
    seed: int | None = None
    mode: str = "expert"
    headless: bool = False
    steps: int | None = None
    lockstep: bool = False
    record: str | None = None
    sessions: str = "sessions"
    speed: float = 1.0
    horizon: int = 10
    draw: bool = True  # headless: draw the panels (the benchmark can time the model alone)
    session: bool = True  # write a session folder
    video: bool = True  # headless: record the video
    meta: dict = field(default_factory=dict)
    plan: object = None  # plan mode's lewm.planning.planner.PlannerSettings (default: the official ones)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


def init_pygame(headless: bool) -> bool:
    """Start pygame's display; returns whether the run is headless: asked to be, or no display could be reached
    (SDL then falls back to a driver that shows nothing, and a window loop would run unseen and forever)."""
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    with sdl_notes_hidden():
        pygame.display.init()
    pygame.font.init()
    driver = pygame.display.get_driver()
    if not headless and driver in ("offscreen", "dummy"):
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "none"
        print(f"monitor: no display could be opened (DISPLAY={where}; SDL chose its {driver} driver): running "
              f"headless", file=sys.stderr)
        return True
    return headless


@contextlib.contextmanager
def sdl_notes_hidden():
    """SDL writes notes about its environment straight to file descriptor 2 while it looks for a display ("error:
    XDG_RUNTIME_DIR is invalid or not set"); they read like a failure of the monitor, which says itself what it
    found (init_pygame), so they go to /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MonitorApp:
    def __init__(self, engine, bank, options: Options, replay=None):
        from scenes.catalog import get_scene

        self.engine = engine
        self.bank = bank
        self.options = options
        scene = get_scene(options.scene)
        self.scene = scene
        mode = options.mode if options.mode != "replay" or replay is not None else "expert"
        self.sim = Simulator(scene, engine.image_size, mode=mode, seed=options.seed, replay=replay,
                             frameskip=engine.frameskip)
        self.active_stream = "real"
        decoder = engine if DECODE in engine.capabilities else None  # pictures of the forecasts
        self.stream = LatentStream(engine, horizon=options.horizon, shuffle_bank=bank.shuffle_bank, seed=STREAM_SEED,
                                   pca=bank.pca, lookahead=LOOKAHEAD, active_stream=self.active_stream,
                                   keep_forecasts=decoder is not None)
        self.worker = InferenceWorker(self.stream, lockstep=options.lockstep or options.headless, decoder=decoder)
        self.data = LiveData(options.horizon, bank, has_decoder=decoder is not None)
        # Called as observer(result, row) for each step drained, after its numbers reached self.data (a Rerun stream)
        self.observers: list = []
        self.paused = False
        self.speed = options.speed
        self.show_help = False
        self.running = True
        self.step_requests = 0
        self.seq = 0
        self.frames_drawn = 0  # by the interactive loop
        self.dragging = None
        self.hover = None
        self.recorder: Recorder | None = None
        self.recordings = 0
        self.fps = 0.0
        self._next_record: float | None = None  # when the live recording's next video frame is due
        self._closed = False
        self._accum = 0.0
        self.t0 = time.perf_counter()

        if not pygame.display.get_init():
            init_pygame(options.headless)
        self.surface = pygame.display.set_mode(SIZE)
        pygame.display.set_caption(f"LeWM monitor: {engine.image_size} px model, scene {scene.name}")
        self.scene_panel = ScenePanel(pygame.Rect(SCENE_RECT), image_px=SCENE_IMAGE_PX)
        self.expects_panel = ExpectsPanel(pygame.Rect(8, 436, 1264, 252), count=LOOKAHEAD)
        self.surprise_panel = SurprisePanel(pygame.Rect(416, 8, 856, 206))
        self.horizon_panel = HorizonPanel(pygame.Rect(HORIZON_RECT))
        self.pca_panel = PCAPanel(pygame.Rect(844, 222, 428, 206), bank)
        # In lockstep the simulator waits for each plan and nothing else runs meanwhile, so a plan's calls split
        # their 300 candidates over every core; live, the window and the stream share the cores, where splitting
        # made plans no faster and cost frames (BENCHMARKS.md), so plans keep one thread like the stream.
        planning = engine.with_threads(available_cores()) if self.worker.lockstep else engine
        self.plan = PlanDriver(planning, options.plan, pca=bank.pca, lockstep=self.worker.lockstep)
        self.plan_overlay = PlanOverlay(self.scene_panel.image, self.horizon_panel.rect)  # beside the scene
        self.replayed_plan = None  # (PlanView, goal frame, goal PCA) of the newest plan a replayed session made
        self.status = StatusLine(pygame.Rect(0, 694, SIZE[0], 26))
        self.help = HelpOverlay(SIZE)

        self.session = None
        if options.session:
            meta = dict(options.meta, scene=scene.name, seed=self.sim.seed, mode=self.sim.mode,
                        horizon=options.horizon, provider=engine.provider, engine=engine.describe(),
                        image_size=engine.image_size, frameskip=engine.frameskip, history=engine.history,
                        stream_seed=STREAM_SEED, lookahead=LOOKAHEAD, lockstep=self.worker.lockstep,
                        replay=getattr(replay, "name", None), plan=self.plan.planner.settings.to_dict())
            self.session = Session(options.sessions, f"{scene.name}-s{self.sim.seed}", meta)
        if options.record or (options.headless and options.video):
            self.start_recording(options.record)

    # ---------------------------------------------------------------- actions (the key table's)
    def perform(self, action: str) -> None:
        """Do what a key's action names (monitor/controls.py binds the keys): a speed, an artifact nudge, an arrow
        held, or one of ACTIONS."""
        if action in controls.SPEEDS:
            self.speed = controls.SPEEDS[action]
        elif action in controls.ARTIFACT_NUDGE:
            self.sim.nudge_selected(*controls.ARTIFACT_NUDGE[action])
        elif action in controls.HOLD_ACTIONS:
            self.sim.push(controls.HOLD_ACTIONS[action])
        elif action in ACTIONS:
            ACTIONS[action](self)
        else:
            raise ValueError(f"unknown action {action!r}")

    def quit(self) -> None:
        self.running = False

    def toggle_help(self) -> None:
        self.show_help = not self.show_help

    def toggle_pause(self) -> None:
        self.paused = not self.paused

    def single_step(self) -> None:
        self.paused = True
        self.step_requests += 1

    def new_seed(self) -> None:
        self.sim.reset(self.sim.seed + 1)
        self.reset_plan()

    def cycle_mode(self) -> None:
        modes = [m for m in MODES if m != "replay" or self.sim.replay is not None]
        self.sim.set_mode(modes[(modes.index(self.sim.mode) + 1) % len(modes)])
        self.reset_plan()

    def set_goal(self) -> None:
        """G: the current frame becomes the plan's goal (not in a replay, whose plans are the recording's)."""
        if self.sim.mode != "replay":
            self.plan.set_goal(self.sim.current.state, self.sim.current.frame)
            self.data.clear_plan()

    def cycle_stream(self) -> None:
        self.set_stream(ACTION_STREAMS[(ACTION_STREAMS.index(self.active_stream) + 1) % len(ACTION_STREAMS)])

    def toggle_recording(self) -> None:
        if self.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def set_stream(self, name: str) -> None:
        self.active_stream = name
        self.data.active_stream = name

    # ---------------------------------------------------------------- events
    def handle_event(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYDOWN:
            shift = bool(getattr(event, "mod", 0) & pygame.KMOD_SHIFT)
            binding = controls.lookup(pygame.key.name(event.key), shift)
            if binding is not None:
                self.perform(binding.action)
        elif event.type == pygame.KEYUP:
            binding = controls.lookup(pygame.key.name(event.key), False)
            if binding is not None and binding.action in controls.HOLD_ACTIONS:
                self.sim.release(controls.HOLD_ACTIONS[binding.action])
        elif event.type == pygame.MOUSEBUTTONDOWN and self.scene_panel.contains(event.pos):
            x, y = self.scene_panel.to_reference(event.pos)
            if event.button == 1:
                grabbed = self.sim.artifact_under(x, y)
                if grabbed is None:
                    self.dragging = self.sim.place_artifact(x, y)
                else:
                    self.dragging = grabbed
                    self.sim.selected = grabbed
                    self.sim.move_artifact(grabbed, x, y)
            elif event.button == 3:
                under = self.sim.artifact_under(x, y)
                if under is not None:
                    self.sim.remove_artifact(under)
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            self.dragging = None
        elif event.type == pygame.MOUSEMOTION:
            inside = self.scene_panel.contains(event.pos)
            x, y = self.scene_panel.to_reference(event.pos)
            if self.dragging is not None:
                self.sim.move_artifact(self.dragging, x, y)
            elif inside:
                self.hover = self.sim.artifact_under(x, y)
                if self.sim.mode == "manual" and not any(getattr(event, "buttons", (0,))):
                    self.sim.mouse_target = np.array(self.scene_panel.to_world(event.pos))
            else:
                self.hover = None

    # ---------------------------------------------------------------- one env step
    def sim_tick(self, meanwhile=None) -> bool:
        """Show the model the current frame with the action taken after it, then advance. False at a replay's end.

        `meanwhile()`, if given, runs while the model computes the frame (before the simulator advances); the
        caller then waits for the worker itself."""
        sim = self.sim
        if sim.mode != "replay" and sim.mode != "manual" and sim.env_step >= self.scene.steps:
            sim.reset(sim.seed + 1)  # the episode is over: the next seed
            self.reset_plan()
        view = sim.current
        if view.active_stream is not None and view.active_stream != self.active_stream:
            self.set_stream(view.active_stream)  # a session replay follows the recorded stream
        plan = None
        if sim.mode == "plan":
            action, plan = self.plan.decide(view.frame, view.state)
            if action is None:  # the plan is not ready: the simulator waits at the plan boundary
                return True
            if plan is not None and self.worker.decoder is not None:  # its end, decoded in the worker
                tag = ("plan", plan["number"])
                self.worker.request_decode(tag, self.plan.last.end_latent)
                self.data.expect_plan_end(tag, self.plan.goal_frame)
        else:
            action = sim.decide()
        if view.extra.get("plan"):  # a replayed session's plan
            record = view.extra["plan"]
            self.replayed_plan = (view_from_record(record, self.engine.config.action_dim),
                                  render_view(record["goal_state"], self.engine.image_size, [], 0),
                                  record.get("goal_pca"))
        info = {"state": view.state, "action": action, "artifacts": view.artifacts, "block_color": view.block_color,
                "coverage": view.coverage, "mode": sim.mode, "seed": view.extra.get("seed", sim.seed)}
        if plan is not None:
            info["plan"] = plan
        events = sim.take_events()
        if events:
            info["events"] = events
        self.worker.submit(FrameItem(self.seq, view.env_step, view.frame, action, sim.episode_start,
                                     self.active_stream, view.dropped, info), wait=meanwhile is None)
        self.seq += 1
        if meanwhile is not None:
            meanwhile()
        if sim.finished:
            self.paused = True
            return False
        sim.advance(action)
        return True

    def reset_plan(self) -> None:
        """Plan afresh from the next step, and show no plan end until that plan's is decoded."""
        self.plan.reset()
        self.data.clear_plan()

    def drain(self) -> list[Result]:
        results = self.worker.results()
        for r in results:
            self.data.add(r)
            if self.data.spike_request is not None:  # its picture is decoded in the worker, with the next frame
                self.worker.request_decode("spike", self.data.spike_request)
                self.data.spike_request = None
            if self.session is not None or self.observers:
                row = self._row(r)
                if self.session is not None:
                    self.session.write(row)
                for observer in self.observers:
                    observer(r, row)
        return results

    def _row(self, r: Result) -> dict:
        row = {"env_step": r.item.env_step, "seq": r.item.seq, "episode_start": r.item.episode_start,
               **r.item.info, "dropped": r.record is None, "provider": self.engine.provider,
               "wall_s": round(r.item.submitted - self.t0, 4)}
        if r.record is not None:
            rec = r.record
            row.update(stream_step=r.stream_step, surprise=rec.surprise, forecast_error=rec.forecast_error,
                       copy_last_error=rec.copy_last_error, pca=rec.pca, active_stream=r.item.active_stream,
                       latency_ms=round(r.latency * 1000, 3))
            if rec.uncertainty is not None:
                row["uncertainty"] = rec.uncertainty
        return row

    # ---------------------------------------------------------------- drawing
    def draw(self) -> None:
        s = self.surface
        s.fill(style.BG)
        view = self.sim.current
        title = f"what the model sees ({self.engine.image_size} px): {self.scene.name}, seed {self.sim.seed}"
        if self.sim.mode == "replay":
            title = f"replay: {self.sim.replay.name}"
        self.scene_panel.draw(s, view.frame, title, view.env_step, self.hover, self.sim.selected)
        shown = self.shown_plan()
        self.expects_panel.draw(s, self.data, self.active_stream)
        self.surprise_panel.draw(s, self.data, self.active_stream)
        if shown is None:
            self.horizon_panel.draw(s, self.data, self.active_stream)
        else:  # the plan's panel takes the horizon panel's place
            live = self.sim.mode == "plan"
            end_frame = self.data.plan_view[0] if live and self.data.plan_view is not None else None
            self.plan_overlay.draw(s, shown[0], shown[1], self.plan.status() if live else
                                   f"replayed plan {shown[0].number} ({shown[0].seconds:.2f} s)", end_frame, live)
        self.pca_panel.draw(s, self.data, self.active_stream)
        if shown is not None:
            draw_pca_marks(s, self.pca_panel.to_px, shown[2], shown[0])
        self.status.draw(s, self.status_fields())
        if self.show_help:
            self.help.draw(s)

    def shown_plan(self) -> tuple | None:
        """(PlanView or None, goal frame, goal PCA point) of the plan to draw: the live plan mode's, or a replay's."""
        if self.sim.mode == "plan":
            return self.plan.live or self.plan.last, self.plan.goal_frame, self.plan.goal_pca
        if self.sim.mode == "replay" and self.replayed_plan is not None:
            return self.replayed_plan
        return None

    def status_fields(self) -> list[tuple[str, tuple]]:
        fs = self.engine.frameskip
        step = self.sim.env_step
        speed = "max" if self.speed == float("inf") else f"x{self.speed:g}"
        p50 = self.data.latency_p50() * 1000
        fields = [(f"{self.fps:.0f} fps", style.TEXT)] if not self.options.headless else []  # a video's own rate
        fields += [(f"env {step}  model {step // fs}", style.TEXT),
                  (f"latency p50 {p50:.1f} ms", style.TEXT), (self.engine.provider.replace("ExecutionProvider", ""),
                                                              style.TEXT),
                  (f"mode {self.sim.mode}", style.TEXT), (f"actions {self.active_stream}",
                                                          style.STREAM_COLORS[self.active_stream]),
                  (f"speed {speed}" + ("  PAUSED" if self.paused else ""), style.TEXT),
                  (f"next artifact {self.sim.kind} {self.sim.color_name}", style.TEXT),
                  (f"dropped {self.worker.dropped}", style.SPIKE if self.worker.dropped else style.TEXT)]
        if self.sim.mode == "plan":
            fields.append((self.plan.status(), style.SPIKE if self.plan.waiting else style.TEXT))
        if self.recorder is not None and not self.options.headless:  # headless, the video is the run itself
            fields.append(("REC", style.SPIKE))
        if not self.options.headless:
            fields.append(("H: help", style.DIM))
        return fields

    # ---------------------------------------------------------------- recording
    def start_recording(self, path: str | None = None) -> None:
        if self.recorder is not None:
            return
        self.recordings += 1
        if path is None:
            folder = self.session.folder if self.session is not None else Path(self.options.sessions)
            name = "video.mp4" if self.options.headless else f"recording-{self.recordings}.mp4"
            path = folder / name
        fps = SIM_HZ if self.options.headless else RECORD_FPS
        self.recorder = Recorder(path, SIZE, fps)
        self._next_record = None
        if self.session is not None:
            self.session.add_video(Path(path))

    def stop_recording(self) -> Path | None:
        if self.recorder is None:
            return None
        rec, self.recorder = self.recorder, None
        return rec.close()

    def capture(self, force: bool = False) -> None:
        """Headless (force): one video frame per call. Live: the video keeps real time at RECORD_FPS. Every frame
        slot that has come due since the last call gets the window as it is now, so a slot is repeated when drawing
        falls behind and the video never plays faster than the run; after a stall of over a second (the machine
        suspended), the schedule starts again from now."""
        if self.recorder is None:
            return
        if force:
            self.recorder.add(self.surface)
            return
        now = time.perf_counter()
        if self._next_record is None or now - self._next_record > 1.0:
            self._next_record = now
        while self._next_record <= now:
            self.recorder.add(self.surface)
            self._next_record += 1.0 / RECORD_FPS

    # ---------------------------------------------------------------- loops
    def run_headless(self, steps: int) -> dict:
        """`steps` env steps in lockstep, one video frame each (the window after the step's numbers arrived).

        Pipelined: the frame of step t is drawn and handed to the encoder while the model computes step t + 1
        (the simulator has not moved on yet, so the frame is the same as when drawn after the step)."""
        t0 = time.perf_counter()
        done = 0
        for _ in range(steps):
            if not self.running:
                break
            more = self.sim_tick(meanwhile=self._video_frame if self.options.draw and done else None)
            self.worker.wait_idle()
            self.drain()
            done += 1
            for event in pygame.event.get():
                self.handle_event(event)
            if not more:
                break
        if self.options.draw and done:
            self._video_frame()
        return {"steps": done, "seconds": time.perf_counter() - t0}

    def _video_frame(self) -> None:
        self.draw()
        self.capture(force=True)

    def run_interactive(self) -> None:
        clock = pygame.time.Clock()
        last = time.perf_counter()
        while self.running:
            for event in pygame.event.get():
                self.handle_event(event)
            now = time.perf_counter()
            self.update(now - last)
            last = now
            self.drain()
            self.draw()
            pygame.display.flip()
            self.frames_drawn += 1
            self.capture()
            clock.tick(DRAW_FPS)
            self.fps = clock.get_fps()

    def update(self, dt: float) -> None:
        """Advance the simulator by the time that passed (or the single steps asked for)."""
        while self.step_requests > 0:
            self.step_requests -= 1
            self.sim_tick()
        if self.paused:
            self._accum = 0.0
            return
        if self.speed == float("inf"):
            if self.worker.idle():
                self.sim_tick()
            return
        self._accum = min(self._accum + dt * SIM_HZ * self.speed, 3.0)  # at most 3 steps of catching up
        while self._accum >= 1.0:
            self._accum -= 1.0
            self.sim_tick()

    def close(self) -> dict:
        """Finalise the video(s) and the session; stop the worker. Safe to call twice. An error of the worker
        (or of writing the last rows) is raised after everything is finalised."""
        if self._closed:
            return {}
        self._closed = True
        failures = []

        def attempt(step):
            try:
                return step()
            except Exception as err:
                failures.append(err)

        attempt(lambda: self.worker.wait_idle(timeout=5))
        attempt(self.drain)  # what the worker finished is logged, even when it failed after
        video = attempt(self.stop_recording)
        attempt(self.plan.stop)
        attempt(self.worker.stop)
        if self.session is not None:
            self.session.close()
        if failures:
            raise failures[0]
        return {"video": video, "session": self.session.folder if self.session else None}


# The key table's actions that are not a speed, a nudge or an arrow: what each calls.
ACTIONS = {
    "quit": MonitorApp.quit, "help": MonitorApp.toggle_help, "pause": MonitorApp.toggle_pause,
    "single_step": MonitorApp.single_step, "new_seed": MonitorApp.new_seed, "cycle_mode": MonitorApp.cycle_mode,
    "set_goal": MonitorApp.set_goal, "cycle_stream": MonitorApp.cycle_stream,
    "record": MonitorApp.toggle_recording,
    "cycle_kind": lambda app: app.sim.cycle_kind(), "cycle_color": lambda app: app.sim.cycle_color(),
    "sliding_square": lambda app: app.sim.start_sliding_square(),
    "teleport_block": lambda app: app.sim.teleport_block(), "select_next": lambda app: app.sim.select_next(),
    "remove_selected": lambda app: app.sim.remove_selected(),
    "clear_artifacts": lambda app: app.sim.clear_artifacts(),
}


def run_app(app: MonitorApp, steps: int | None = None) -> dict:
    """Run the app (headless for `steps` when options.headless), finalising on quit, Ctrl-C and SIGTERM.

    Ctrl-C and SIGTERM ask the loop to stop after the step in hand (an exception raised mid-write would kill the
    encoder and lose the video); a second one stops at once. Either way out["interrupted"] is the first signal."""
    signals = []

    def _stop(signum, frame):
        if signals:
            raise KeyboardInterrupt
        signals.append(signum)
        app.running = False

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
    out: dict = {}
    try:
        if app.options.headless:
            out.update(app.run_headless(steps))
        else:
            app.run_interactive()
    except KeyboardInterrupt:
        signals.append(signal.SIGINT)
    finally:
        out.update(app.close())
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signals:
        out["interrupted"] = signal.Signals(signals[0])
    return out


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
