"""Tune a model folder's predictor for planning, on its frozen encoder's latents: one-step forecasts and open-loop
rollouts of --horizon blocks (from one real latent, the planner's, and from a full history window), on the dataset's
episodes, on random-action branches simulated from their states and, with --plans, on branches that follow the model's
own plans from those states (lewm/training/predictor_tuning.py). The encoder, and with it the latent space, the
decoder and the ensemble, stay as they are. Latents, branches and plans are made once and cached in the run folder;
checkpoints go to RUN/checkpoint every --checkpoint-every steps and when the time budget runs out, and --resume
continues from there. At the end the tuned model is written to --out (default RUN/model): a copy of the model folder
with the new weights, a "predictor_tuning" section in config.json (command and held-out figures), and its ONNX files
exported again in the precisions the folder had."""
from lewm_cli.arguments import COUNT, DATASET, MODEL, SEED, THREADS, Integer, Number

HELP = "tune the predictor for planning (rollout losses, random-action branches, its own plans) on the frozen encoder"


def add_arguments(p):
    p.add_argument("--model", required=True, type=MODEL, help="model folder whose predictor is tuned (left as it is)")
    p.add_argument("--data", required=True, type=DATASET,
                   help="HDF5 dataset made by `lewm collect` (its episodes, and the states the branches start from)")
    p.add_argument("--run", default=None, help="run folder (latents and branches caches, checkpoint, log.jsonl, "
                                              "settings.json); default: runs/tune-<model folder name>")
    p.add_argument("--out", default=None, help="model folder to write the tuned model to (default: RUN/model)")
    p.add_argument("--force", action="store_true", help="write into --out even if it already holds files")
    p.add_argument("--time-budget", type=Number(above=0), default=None, metavar="MINUTES",
                   help="stop with a checkpoint after this much training wall time (counted across --resume; the "
                        "learning rate decays over it)")
    p.add_argument("--steps", type=COUNT, default=100_000, help="most training steps (the time budget may end first)")
    p.add_argument("--batch-size", type=COUNT, default=256, help="clips per step")
    p.add_argument("--lr", type=Number(above=0), default=3e-4, help="peak learning rate (AdamW, warm-up then cosine)")
    p.add_argument("--horizon", type=COUNT, default=5, help="blocks of each open-loop rollout (the planner's horizon)")
    p.add_argument("--branches", type=Integer(0), default=20_000,
                   help="random-action branches to simulate from the dataset's states (0: the episodes alone)")
    p.add_argument("--branch-share", type=Number(minimum=0, maximum=0.95), default=0.3,
                   help="share of each batch drawn from the branches")
    p.add_argument("--plans", type=Integer(0), default=0,
                   help="branches that follow the model's own plans toward the episode's latent --horizon model steps "
                        "on, simulated from the dataset's states (about 2 s each on a 2-core CPU: 700 took 24 minutes)")
    p.add_argument("--plan-share", type=Number(minimum=0, maximum=0.95), default=0.2,
                   help="share of each batch drawn from the plans (with --plans)")
    p.add_argument("--plan-solvers", default="cem,icem+d0.3",
                   help="planners that make the plans, in turn, as `lewm plan --solver` names them")
    p.add_argument("--val-fraction", type=Number(above=0, maximum=0.5), default=0.05,
                   help="share of the episodes held out (the last ones, and the branches from their states)")
    p.add_argument("--checkpoint-every", type=COUNT, default=500, help="steps between checkpoints")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the branches' actions and the batch draws")
    p.add_argument("--threads", type=THREADS, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its checkpoint")


def run(args):
    import argparse
    import os
    import shutil
    from pathlib import Path

    import torch

    from lewm.checkpoint import save_model_folder
    from lewm.config import ModelConfig
    from lewm.training.predictor_tuning import TuneSettings, tune_predictor
    from lewm_cli.commands import export
    from lewm_cli.output_path import check_output_folder
    from lewm_errors import UserError

    settings = TuneSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, horizon=args.horizon,
                            branches=args.branches, branch_share=args.branch_share if args.branches else 0.0,
                            plans=args.plans, plan_share=args.plan_share if args.plans else 0.0,
                            plan_solvers=args.plan_solvers,
                            seed=args.seed, val_fraction=args.val_fraction, checkpoint_every=args.checkpoint_every,
                            time_budget_minutes=args.time_budget)
    model = Path(args.model)
    run_dir = Path(args.run or f"runs/tune-{model.resolve().name}")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run {run_dir} is a file; give a folder")
    out = Path(args.out or run_dir / "model")
    if out.resolve() == model.resolve():
        raise UserError("--out is the model folder itself: write the tuned model elsewhere, then compare the two")
    check_output_folder(out, "--out", force=args.force)  # before the tuning, not after it
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    print(f"tuning the predictor of {model} on cpu ({torch.get_num_threads()} threads); run folder {run_dir}")
    tuned, facts = tune_predictor(model, args.data, run_dir, settings, resume=args.resume,
                                  processes=args.threads, log=lambda line: print(line, flush=True))
    shutil.copytree(model, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("reference.npz*"))
    config = ModelConfig.load(model / "config.json")
    config.extra["predictor_tuning"] = {**facts, "command": _command(args, run_dir)}
    save_model_folder(tuned, config, out)
    print(f"tuned model written to {out}; exporting its ONNX files again")
    if export.run(argparse.Namespace(model=out, opset=18, int8=(model / "encoder.int8.onnx").exists(),
                                     fp16=(model / "encoder.fp16.onnx").exists(), no_verify=False, preset=None,
                                     random_weights=False, out=None, force=True)):
        return 1
    after = facts["held_out_rollout_error_over_copy_last"]["after"]
    print(f"{out} is ready; its held-out rollout error over copy-last's at the last of {settings.horizon} blocks: "
          + ", ".join(f"{name} {errors[-1]:.3f}" for name, errors in after.items()))
    return 0


def _command(args, run_dir) -> str:
    parts = ["lewm tune-predictor", f"--model {args.model}", f"--data {args.data}", f"--run {run_dir}"]
    for flag, value, default in (("--time-budget", args.time_budget, None), ("--steps", args.steps, 100_000),
                                 ("--batch-size", args.batch_size, 256), ("--lr", args.lr, 3e-4),
                                 ("--horizon", args.horizon, 5), ("--branches", args.branches, 20_000),
                                 ("--branch-share", args.branch_share, 0.3), ("--plans", args.plans, 0),
                                 ("--plan-share", args.plan_share, 0.2), ("--plan-solvers", args.plan_solvers,
                                                                          "cem,icem+d0.3"), ("--seed", args.seed, 0)):
        if value != default:
            parts.append(f"{flag} {value:g}" if isinstance(value, (int, float)) else f"{flag} {value}")
    return " ".join(parts)
