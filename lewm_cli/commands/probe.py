"""Run the probes of a model folder: latent structure, prediction horizon, surprise under an injected artifact,
action conditioning, a linear physics probe, a pose probe (ridge and MLP reads of agent xy, block xy and block angle
from still frames of the reset distribution and of the agent touching the block), violation of expectation
(surprise at a teleported or recoloured block against the same frames of the episode's clean twin), and (where the
model folder has a pixel decoder) what the decoded forecasts picture. Each writes OUT/<probe>.json (numbers, with
their definitions) and OUT/<probe>.png (the published layout); `all` runs every probe and writes OUT/summary.json.

Episodes: the named scene "expert" (surprise: "seed-artifact") with held-out seeds SEED, SEED + 1, ... (the
training data uses seeds below 1,000,000), or the first episodes of --dataset. The physics probe is tested on those
expert episodes and fitted on --fit-episodes other expert episodes (seeds SEED + 100000, ...). The voe probe
replays the expert episodes with one event each, drawn with SEED. The pose probe scores --frames still frames drawn
from seeds SEED, SEED + 1, ... (the last quarter with the agent touching the block) and fits on --fit-frames others
(seeds SEED + 100000, ...), with or without --dataset. The uncertainty probe (where the model folder has an
ensemble, `lewm train-ensemble`) ranks its uncertainty against the next one-step error, off-distribution states
against typical ones, and novelty against ordinary surprise. A second --seed range (e.g. 2000000) repeats every probe on
other held-out episodes and frames.

To score a training checkpoint's pose: lewm probe pose --model runs/NAME/checkpoint --out runs/NAME/pose"""
from __future__ import annotations

import argparse

from lewm.bundled import BUNDLED_MODEL
from lewm_cli.arguments import COUNT, DATASET, MODEL, SEED, THREADS, Integer

HELP = ("probe a model: latent structure, horizon, surprise, actions, physics, pose, violation of expectation, pixel "
        "decoder, uncertainty")
MIN_FRAMES = 8  # the pose probe scores touching frames apart: a quarter of 8 is 2, the fewest R^2 takes
MIN_FIT_FRAMES = 40
CHOICES = ("latent", "horizon", "surprise", "actions", "physics", "pose", "voe", "decoder", "uncertainty", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("probe", choices=CHOICES, help="which probe to run")
    p.add_argument("--model", type=MODEL, default=BUNDLED_MODEL,
                   help=f"model folder (config.json + weights; default: the bundled {BUNDLED_MODEL.name})")
    p.add_argument("--out", required=True, help="folder for the JSON and PNG files")
    p.add_argument("--episodes", type=COUNT, default=20,
                   help="episodes per probe (physics: its test episodes)")
    p.add_argument("--fit-episodes", type=COUNT, default=200,
                   help="expert episodes the physics probe's linear regression is fitted on")
    p.add_argument("--frames", type=Integer(MIN_FRAMES), default=1000,
                   help="still frames the pose probe scores (a quarter of them with the agent touching the block)")
    p.add_argument("--fit-frames", type=Integer(MIN_FIT_FRAMES), default=4000,
                   help="still frames the pose probe's ridge and MLP probes are fitted on (seeds apart from the "
                        "scored ones)")
    p.add_argument("--seed", type=SEED, default=1_000_000,
                   help="first held-out episode seed (voe: also seeds its event draws)")
    p.add_argument("--steps", type=COUNT, default=None, help="env steps per episode (default: the scene's length)")
    p.add_argument("--dataset", type=DATASET, default=None,
                   help="take episodes from this HDF5 dataset instead of scenes")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (the weights) or onnx (export.engine.OnnxEngine, the monitor's engine)")
    p.add_argument("--horizon", type=COUNT, default=20,
                   help="longest forecast, in model steps (the decoder probe: at most 10, and at most what the "
                        "episodes fit from a full context)")
    p.add_argument("--threads", type=THREADS, default=None,
                   help="CPU threads for the backend (torch's intra-op threads, or onnx's batch slices; default: the "
                        "backend's own: torch all cores, ONNX Runtime 1)")
    p.add_argument("--force", action="store_true", help="overwrite the probe's files in --out if they exist")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from export.backends import load_backend
    from lewm.probes.common import jsonable
    from lewm.probes.decoder import decoder_for
    from lewm.probes.pose import FIT_SEED_OFFSET
    from lewm.probes.suite import HEADLINES, PROBES, ProbeSettings, run_all, run_probe
    from lewm.model_interface import UNCERTAINTY
    from lewm_errors import UserError
    from lewm_cli.output_path import check_output_file

    if not args.frames <= FIT_SEED_OFFSET:
        raise UserError(f"--frames must be between {MIN_FRAMES} and {FIT_SEED_OFFSET} (the fitting frames' seeds "
                        f"start at SEED + {FIT_SEED_OFFSET}); got {args.frames}")
    model = load_backend(args.model, args.backend, threads=args.threads)
    pixel_decoder = decoder_for(model)
    if args.probe == "decoder" and pixel_decoder is None:
        what = "decoder.onnx (run `lewm export`)" if args.backend == "onnx" else "pixel decoder"
        raise UserError(f"{args.model} has no {what}; train one with `lewm train-decoder --model {args.model} "
                        "--data DATA.h5`")
    if args.probe == "uncertainty" and UNCERTAINTY not in model.capabilities:
        raise UserError(f"{args.model} has no uncertainty ensemble; train one with `lewm train-ensemble --model "
                        f"{args.model} --data DATA.h5`")
    extras = [name for name, present in (("uncertainty", UNCERTAINTY in model.capabilities),
                                         ("decoder", pixel_decoder is not None)) if present]
    probes = [*PROBES, *extras] if args.probe == "all" else [args.probe]
    written = (["summary.json"] if args.probe == "all" else []) + [f"{name}.{ext}" for name in probes
                                                                   for ext in ("json", "png")]
    out = Path(args.out)
    for name in written:  # before the probes run, not after
        check_output_file(out / name, "--out", force=args.force)
    settings = ProbeSettings(episodes=args.episodes, fit_episodes=args.fit_episodes, seed=args.seed,
                             steps=args.steps, dataset=args.dataset, horizon=args.horizon, frames=args.frames,
                             fit_frames=args.fit_frames)
    if args.probe == "all":
        headline = run_all(model, settings, out, model_name=str(args.model), backend=args.backend,
                           pixel_decoder=pixel_decoder)
    else:
        headline = HEADLINES[args.probe](run_probe(args.probe, model, settings, out, pixel_decoder=pixel_decoder))
    print(json.dumps(jsonable(headline), indent=2))
    print(f"wrote {', '.join(written)} in {out}")
    return 0
