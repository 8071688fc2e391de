"""Open the live monitor: PushT with LeWM's surprise, horizon forecasts, PCA trace, artifacts by mouse.

With a display it opens a window (H or F1 lists the keys). With no display, or --headless, it runs the scene
for --steps env steps in lockstep without a window and writes the video and the session log, printing where.
Every run writes a session folder under --sessions (replay it with --replay SESSION).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from lewm.bundled import BUNDLED_MODEL
from lewm_errors import UserError

from lewm_cli.arguments import COUNT, DATASET, FOLDER, MODEL, SEED, Integer, Number

HELP = "open the live monitor (headless: run a scene and write its video and session)"
DEFAULT_SCENE = "seed-artifact"
DEFAULT_HORIZON = 10
DEFAULT_REFERENCE = (10, 150)  # episodes, env steps
HEADLESS_CAP = 300


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=MODEL, default=None,
                   help="model folder (config.json + ONNX files); its config gives "
                   f"the frame size and frameskip (default: the bundled {BUNDLED_MODEL.name}; a replay: the "
                   "session's)")
    p.add_argument("--scene", default=None, help=f"named scene to start (`lewm scenes` lists them; default: "
                   f"{DEFAULT_SCENE}; a replay: the session's)")
    p.add_argument("--seed", type=SEED, default=None, help="episode seed (default: the scene's)")
    p.add_argument("--solver", choices=("cem", "icem", "mppi"), default="cem",
                   help="plan mode's solver (lewm.planning.planner, as `lewm plan --solver`)")
    p.add_argument("--uncertainty-weight", type=Number(minimum=0), default=0.0, metavar="W",
                   help="plan mode: weight of the model's uncertainty about the forecast in the plan's cost (needs an "
                        "ensemble: `lewm train-ensemble`)")
    p.add_argument("--mode", choices=("expert", "manual", "plan", "replay"), default=None,
                   help="who acts: the scripted expert, you (mouse / arrows), the model planning toward a goal (CEM), "
                        "or a replay (default: expert, or replay with --replay/--replay-dataset)")
    p.add_argument("--replay", metavar="SESSION_DIR", type=FOLDER, default=None, help="play a recorded session back")
    p.add_argument("--replay-dataset", metavar="H5", type=DATASET, default=None, help="play a dataset episode back")
    p.add_argument("--episode", type=Integer(0), default=0, help="the episode of --replay-dataset")
    p.add_argument("--headless", action="store_true", help="no window, even with a display")
    p.add_argument("--steps", type=COUNT, default=None,
                   help=f"headless run length in env steps (default: the scene's length, at most {HEADLESS_CAP})")
    p.add_argument("--lockstep", action="store_true", help="the simulator waits for the model (no dropped frames)")
    p.add_argument("--record", metavar="FILE", default=None, help="record the window to this mp4 from the start")
    p.add_argument("--force", action="store_true", help="overwrite --record and --screenshot files that exist")
    p.add_argument("--sessions", default="sessions", help="folder for session folders")
    p.add_argument("--speed", type=Number(minimum=0), default=1.0,
                   help="simulator speed (x 10 env steps/s); 0 = as fast as "
                   "the model keeps up")
    p.add_argument("--horizon", type=COUNT, default=None,
                   help=f"forecast horizon H in model steps (default: {DEFAULT_HORIZON}; a replay: the session's)")
    p.add_argument("--provider", default=None, help="ONNX Runtime execution provider to try first (e.g. "
                   "CUDAExecutionProvider); default: the best available")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="which ONNX files to run (default: fp32; a replay: the session's)")
    p.add_argument("--screenshot", metavar="PNG", default=None, help="save the last drawn window to this PNG")
    p.add_argument("--rerun", action="store_true", help="also stream every step to a Rerun viewer it starts (the "
                   "optional extra rerun-sdk: pip install -e '.[rerun]'); `lewm rerun SESSION` makes a file of a "
                   "recorded session")
    p.add_argument("--reference-episodes", type=COUNT, default=None, help=argparse.SUPPRESS)
    p.add_argument("--reference-steps", type=COUNT, default=None, help=argparse.SUPPRESS)


def text_progress(fraction: float, message: str) -> None:
    width = 30
    filled = int(round(width * fraction))
    end = "\n" if fraction >= 1 else ""
    print(f"\r{message:<40} [{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}", end=end, file=sys.stderr,
          flush=True)


def run(args: argparse.Namespace) -> int:
    from scenes.catalog import get_scene
    from lewm_cli.output_path import check_output_file

    if args.replay and args.replay_dataset:
        raise UserError("give --replay SESSION_DIR or --replay-dataset H5, not both")
    replay = None
    if args.replay:
        from monitor.replay import SessionReplay, replay_settings

        replay = SessionReplay(args.replay)
        vars(args).update(replay_settings(replay.meta, {k: getattr(args, k) for k in (
            "scene", "seed", "horizon", "precision", "reference_episodes", "reference_steps", "model")}))
    defaults = dict(model=BUNDLED_MODEL, scene=DEFAULT_SCENE, horizon=DEFAULT_HORIZON, precision="fp32",
                    reference_episodes=DEFAULT_REFERENCE[0], reference_steps=DEFAULT_REFERENCE[1])
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    scene = get_scene(args.scene)  # unknown scene: a clear error before anything heavy
    for option, path in (("--record", args.record), ("--screenshot", args.screenshot)):
        if path:  # before the run: a bad path must not cost the run, nor overwrite a file silently
            check_output_file(path, option, force=args.force)
    if args.record and Path(args.record).suffix.lower() not in ("", ".mp4"):  # an mp4 whatever the name says
        raise UserError(f"--record {args.record}: the video is written as mp4; give a name ending in .mp4")
    if args.replay_dataset:
        from monitor.replay import DatasetReplay

        replay = DatasetReplay(args.replay_dataset, args.episode)
    mode = args.mode or ("replay" if replay is not None else "expert")
    if mode == "replay" and replay is None:
        raise UserError("--mode replay needs --replay SESSION_DIR or --replay-dataset H5")
    headless = args.headless or not _has_display()
    if args.rerun:
        from monitor import rerun_recording  # noqa: F401  (without the extra: one line saying how to install it)

    from export.backends import load_engine

    engine = load_engine(args.model, args.provider, args.precision)
    from lewm.model_interface import UNCERTAINTY
    from lewm.planning.planner import PlannerSettings
    from monitor.app import MonitorApp, Options, init_pygame, run_app
    from monitor.reference import load_or_build

    headless = init_pygame(headless)
    progress = text_progress if headless else _window_progress()
    bank, where = load_or_build(engine, args.reference_episodes, args.reference_steps, progress)
    steps = args.steps
    if steps is None:
        steps = len(replay) if replay is not None else min(scene.steps, HEADLESS_CAP)
    speed = float("inf") if args.speed <= 0 else args.speed
    plan = PlannerSettings(solver=args.solver, uncertainty_weight=args.uncertainty_weight)
    if plan.uncertainty_weight and UNCERTAINTY not in engine.capabilities:
        raise UserError(f"--uncertainty-weight needs an ensemble in {args.model}; train one with "
                        f"`lewm train-ensemble --model {args.model} --data DATA.h5`")
    options = Options(plan=plan, scene=args.scene, seed=args.seed, mode=mode, headless=headless, steps=steps,
                      lockstep=args.lockstep, record=args.record, sessions=args.sessions, speed=speed,
                      horizon=args.horizon, meta={"model": str(Path(args.model).resolve()), "reference": where,
                                                  "precision": args.precision,
                                                  "reference_episodes": args.reference_episodes,
                                                  "reference_steps": args.reference_steps, "argv": sys.argv[1:],
                                                  **({"model_replaced": args.model_replaced}
                                                     if getattr(args, "model_replaced", None) else {})})
    app = MonitorApp(engine, bank, options, replay=replay)
    print(f"monitor: {engine.describe()}; session {app.session.folder}", file=sys.stderr)
    if args.rerun:
        _stream_to_rerun(app)
    out = run_app(app, steps)
    if args.screenshot:
        import pygame

        try:
            pygame.image.save(app.surface, args.screenshot)
        except (OSError, pygame.error) as err:
            raise UserError(f"cannot write --screenshot {args.screenshot}: {err}") from None
        print(f"screenshot: {args.screenshot}")
    interrupted = out.get("interrupted")
    ran = f"{out['steps']} env steps in {out['seconds']:.1f} s" if "steps" in out else ""
    if interrupted:
        name = "Ctrl-C" if interrupted == signal.SIGINT else interrupted.name
        print(f"interrupted ({name})" + (f" after {ran}" if ran else "") + "; what ran is saved")
    elif ran:
        print(f"ran {ran}")
    if out.get("video"):
        print(f"video: {out['video']}")
    print(f"session: {out['session']}")
    return 128 + interrupted if interrupted else 0


def _stream_to_rerun(app) -> None:
    """Every step the app drains also goes to a Rerun viewer, started here (it outlives the monitor)."""
    from monitor.rerun_recording import SessionRecorder, blueprint, open_stream

    stream = open_stream(app.session.folder.name)
    stream.spawn(default_blueprint=blueprint())
    app.observers.append(SessionRecorder(stream, app))


def _has_display() -> bool:
    from monitor.app import has_display

    return has_display()


def _window_progress():
    """A progress bar drawn in the window while the reference bank is built."""
    import pygame

    from monitor.app import SIZE
    from monitor.panels import style

    screen = pygame.display.set_mode(SIZE)

    def draw(fraction: float, message: str) -> None:
        pygame.event.pump()
        screen.fill(style.BG)
        style.text(screen, "building the reference bank (once per model folder)", (SIZE[0] // 2, 300), 28,
                   anchor="center")
        bar = pygame.Rect(340, 340, 600, 24)
        pygame.draw.rect(screen, style.BORDER, bar, 1)
        pygame.draw.rect(screen, style.STREAM_COLORS["real"], (bar.x, bar.y, int(bar.w * fraction), bar.h))
        style.text(screen, message, (SIZE[0] // 2, 380), 20, style.DIM, "center")
        pygame.display.flip()
        text_progress(fraction, message)

    return draw

