"""Train a pixel decoder for a model folder's frozen encoder: latent -> frame at the model's image size. The
encoder embeds every frame of --data once (cached in the run folder); only the decoder learns. Checkpoints go to
RUN/checkpoint every --checkpoint-every steps and when the time budget runs out; --resume continues from there.
At the end the decoder is saved into the model folder (decoder.safetensors and a "decoder" section in
config.json), or, with --out, into a copy of the model folder there. Then `lewm export --model DIR` writes
decoder.onnx for the monitor."""
from lewm_cli.arguments import COUNT, DATASET, MODEL, SEED, THREADS, Number

HELP = "train a pixel decoder (latent -> frame) on a frozen model"


def add_arguments(p):
    p.add_argument("--model", required=True, type=MODEL, help="model folder whose encoder the decoder learns to invert")
    p.add_argument("--data", required=True, type=DATASET,
                   help="HDF5 dataset made by `lewm collect` at the model's image size")
    p.add_argument("--run", default=None, help="run folder (checkpoint, latents cache, log.jsonl, settings.json); "
                                              "default: runs/decoder-<model folder name>")
    p.add_argument("--out", default=None, help="save into a copy of the model folder here instead of the folder")
    p.add_argument("--force", action="store_true", help="write into --out even if it already holds files")
    p.add_argument("--time-budget", type=Number(above=0), default=None, metavar="MINUTES",
                   help="stop with a checkpoint after this much training wall time (counted across --resume; the "
                        "learning rate decays over it)")
    p.add_argument("--steps", type=COUNT, default=100_000, help="most training steps (the time budget may end first)")
    p.add_argument("--batch-size", type=COUNT, default=32, help="frames per step")
    p.add_argument("--lr", type=Number(above=0), default=2e-3, help="peak learning rate (AdamW, warm-up then cosine)")
    p.add_argument("--width", type=COUNT, default=32, help="decoder channels on its seed grid")
    p.add_argument("--fine-width", type=COUNT, default=16, help="decoder channels on its doubled grid")
    p.add_argument("--patch", type=COUNT, default=4,
                   help="side of the pixel block each doubled-grid cell paints (image size / (2 x patch) is the "
                        "seed grid's side)")
    p.add_argument("--salience-weight", type=Number(minimum=0), default=8.0,
                   help="extra L1 weight of pixels that differ from the static background (agent, block)")
    p.add_argument("--edge-weight", type=Number(minimum=0), default=1.0, help="weight of the L1 on image gradients")
    p.add_argument("--val-fraction", type=Number(above=0, maximum=0.5), default=0.05,
                   help="share of the episodes held out (the last ones)")
    p.add_argument("--checkpoint-every", type=COUNT, default=200, help="steps between checkpoints")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the batch draws and the initial weights")
    p.add_argument("--threads", type=THREADS, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its checkpoint")


def run(args):
    import os
    import shutil
    from pathlib import Path

    import torch

    from lewm.config import ModelConfig
    from lewm.decoder.model import DecoderConfig, save_decoder
    from lewm.decoder.training import DecoderTrainSettings, train_decoder
    from lewm_errors import UserError
    from lewm_cli.output_path import check_output_folder

    model = Path(args.model)
    if args.out and Path(args.out).resolve() == model.resolve():
        raise UserError("--out is the model folder itself: drop --out to save into the model folder")
    if args.out:
        check_output_folder(args.out, "--out", force=args.force)  # before the training, not after it
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    run_dir = Path(args.run or f"runs/decoder-{model.resolve().name}")
    from lewm.decoder.training import CHECKPOINT

    if (run_dir / CHECKPOINT).exists() and not args.resume:
        raise UserError(f"--run {run_dir} already holds a decoder checkpoint: pass --resume to continue it, or choose "
                        f"another --run")
    if args.resume and not (run_dir / CHECKPOINT).exists():
        raise UserError(f"nothing to resume in --run {run_dir}: it holds no checkpoint folder")
    settings = DecoderTrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                    salience_weight=args.salience_weight, edge_weight=args.edge_weight,
                                    seed=args.seed, checkpoint_every=args.checkpoint_every,
                                    time_budget_minutes=args.time_budget, val_fraction=args.val_fraction)
    dconfig = DecoderConfig.for_model(ModelConfig.load(model / "config.json"), width=args.width,
                                      fine_width=args.fine_width, patch=args.patch)
    print(f"training a decoder for {model} on cpu ({torch.get_num_threads()} threads); run folder {run_dir}")
    decoder, facts = train_decoder(model, args.data, run_dir, dconfig, settings, resume=args.resume,
                                   log=lambda line: print(line, flush=True))
    target = model
    if args.out:
        target = Path(args.out)
        shutil.copytree(model, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("reference.npz*"))
    facts["trained"]["command"] = _command(args, run_dir)
    path = save_decoder(decoder, target, facts)
    print(f"decoder written to {path} (held-out PSNR {facts['trained']['held_out_psnr_db']:.2f} dB); "
          f"export it with `lewm export --model {target}`")
    return 0


def _command(args, run_dir) -> str:
    parts = ["lewm train-decoder", f"--model {args.model}", f"--data {args.data}", f"--run {run_dir}"]
    if args.time_budget:
        parts.append(f"--time-budget {args.time_budget:g}")
    for flag, value, default in (("--batch-size", args.batch_size, 32), ("--lr", args.lr, 2e-3),
                                 ("--width", args.width, 32), ("--fine-width", args.fine_width, 16),
                                 ("--patch", args.patch, 4),
                                 ("--salience-weight", args.salience_weight, 8.0),
                                 ("--edge-weight", args.edge_weight, 1.0), ("--seed", args.seed, 0)):
        if value != default:
            parts.append(f"{flag} {value:g}")
    return " ".join(parts)
