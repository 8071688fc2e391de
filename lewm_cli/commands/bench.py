"""Per-frame latency of the model interface (one encode of 1 frame + one predict of batch 33 = 3 action streams x
11 forecasts, T = history), p50 and p99, for torch eager, ONNX Runtime fp32 and ONNX Runtime int8: on a model folder
(default the bundled one, skipped with a note if absent) and on presets with random weights (default paper),
made and exported in a temporary folder. Prints a table and the int8 vs fp32 agreement; --out writes the JSON."""
from __future__ import annotations

import argparse

from lewm.bundled import BUNDLED_MODEL
from lewm_cli.arguments import COUNT, MODEL, THREADS, Integer

HELP = "benchmark torch eager vs ONNX Runtime (fp32, int8) per frame"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=MODEL, default=BUNDLED_MODEL,
                        help=f"model folder (default: the bundled {BUNDLED_MODEL.name})")
    parser.add_argument("--frames", type=COUNT, default=50, help="timed frames per backend, after the warm-up")
    parser.add_argument("--warmup", type=Integer(0), default=5, help="untimed frames first")
    parser.add_argument("--presets", default="paper",
                        help="comma-separated presets to run with random weights ('' for none)")
    parser.add_argument("--threads", type=THREADS, default=1,
                        help="CPU threads per backend (torch's intra-op threads; ONNX Runtime runs slices of each "
                             "call's batch on them)")
    parser.add_argument("--torch-device", default="cpu",
                        help="device of the torch eager rows, e.g. cuda (ONNX Runtime picks its own provider)")
    parser.add_argument("--int8-cache", default=None, metavar="DIR",
                        help="folder that keeps each model's int8 selection (the weight products left in fp32) "
                             "between runs, keyed by its weights, so the sensitivity scan runs once "
                             "(default: $XDG_CACHE_HOME/lewm, else ~/.cache/lewm; '' to scan every time)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    from lewm_errors import UserError

    from lewm.config import PRESETS

    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise UserError(f"--presets: unknown preset {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    if args.torch_device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--torch-device {args.torch_device}: torch sees no CUDA device here; use cpu")
    from export.bench import default_int8_cache, format_table, run_bench
    from lewm_cli.output_path import check_output_file

    if args.out:
        check_output_file(args.out, "--out", force=args.force)

    report = run_bench(args.model, frames=args.frames, warmup=args.warmup, presets=presets, threads=args.threads,
                       out=args.out, torch_device=args.torch_device,
                       int8_cache=default_int8_cache() if args.int8_cache is None else args.int8_cache or None)
    print(format_table(report))
    if args.out:
        print(f"wrote {args.out}")
    return 0
