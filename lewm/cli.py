"""The `lewm` command. Each subcommand lives in its own module exposing HELP,
add_arguments(parser) and run(args); those modules import heavy libraries (torch,
onnxruntime, pygame) only inside run(), so `lewm --help` stays fast and torch-free."""
from __future__ import annotations

import argparse
import importlib
import sys

from scenes.errors import UserError

SUBCOMMANDS = {
    "scenes": "scenes.commands.list_scenes",
    "collect": "scenes.commands.collect",
    "train": "lewm.commands.train",
    "train-decoder": "lewm.commands.train_decoder",
    "import-official": "lewm.commands.import_official",
    "probe": "lewm.commands.probe",
    "export": "export.commands.export",
    "bench": "export.commands.bench",
    "monitor": "monitor.commands",
    "plan": "lewm.commands.plan",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lewm",
        description="Watch LeWM, a JEPA world model, think on PushT: collect data, train, probe, export, monitor.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_path in SUBCOMMANDS.items():
        module = importlib.import_module(module_path)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except UserError as err:
        print(f"lewm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lewm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
