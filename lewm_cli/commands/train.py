"""Train a LeWM from an HDF5 dataset (ours or the official file) with next-embedding prediction
plus SIGReg. Checkpoints go to RUN/checkpoint (a model folder) every --checkpoint-every steps and
when the time budget runs out; --resume continues from there. With --out, the final model folder
is copied there. Uses the GPU when one is present.

Data-parallel training: `--nproc N` starts N processes on this machine (one per GPU, or CPU processes); across
machines, start it on each with `torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT
-m lewm_cli train ...` (same options everywhere). --batch-size, --steps and the time budget are those of the
whole run; SIGReg is computed on the whole batch; rank 0 writes the run folder."""
import argparse

from lewm.config import PRESETS
from lewm_cli.arguments import COUNT, DATASET, MODEL, SEED, THREADS, Integer, Number

HELP = "train a LeWM model (SIGReg) from a dataset"


def add_arguments(p):
    p.add_argument("--data", required=True, type=DATASET,
                   help="HDF5 dataset (lewm collect, or the official PushT file)")
    p.add_argument("--run", required=True, help="run folder (checkpoint, log.jsonl, settings.json)")
    p.add_argument("--preset", default="small", choices=tuple(PRESETS),
                   help="model size: small (CPU), paper (released), tiny (tests)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config fields of the preset, e.g. image_size=96 enc_depth=6")
    p.add_argument("--steps", type=COUNT, default=20000, help="optimiser steps in all (counted across --resume)")
    p.add_argument("--batch-size", type=COUNT, default=64, help="clips per batch")
    p.add_argument("--lr", type=Number(above=0), default=5e-4, help="peak learning rate (AdamW, warm-up then cosine)")
    p.add_argument("--warmup", type=Integer(0), default=500, help="steps of linear learning-rate warm-up")
    p.add_argument("--sigreg-weight", type=Number(minimum=0), default=None, metavar="LAMBDA",
                   help="weight of SIGReg in the loss (default: the paper's 0.09)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the clip sampling (batches drawn from seed and step)")
    p.add_argument("--checkpoint-every", type=COUNT, default=500, help="write a checkpoint every this many steps")
    p.add_argument("--time-budget", type=Number(above=0), default=None, metavar="MINUTES",
                   help="stop with a checkpoint after this much training wall time (counted across --resume)")
    p.add_argument("--schedule", choices=("steps", "time"), default="steps",
                   help="decay the learning rate over --steps, or over --time-budget (for a machine of unknown "
                        "speed: the run ends at whichever comes first)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the forward pass under bfloat16 autocast (1.3-1.5x faster on CPUs with AVX512-BF16 "
                        "or AMX, and on GPUs); weights and the optimiser stay float32")
    p.add_argument("--rollout-steps", type=Integer(1, 16), default=1, metavar="K",
                   help="K > 1 adds losses on 2..K-step predictions, made by feeding the model's predictions back "
                        "as a planner's rollout does (K at most the model's history, 3 in the presets)")
    p.add_argument("--reconstruction-weight", type=Number(minimum=0), default=0.0, metavar="W",
                   help="W > 0: a pixel decoder trained with the model paints every frame back from its latent, W "
                        "times its error in the loss, so that the latent keeps what the pixels show; the "
                        "checkpoint carries the decoder")
    p.add_argument("--threads", type=THREADS, default=None,
                   help="CPU threads per process (default: the cores shared out among this machine's processes)")
    p.add_argument("--nproc", type=Integer(1, 1024), default=1, metavar="N",
                   help="train data-parallel in N processes on this machine (one per GPU); launches torchrun's "
                        "agent, so do not combine it with torchrun")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its checkpoint")
    p.add_argument("--init", default=None, type=MODEL, metavar="MODEL_DIR",
                   help="fine-tune: start from this model folder's weights, sizes and action statistics (with a "
                        "fresh optimiser and schedule; --preset and --set do not apply)")
    p.add_argument("--out", default=None, help="copy the final model folder here")
    p.add_argument("--force", action="store_true", help="write into --out even if it already holds files")


def parse_overrides(pairs):
    """--set's KEY=VALUE pairs as config fields, each value of its field's type; a UserError naming the first
    pair that is not one."""
    import dataclasses
    import json
    import math

    from lewm.config import ModelConfig
    from lewm_errors import UserError

    fields = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != "extra"}
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        if key not in fields:
            raise UserError(f"--set {pair}: no config field {key!r}; the fields are {', '.join(fields)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        kind = fields[key].type
        if kind == "int":
            ok = type(value) is int and value >= 1
        elif kind == "float":
            ok = type(value) in (int, float) and math.isfinite(value) and 0 <= value < 1
        elif kind == "str":
            value, ok = text, True  # ModelConfig names the values it takes
        else:
            ok = isinstance(value, list) and all(type(v) in (int, float) and math.isfinite(v) for v in value)
        if not ok:
            wanted = {"int": "a whole number of at least 1", "float": "a number in [0, 1)"}.get(kind, "a list of "
                                                                                                  "numbers")
            raise UserError(f"--set {pair}: {key} must be {wanted}")
        out[key] = value
    return out


def run(args):
    import os
    import shutil
    from pathlib import Path

    import torch

    from lewm.config import ModelConfig, preset
    from lewm.training.loop import TrainSettings, train
    from lewm_cli.output_path import check_output_folder
    from lewm_errors import UserError

    if Path(args.run).exists() and not Path(args.run).is_dir():
        raise UserError(f"--run {args.run} is a file; give a folder")
    if args.init and args.set:
        raise UserError("--init takes the model's sizes from its folder: drop --set")
    if args.init and args.resume:
        raise UserError("--init starts a new run from a model folder and --resume continues one: pass only one")
    checkpoint = Path(args.run) / "checkpoint"
    if checkpoint.exists() and not args.resume:
        raise UserError(f"--run {args.run} already holds a checkpoint: pass --resume to continue it, or choose another "
                        f"--run")
    if args.resume and not checkpoint.exists() and not checkpoint.with_name("checkpoint.old").is_dir():
        raise UserError(f"nothing to resume in --run {args.run}: it holds no checkpoint folder")
    processes = args.nproc if args.nproc > 1 else int(os.environ.get("WORLD_SIZE", 1))
    if args.batch_size % processes:
        raise UserError(f"--batch-size {args.batch_size} does not split evenly over {processes} processes: make it a "
                        f"multiple of {processes}")
    if args.schedule == "time" and args.time_budget is None:
        raise UserError("--schedule time decays the learning rate over the time budget: give --time-budget MINUTES")
    # the model's sizes: the folder fine-tuned, the checkpoint continued (not --preset's), or the preset's
    if args.init or args.resume:
        resumed = checkpoint if checkpoint.exists() else checkpoint.with_name("checkpoint.old")  # a cut swap's
        config = ModelConfig.load(Path(args.init or resumed) / "config.json")
        for key, value in parse_overrides(args.set).items():
            if getattr(config, key) != value:
                raise UserError(f"--resume continues the run with its checkpoint's sizes: --set {key}={value} differs "
                                f"from its {key}={getattr(config, key)}; drop --set")
    else:
        config = preset(args.preset, **parse_overrides(args.set))
    if args.out and int(os.environ.get("RANK", 0)) == 0:
        check_output_folder(args.out, "--out", force=args.force)  # before the training, not after it
    if args.nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise UserError("--nproc starts its own processes: drop it when launching with torchrun")
        from lewm.training.launch import launch_on_this_machine

        launch_on_this_machine(args.nproc, run_rank, argparse.Namespace(**{**vars(args), "nproc": 1}))
        return
    is_main = int(os.environ.get("RANK", 0)) == 0
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local_processes))
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                             seed=args.seed, checkpoint_every=args.checkpoint_every,
                             time_budget_minutes=args.time_budget, schedule=args.schedule,
                             precision=args.precision, rollout_steps=args.rollout_steps,
                             reconstruction_weight=args.reconstruction_weight)
    if args.sigreg_weight is not None:
        settings.sigreg_weight = args.sigreg_weight
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if is_main:
        print(f"training on {device}" + (f", {world_size} processes" if world_size > 1 else ""))
    checkpoint = train(args.data, args.run, config, settings, resume=args.resume, init=args.init,
                       log=lambda line: print(line, flush=True))
    if not is_main:
        return
    if args.out:
        shutil.copytree(checkpoint, args.out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("trainer_state.pt"))
        print(f"model folder written to {args.out}")
    else:
        print(f"latest checkpoint: {checkpoint}")


def run_rank(args):
    """One process of `--nproc`: run() with the command's error handling (a one-line message, exit code 2)."""
    import os
    import sys

    from lewm_errors import UserError

    try:
        run(args)
    except UserError as err:
        print(f"lewm train (rank {os.environ.get('RANK', 0)}): error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
