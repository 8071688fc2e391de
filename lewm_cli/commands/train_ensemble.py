"""Train the uncertainty ensemble of a model folder on its frozen encoder's latents, save it into the folder
(ensemble.safetensors and an "ensemble" section in config.json, with the command and the held-out figures; and
"action_bounds", the range of the data's actions, which the planner keeps to) and export ensemble.onnx beside the
predictor, checked against torch. The encoder embeds every frame of --data once (cached in the run folder, shared with
`lewm train-decoder`); the members then train on (latent, action block, next latent) transitions in a few minutes on a
CPU. The engine then serves uncertainty(z, action blocks); the planner penalises it (`lewm plan --uncertainty-weight`),
the monitor shows it and `lewm probe uncertainty` measures it."""
from lewm_cli.arguments import COUNT, DATASET, MODEL, SEED, THREADS, Number

HELP = "train the uncertainty ensemble (small predictors on the frozen latents) and export ensemble.onnx"


def add_arguments(p):
    p.add_argument("--model", required=True, type=MODEL,
                   help="model folder (its encoder is frozen; the ensemble is saved in it)")
    p.add_argument("--data", required=True, type=DATASET,
                   help="HDF5 dataset made by `lewm collect` at the model's image size")
    p.add_argument("--run", default=None, help="run folder (latents cache); default: runs/ensemble-<model folder name>")
    p.add_argument("--members", type=COUNT, default=5, help="predictors in the ensemble")
    p.add_argument("--hidden", type=COUNT, default=128, help="hidden units of each member's two layers")
    p.add_argument("--steps", type=COUNT, default=4000, help="training steps (every member trains at each)")
    p.add_argument("--batch-size", type=COUNT, default=256, help="transitions per member per step")
    p.add_argument("--lr", type=Number(above=0), default=1e-3, help="peak learning rate (AdamW, cosine decay)")
    p.add_argument("--time-budget", type=Number(above=0), default=None, metavar="MINUTES", help="stop after this long")
    p.add_argument("--val-fraction", type=Number(above=0, maximum=0.5), default=0.05,
                   help="share of the episodes held out (the last ones)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the initial weights and the batch draws")
    p.add_argument("--threads", type=THREADS, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace an ensemble the model folder already has")


def run(args):
    import os
    from pathlib import Path

    import torch

    from export.ensemble_onnx import export_ensemble
    from lewm.config import ModelConfig
    from lewm.ensemble.model import EnsembleConfig, has_ensemble, save_ensemble
    from lewm.ensemble.training import EnsembleTrainSettings, train_ensemble
    from lewm_errors import UserError

    model = Path(args.model)
    if not (model / "config.json").is_file():
        raise UserError(f"no model folder at {model} (it has no config.json)")
    if not Path(args.data).is_file():
        raise UserError(f"no dataset at {args.data}; make one with `lewm collect --out {args.data} --image-size N`")
    run_dir = Path(args.run or f"runs/ensemble-{model.resolve().name}")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run {run_dir} is a file; give a folder")
    if has_ensemble(model) and not args.force:
        raise UserError(f"{model} already has an ensemble; pass --force to replace it")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    settings = EnsembleTrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                     val_fraction=args.val_fraction, time_budget_minutes=args.time_budget)
    econfig = EnsembleConfig.for_model(ModelConfig.load(model / "config.json"), members=args.members,
                                       hidden=args.hidden)
    print(f"training {args.members} predictors for {model} on cpu ({torch.get_num_threads()} threads); "
          f"run folder {run_dir}")
    ensemble, facts = train_ensemble(model, args.data, run_dir, econfig, settings,
                                     log=lambda line: print(line, flush=True))
    facts["trained"]["command"] = _command(args)
    bounds = facts.pop("action_bounds")
    save_ensemble(ensemble, model, facts)
    config = ModelConfig.load(model / "config.json")
    config.extra["action_bounds"] = {**bounds, "data": str(args.data)}  # the planner keeps to them
    config.save(model / "config.json")
    entry = export_ensemble(model)
    print(f"wrote {model}/ensemble.safetensors and {model}/{entry['file']} (ONNX Runtime vs torch max relative "
          f"|diff| {entry['verification']['max_relative_diff']:.1e})")
    return 0


def _command(args) -> str:
    parts = ["lewm train-ensemble", f"--model {args.model}", f"--data {args.data}"]
    for flag, value, default in (("--members", args.members, 5), ("--hidden", args.hidden, 128),
                                 ("--steps", args.steps, 4000), ("--batch-size", args.batch_size, 256),
                                 ("--lr", args.lr, 1e-3), ("--time-budget", args.time_budget, None),
                                 ("--seed", args.seed, 0)):
        if value != default:
            parts.append(f"{flag} {value:g}")
    return " ".join(parts)
