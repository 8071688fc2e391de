"""Train a LeWM from an HDF5 dataset (ours or the official file) with next-embedding prediction
plus SIGReg. Checkpoints go to RUN/checkpoint (a model folder) every --checkpoint-every steps and
when the time budget runs out; --resume continues from there. With --out, the final model folder
is copied there. Uses the GPU when one is present."""
HELP = "train a LeWM model (SIGReg) from a dataset"


def add_arguments(p):
    p.add_argument("--data", required=True, help="HDF5 dataset (lewm collect, or the official PushT file)")
    p.add_argument("--run", required=True, help="run folder (checkpoint, log.jsonl, settings.json)")
    p.add_argument("--preset", default="small", help="model size: small (CPU), paper (released), tiny (tests)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config fields of the preset, e.g. image_size=96 enc_depth=6")
    p.add_argument("--steps", type=int, default=20000, help="optimiser steps in all (counted across --resume)")
    p.add_argument("--batch-size", type=int, default=64, help="clips per batch")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (AdamW, warm-up then cosine)")
    p.add_argument("--warmup", type=int, default=500, help="steps of linear learning-rate warm-up")
    p.add_argument("--sigreg-weight", type=float, default=None, metavar="LAMBDA",
                   help="weight of SIGReg in the loss (default: the paper's 0.09)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip sampling (batches drawn from seed and step)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="write a checkpoint every this many steps")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop with a checkpoint after this much training wall time (counted across --resume)")
    p.add_argument("--schedule", choices=("steps", "time"), default="steps",
                   help="decay the learning rate over --steps, or over --time-budget (for a machine of unknown "
                        "speed: the run ends at whichever comes first)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its checkpoint")
    p.add_argument("--init", default=None, metavar="MODEL_DIR",
                   help="fine-tune: start from this model folder's weights, sizes and action statistics (with a "
                        "fresh optimiser and schedule; --preset and --set do not apply)")
    p.add_argument("--out", default=None, help="copy the final model folder here")


def parse_overrides(pairs):
    import json

    from scenes.errors import UserError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args):
    import os
    import shutil

    import torch

    from lewm.config import PRESETS, ModelConfig, preset
    from lewm.train import TrainSettings, train
    from scenes.errors import UserError

    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; known presets: {', '.join(PRESETS)}")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.init and args.set:
        raise UserError("--init takes the model's sizes from its folder: drop --set")
    if args.init and args.resume:
        raise UserError("--init starts a new run from a model folder and --resume continues one: pass only one")
    if args.init:
        config = ModelConfig.load(f"{args.init}/config.json")
    else:
        config = preset(args.preset, **parse_overrides(args.set))
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                             seed=args.seed, checkpoint_every=args.checkpoint_every,
                             time_budget_minutes=args.time_budget, schedule=args.schedule)
    if args.sigreg_weight is not None:
        settings.sigreg_weight = args.sigreg_weight
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"training on {device}")
    checkpoint = train(args.data, args.run, config, settings, resume=args.resume, init=args.init,
                       log=lambda line: print(line, flush=True))
    if args.out:
        shutil.copytree(checkpoint, args.out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("trainer_state.pt"))
        print(f"model folder written to {args.out}")
    else:
        print(f"latest checkpoint: {checkpoint}")
