"""Convert the released LeWM checkpoint (a folder with weights.pt and a Hydra config.json) into a model folder:
weights.safetensors, config.json with every size and the action statistics, and a model card stating where it
came from. The official files hold no action statistics: pass the dataset they were trained on with --dataset,
or the published PushT statistics are used (with a warning)."""
from __future__ import annotations

import argparse

from lewm_cli.arguments import FILE, FOLDER

HELP = "convert the official LeWM checkpoint into a model folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=FOLDER, help="folder holding the official weights.pt and config.json")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--dataset", type=FILE, default=None,
                        help="HDF5 dataset whose `action` column gives the action statistics")
    parser.add_argument("--force", action="store_true", help="write into --out even if it already holds files")


def run(args: argparse.Namespace) -> int:
    from lewm.official import import_official
    from lewm_cli.output_path import check_output_folder

    check_output_folder(args.out, "--out", force=args.force)
    out = import_official(args.folder, args.out, dataset=args.dataset)
    print(f"wrote {out}")
    return 0
