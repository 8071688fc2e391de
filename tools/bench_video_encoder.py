"""Which x264 settings the recorder should use: ffmpeg's CPU time per frame, the file size and the fidelity to the
drawn frames, measured on the monitor's own window.

    python tools/bench_video_encoder.py --model models/pusht-keypoints --frames 300 --repeats 8

Runs the monitor headless (lockstep, every panel drawn, no video of its own) for --frames env steps after a
warm-up and keeps each window frame as the recorder would hand it to ffmpeg (monitor.recorder.frame_bytes). Then encodes
those frames through the recorder's own encoder (monitor.recorder.open_encoder) once per setting, round-robin,
--repeats times, and prints per setting: ffmpeg's CPU time per frame (user + system of the finished child process;
median and minimum over the repeats, as the machine's speed drifts), the file size, and the PSNR of the decoded
video against the drawn frames (RGB, every 10th frame). The frames are held in memory (3.7 MB each at 1280 x 720).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = {  # name -> x264 parameters (after `-preset veryfast`)
    "recorder": None,  # monitor.recorder.ENCODER_PARAMS, whatever it is now
    "preset only": "",
    "subme=1:me=dia": "subme=1:me=dia",  # one sub-pixel refinement pass (the recorder's until 2026-12-02)
}


def window_frames(model: str, frames: int, warmup: int) -> tuple[list[bytes], tuple[int, int]]:
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    import pygame

    from monitor.app import MonitorApp, Options, init_pygame
    from export.backends import load_engine
    from monitor.recorder import frame_bytes
    from scenes.render import XRGB_MASKS
    from monitor.reference import load_or_build

    init_pygame(True)
    engine = load_engine(model, None, "fp32")
    bank, _ = load_or_build(engine, 10, 150)
    app = MonitorApp(engine, bank, Options(headless=True, lockstep=True, session=False, video=False))
    size = app.surface.get_size()
    canvas = pygame.Surface(size, 0, 32, XRGB_MASKS)
    app.run_headless(warmup)
    out = []
    for _ in range(frames):
        app.run_headless(1)
        out.append(bytes(frame_bytes(app.surface, canvas)))
    app.close()
    return out, size


def encode(frames: list[bytes], size: tuple[int, int], path: Path, params: str) -> float:
    """ffmpeg's CPU milliseconds per frame to encode `frames` to `path`."""
    from monitor.recorder import open_encoder

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    writer = open_encoder(path, size, 30, params)
    for frame in frames:
        writer.send(frame)
    writer.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / len(frames) * 1000


def psnr(path: Path, frames: list[bytes], size: tuple[int, int]) -> float:
    import imageio_ffmpeg

    w, h = size
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    values = []
    for i, decoded in enumerate(reader):
        if i % 10:
            continue
        got = np.frombuffer(decoded, np.uint8).reshape(h, w, 3).astype(np.float64)
        drawn = np.frombuffer(frames[i], np.uint8).reshape(h, w, 4)[..., 2::-1].astype(np.float64)  # B,G,R,x -> RGB
        values.append(10 * np.log10(255.0 ** 2 / max(np.mean((got - drawn) ** 2), 1e-12)))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    from lewm.bundled import BUNDLED_MODEL
    from monitor.recorder import ENCODER_PARAMS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(BUNDLED_MODEL), help="model folder the monitor runs")
    p.add_argument("--frames", type=int, default=300, help="window frames to encode (3.7 MB of memory each)")
    p.add_argument("--warmup", type=int, default=100, help="env steps run before the frames are kept")
    p.add_argument("--repeats", type=int, default=8, help="encodings of the frames per setting, round-robin")
    args = p.parse_args(argv)
    if args.frames < 10 or args.repeats < 1 or args.warmup < 0:
        p.error("--frames must be at least 10, --repeats at least 1, --warmup at least 0")
    settings = {name: ENCODER_PARAMS if params is None else params for name, params in SETTINGS.items()}
    frames, size = window_frames(args.model, args.frames, args.warmup)
    times: dict[str, list[float]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: Path(tmp) / f"{i}.mp4" for i, name in enumerate(settings)}
        for _ in range(args.repeats):
            for name, params in settings.items():
                times[name].append(encode(frames, size, files[name], params))
        print(f"{len(frames)} window frames of {size[0]} x {size[1]}, {args.repeats} encodings per setting, "
              f"x264 -preset veryfast -crf 23 -threads 1; load average {os.getloadavg()[0]:.1f} at the end")
        print(f"{'setting':32s} {'CPU ms/frame median':>20s} {'min':>6s} {'size MB':>8s} {'PSNR dB':>8s}")
        for name, params in settings.items():
            label = f"{name} ({params})" if name == "recorder" else name
            print(f"{label:32s} {np.median(times[name]):20.2f} {min(times[name]):6.2f} "
                  f"{files[name].stat().st_size / 1e6:8.2f} {psnr(files[name], frames, size):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
