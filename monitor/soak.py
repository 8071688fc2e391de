"""Soak the monitor: python -m monitor.soak --model DIR [--steps 10000].

One long headless lockstep run of the scene with every panel drawn and the video recorded, as `lewm monitor
--headless` runs it, checked for what a long run must not do: resident memory after the warm-up grows < 5%, no
frame is dropped, the session log has one whole line per env step, and the video one frame per env step. It
prints those figures, the throughput (env steps per second of wall time after the warm-up) and the CPU time one
env step costs (this process and the ffmpeg encoder together), and exits 1 if a check fails.

The run after the warm-up is also reported in SEGMENTS equal parts, each with its throughput, its CPU per env step
(this process; the encoder, read from /proc while it runs) and the load average at its end: a rate that falls
while the CPU per step stays flat and the load rises was taken by other work on the machine; a CPU per step that
grows is the monitor's own.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lewm.bundled import BUNDLED_MODEL
from lewm_errors import UserError

RSS_GROWTH_LIMIT = 0.05
SEGMENTS = 5


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc; elsewhere its peak, from getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def video_frames(path: Path) -> int:
    """Frames in an mp4, counted by ffmpeg without decoding them (a stream copy)."""
    import imageio_ffmpeg

    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostats", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-f", "null", "-"], capture_output=True, text=True)
    found = re.findall(r"frame=\s*(\d+)", out.stderr)
    if out.returncode != 0 or not found:
        raise UserError(f"ffmpeg could not read {path}: {out.stderr.strip()[-300:]}")
    return int(found[-1])


def whole_lines(path: Path) -> int:
    """Lines of a JSON-lines log that end in a newline and parse."""
    import json

    count = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                json.loads(line)
                count += 1
    return count


def cpu_seconds(children: bool = False) -> float:
    """CPU time of this process (or of its finished children: the encoder, once closed)."""
    t = os.times()
    return t.children_user + t.children_system if children else t.user + t.system


def children_cpu_seconds() -> float:
    """CPU time of this process's running child processes (the ffmpeg encoder) from /proc; NaN where unreadable."""
    try:
        me, hz, total = os.getpid(), os.sysconf("SC_CLK_TCK"), 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            if int(fields[1]) == me:  # ppid; then utime, stime at fields 11, 12 (after the name)
                total += (int(fields[11]) + int(fields[12])) / hz
        return total
    except (OSError, ValueError, IndexError):
        return float("nan")


def soak(model: str, steps: int, warmup: int, scene: str, sessions: str, reference: tuple[int, int] = (10, 150)
         ) -> dict:
    """Run and measure; `reference`: (episodes, env steps) of the reference bank, the monitor's by default."""
    from tqdm import tqdm

    from monitor.app import MonitorApp, Options, init_pygame
    from export.backends import load_engine
    from monitor.reference import load_or_build

    init_pygame(True)
    engine = load_engine(model, None, "fp32")
    bank, _ = load_or_build(engine, *reference)
    app = MonitorApp(engine, bank, Options(scene=scene, headless=True, lockstep=True, sessions=sessions))
    chunk = 100
    done, rss = 0, []  # rss: samples after the warm-up
    ends = {warmup + round(i * (steps - warmup) / SEGMENTS) for i in range(1, SEGMENTS + 1)}
    marks = []  # (env steps, wall, this process's CPU, the encoder's CPU, load average) at each segment's bounds
    encoder0 = cpu_seconds(children=True)
    with tqdm(total=steps, desc="soak", unit="step") as bar:
        while done < steps:
            n = min([chunk, steps - done] + [e - done for e in ends | {warmup} if e > done])
            app.run_headless(n)
            done += n
            bar.update(n)
            if done == warmup:
                rss_warm, t_warm, cpu_warm = resident_bytes(), time.perf_counter(), cpu_seconds()
            elif done > warmup:
                rss.append(resident_bytes())
            if done == warmup or done in ends:
                marks.append((done, time.perf_counter(), cpu_seconds(), children_cpu_seconds(), os.getloadavg()[0]))
    t_end, cpu_end, dropped = time.perf_counter(), cpu_seconds(), app.worker.dropped
    out = app.close()
    encoder = cpu_seconds(children=True) - encoder0
    folder = Path(out["session"])
    log_lines = whole_lines(folder / "log.jsonl")
    frames = video_frames(Path(out["video"]))
    growth = max(rss) / rss_warm - 1
    return {"steps": steps, "warmup": warmup, "scene": scene, "engine": engine.describe(),
            "steps_per_s": (steps - warmup) / (t_end - t_warm),
            "cpu_ms_per_step": 1000 * (cpu_end - cpu_warm) / (steps - warmup),
            "encoder_ms_per_frame": 1000 * encoder / steps,
            "rss_warm_mb": rss_warm / 2**20, "rss_peak_after_warmup_mb": rss_warm * (1 + growth) / 2**20,
            "rss_end_mb": rss[-1] / 2**20, "rss_growth": growth, "dropped": dropped, "log_lines": log_lines,
            "video_frames": frames, "session": str(folder), "segments": segments(marks)}


def segments(marks: list[tuple]) -> list[dict]:
    """Throughput, CPU per env step and load average of each stretch between consecutive marks."""
    out = []
    for (s0, t0, c0, e0, _), (s1, t1, c1, e1, load) in zip(marks, marks[1:]):
        n = s1 - s0
        out.append({"from": s0, "to": s1, "steps_per_s": n / (t1 - t0), "cpu_ms_per_step": 1000 * (c1 - c0) / n,
                    "encoder_ms_per_step": 1000 * (e1 - e0) / n, "load": load})
    return out


def checks(r: dict) -> list[tuple[str, bool]]:
    return [(f"resident memory after warm-up grows < {RSS_GROWTH_LIMIT:.0%} ({r['rss_growth']:+.1%})",
             r["rss_growth"] < RSS_GROWTH_LIMIT),
            (f"no dropped frames ({r['dropped']})", r["dropped"] == 0),
            (f"log has one whole line per env step ({r['log_lines']} of {r['steps']})", r["log_lines"] == r["steps"]),
            (f"video has one frame per env step ({r['video_frames']} of {r['steps']})",
             r["video_frames"] == r["steps"])]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    parser = argparse.ArgumentParser(prog="python -m monitor.soak", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="model folder")
    parser.add_argument("--steps", type=int, default=10_000, help="env steps of the run")
    parser.add_argument("--warmup", type=int, default=500, help="env steps before memory and speed are measured")
    parser.add_argument("--scene", default="seed-artifact", help="the scene (episodes follow one another)")
    parser.add_argument("--sessions", default=None, help="keep the session (log + video) under this folder "
                        "(default: a temporary folder, removed after)")
    args = parser.parse_args(argv)
    try:
        if not 0 < args.warmup < args.steps:
            raise UserError("--warmup must be at least 1 and below --steps")
        with tempfile.TemporaryDirectory() as tmp:
            r = soak(args.model, args.steps, args.warmup, args.scene, args.sessions or tmp)
    except UserError as err:
        print(f"soak: error: {err}", file=sys.stderr)
        return 2
    print(f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, "
          f"{time.strftime('%Y-%m-%d')}; {r['engine']}")
    print(f"{r['steps']} env steps of {r['scene']} (warm-up {r['warmup']}): {r['steps_per_s']:.1f} env steps/s, "
          f"CPU per env step after the warm-up {r['cpu_ms_per_step']:.1f} ms (this process) + "
          f"{r['encoder_ms_per_frame']:.1f} ms (the encoder, per frame over the whole run)")
    print(f"resident memory: {r['rss_warm_mb']:.0f} MB after the warm-up, peak {r['rss_peak_after_warmup_mb']:.0f} MB "
          f"after it, {r['rss_end_mb']:.0f} MB at the end")
    for g in r["segments"]:
        print(f"  steps {g['from']}-{g['to']}: {g['steps_per_s']:.1f} env steps/s, CPU per env step "
              f"{g['cpu_ms_per_step']:.1f} ms + {g['encoder_ms_per_step']:.1f} ms (encoder), "
              f"load average {g['load']:.1f}")
    ok = True
    for text, passed in checks(r):
        print(f"{'ok  ' if passed else 'FAIL'} {text}")
        ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
