"""Benchmark the monitor: python -m monitor.bench --model DIR [--paper DIR] [--steps N].

Headless, lockstep, every panel drawn, for each model folder: env steps per second (1) with the panels drawn,
(2) with the panels drawn and the video encoded, (3) the model alone (stream step only); the drawing alone
in frames per second; and (4) the interactive loop (window, worker thread, simulator paced at 10 Hz) for a few
seconds: frames drawn per second and the simulator rate it kept. Under SDL's dummy video driver (no display) the
window is an off-screen surface, so (4) leaves out the cost of showing it. No torch: the paper-size folder is made
beforehand with `lewm export --preset paper --random-weights --out DIR`.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from lewm.bundled import BUNDLED_MODEL


def bench_folder(folder: str, steps: int, label: str, window_seconds: float = 5.0) -> dict:
    from export.engine import OnnxEngine
    from monitor.app import MonitorApp, Options
    from monitor.reference import load_or_build

    engine = OnnxEngine.from_folder(folder)
    t0 = time.perf_counter()
    bank, where = load_or_build(engine)
    build = time.perf_counter() - t0
    out = {"label": label, "folder": folder, "image_size": engine.image_size, "latent_dim": engine.latent_dim,
           "provider": engine.provider, "reference": where, "reference_s": round(build, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for key, kw in (("panels", dict(video=False)), ("panels_video", dict(video=True)),
                        ("model_only", dict(video=False, draw=False))):
            app = MonitorApp(engine, bank, Options(headless=True, lockstep=True, session=key == "panels_video",
                                                   sessions=tmp, **kw))
            app.run_headless(10)  # warm up: context filled, forecasts in flight
            t = time.perf_counter()
            app.run_headless(steps)
            out[key] = round(steps / (time.perf_counter() - t), 1)
            if key == "panels":
                t = time.perf_counter()
                for _ in range(steps):
                    app.draw()
                out["draw_fps"] = round(steps / (time.perf_counter() - t), 1)
                out["latency_p50_ms"] = round(app.data.latency_p50() * 1000, 2)
            app.close()
        out.update(bench_window(engine, bank, tmp, window_seconds))
    return out


def bench_window(engine, bank, sessions: str, seconds: float) -> dict:
    """The interactive loop at speed x1 for `seconds`: drawn frames per second and simulator steps per second."""
    import pygame

    from monitor.app import MonitorApp, Options

    app = MonitorApp(engine, bank, Options(headless=False, lockstep=False, speed=1.0, session=False,
                                           sessions=sessions))
    pygame.time.set_timer(pygame.QUIT, int(seconds * 1000), loops=1)
    t = time.perf_counter()
    app.run_interactive()
    elapsed = time.perf_counter() - t
    out = {"window_fps": round(app.frames_drawn / elapsed, 1), "window_sim_hz": round(app.seq / elapsed, 1)}
    app.close()
    return out


def format_table(rows: list[dict]) -> str:
    lines = ["| model | image | env steps/s, panels drawn | + video encoded | model alone | drawing alone (fps) "
             "| stream step p50 | window fps at 10 Hz (sim Hz kept) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['image_size']} px | {r['panels']} | {r['panels_video']} | "
                     f"{r['model_only']} | {r['draw_fps']} | {r['latency_p50_ms']} ms | "
                     f"{r['window_fps']} ({r['window_sim_hz']}) |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the bundled (or any) model folder")
    parser.add_argument("--paper", default=None, help="a paper-size model folder (random weights are fine)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    from monitor.app import init_pygame

    init_pygame(True)
    rows = []
    for folder, label in ((args.model, Path(args.model).name), (args.paper, "paper config")):
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise SystemExit(f"no model folder at {folder}")
        rows.append(bench_folder(folder, args.steps, label))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.steps} steps, "
          f"{time.strftime('%Y-%m-%d')}")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
