"""Per-frame latency of the model interface: torch eager vs ONNX Runtime fp32 vs ONNX Runtime int8.

One "frame" is what the monitor spends per env frame: one encode of 1 frame, plus one batched predict for
3 action streams x (H + 1) forecasts with H = 10, i.e. predict with batch 33 and T = history. The backends are timed
round-robin (frame i on each backend in turn) so that load from other processes on a shared machine hits them alike.
Runs on a given model folder (default the bundled one) and on presets with random weights (default: paper).
Where the folder has a pixel decoder, its decode() is timed too: the 5 look-ahead frames of one model step, one call.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lewm.bundled import BUNDLED_MODEL
from lewm.model_interface import DECODE

STREAMS = 3
HORIZON = 10
PREDICT_BATCH = STREAMS * (HORIZON + 1)
LOOKAHEAD = 5  # the monitor's decoded look-ahead frames per model step
TARGETS = {"ort_speedup_over_torch": 1.5, "paper_p50_ms": 50.0, "small_p50_ms": 5.0}


def default_int8_cache() -> Path:
    """Where the int8 selection of benchmarked models is kept between runs: $XDG_CACHE_HOME/lewm (~/.cache/lewm)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lewm"


def run_bench(model: str | Path | None = None, frames: int = 50, warmup: int = 5, presets: tuple[str, ...] = ("paper",),
              threads: int = 1, out: str | Path | None = None, torch_device: str = "cpu",
              int8_cache: str | Path | None = None) -> dict[str, Any]:
    """int8_cache: the folder for quantize_model_folder's selection_cache (None: scan the weight products anew).
    The presets' random weights are seeded, so a preset's selection is made once and then read back."""
    import torch

    torch.set_num_threads(threads)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": _ort_version()},
        "frames": frames, "warmup": warmup, "threads": threads, "torch_device": torch_device,
        "per_frame": f"encode(1 frame) + predict(batch {PREDICT_BATCH} = {STREAMS} streams x ({HORIZON}+1), "
                     "T = history)",
        "targets": TARGETS, "models": [], "notes": [],
    }
    folder = Path(model) if model is not None else BUNDLED_MODEL
    if model is not None and not folder.is_dir():
        from lewm_errors import UserError
        raise UserError(f"model folder not found: {folder}")
    if folder.is_dir():
        report["models"].append(bench_folder(folder, str(folder), frames, warmup, threads, torch_device, int8_cache))
    else:
        report["notes"].append(f"model folder {folder} does not exist (yet): its row is pending")
    for name in presets:
        with tempfile.TemporaryDirectory(prefix=f"lewm-bench-{name}-") as tmp:
            from export.onnx_export import export_model_folder, make_random_model_folder

            make_random_model_folder(name, tmp)
            export_model_folder(tmp, int8=False)
            report["models"].append(bench_folder(Path(tmp), f"{name} (random weights)", frames, warmup, threads,
                                                 torch_device, int8_cache))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def bench_folder(folder: Path, label: str, frames: int, warmup: int, threads: int,
                 torch_device: str = "cpu", int8_cache: str | Path | None = None) -> dict[str, Any]:
    """Export/quantise what is missing, then time torch eager, ORT fp32 and ORT int8 on the same inputs."""
    from export.engine import OnnxEngine
    from export.files import onnx_files
    from export.quantize import precision_agreement, quantize_model_folder
    from lewm.torch_backend import TorchBackend

    if not all(p.is_file() for p in onnx_files(folder, "fp32")):
        from export.onnx_export import export_model_folder
        export_model_folder(folder)
    int8_note = None
    if not all(p.is_file() for p in onnx_files(folder, "int8")):
        try:
            quantize_model_folder(folder, selection_cache=int8_cache)
        except Exception as err:  # an onnx/onnxruntime pair that cannot quantise this graph: bench the rest
            int8_note = f"{label}: int8 quantisation failed here, so it has no int8 row ({type(err).__name__}: {err})"
    backends = {
        "torch eager": TorchBackend.from_folder(folder, device=torch_device),
        "onnxruntime fp32": OnnxEngine.from_folder(folder, threads=threads),
    }
    if int8_note is None:
        backends["onnxruntime int8"] = OnnxEngine.from_folder(folder, precision="int8", threads=threads)
    config = backends["torch eager"].config
    rng = np.random.default_rng(0)
    s, t, d, a = config.image_size, config.history, config.latent_dim, config.action_block_dim
    images = rng.integers(0, 256, (warmup + frames, 1, s, s, 3), dtype=np.uint8)
    z = rng.standard_normal((PREDICT_BATCH, t, d)).astype(np.float32)
    actions = rng.standard_normal((PREDICT_BATCH, t, a)).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for i in range(warmup + frames):
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.encode(images[i])
            backend.predict(z, actions)
            if i >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    rows = []
    torch_p50 = float(np.percentile(times["torch eager"], 50))
    for name, backend in backends.items():
        ms = np.asarray(times[name])
        p50 = float(np.percentile(ms, 50))
        rows.append({"backend": name, "provider": backend.name.removeprefix("onnxruntime-"), "p50_ms": p50,
                     "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
                     "time_over_torch_p50": p50 / torch_p50, "speedup_over_torch_p50": torch_p50 / p50})
    agreement = None if int8_note else precision_agreement(folder, "int8", providers=["CPUExecutionProvider"])
    ort = next(r for r in rows if r["backend"] == "onnxruntime fp32")
    return {"model": label, "config": {"image_size": s, "latent_dim": d, "history": t,
                                       "enc_depth": config.enc_depth, "enc_width": config.enc_width},
            "rows": rows, "int8_agreement_with_fp32": agreement,
            "ort_fp32_over_torch_p50": ort["time_over_torch_p50"], "notes": [int8_note] if int8_note else [],
            "decode_rows": _time_decoder(backends, frames, warmup, d)}


def _time_decoder(backends: dict, frames: int, warmup: int, latent_dim: int) -> list[dict[str, Any]]:
    """Where the folder has a pixel decoder: ONNX Runtime decode() of one model step's look-ahead (LOOKAHEAD
    latents in one call, what the monitor decodes per model step) and of one latent, round-robin over precisions."""
    engines = {name: b for name, b in backends.items() if DECODE in b.capabilities and name != "torch eager"}
    z = np.random.default_rng(1).standard_normal((LOOKAHEAD, latent_dim)).astype(np.float32)
    times: dict[str, dict[str, list[float]]] = {name: {"step": [], "one": []} for name in engines}
    for i in range(warmup + frames):
        for name, engine in engines.items():
            for kind, batch in (("step", z), ("one", z[:1])):
                start = time.perf_counter()
                engine.decode(batch)
                if i >= warmup:
                    times[name][kind].append((time.perf_counter() - start) * 1e3)
    return [{"backend": name, "per_model_step_p50_ms": float(np.percentile(t["step"], 50)),
             "per_model_step_p99_ms": float(np.percentile(t["step"], 99)),
             "one_frame_p50_ms": float(np.percentile(t["one"], 50))} for name, t in times.items()]


def format_table(report: dict[str, Any]) -> str:
    lines = [f"per frame: {report['per_frame']}; {report['frames']} frames after {report['warmup']} warm-up, "
             f"{report['threads']} thread(s) per backend",
             f"{'model':<24} {'backend':<17} {'provider':<21} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
             f"{'time/torch':>10} {'speedup':>8}"]
    for entry in report["models"]:
        for row in entry["rows"]:
            lines.append(f"{entry['model']:<24} {row['backend']:<17} {row['provider']:<21} {row['p50_ms']:>8.2f} "
                         f"{row['p99_ms']:>8.2f} {row['mean_ms']:>8.2f} {row['time_over_torch_p50']:>10.2f} "
                         f"{row['speedup_over_torch_p50']:>7.2f}x")
    for entry in report["models"]:
        g = entry["int8_agreement_with_fp32"]
        if g is None:
            continue
        lines.append(f"{entry['model']}: int8 vs fp32 cosine mean {g['mean_cos']:.5f}, min {g['min_cos']:.5f} "
                     f"(encode min {g['encode_min_cos']:.5f}, predict min {g['predict_min_cos']:.5f}; "
                     f"target {g['target']})")
    for entry in report["models"]:
        for row in entry.get("decode_rows", []):
            lines.append(f"{entry['model']}: pixel decoder on {row['backend']}: {LOOKAHEAD} look-ahead frames per "
                         f"model step p50 {row['per_model_step_p50_ms']:.2f} ms "
                         f"(p99 {row['per_model_step_p99_ms']:.2f}), one frame p50 {row['one_frame_p50_ms']:.2f} ms")
    notes = report["notes"] + [note for entry in report["models"] for note in entry.get("notes", [])]
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
