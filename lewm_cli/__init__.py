"""The `lewm` command: one dispatcher above the four packages (scenes, lewm, export, monitor).

Each subcommand is a module of lewm_cli.commands exposing HELP, add_arguments(parser) and run(args); those modules
import heavy libraries (torch, onnxruntime, pygame, rerun) only inside run(), so `lewm --help` stays fast and
torch-free. Only this package imports every layer; no layer imports it."""
from __future__ import annotations

import argparse
import sys

from lewm_cli.commands import (bench, collect, export, import_official, list_scenes, monitor, plan, probe, rerun,
                               train, train_decoder)
from lewm_errors import UserError
from lewm_cli.help_format import HelpFormatter

SUBCOMMANDS = {
    "scenes": list_scenes,
    "collect": collect,
    "train": train,
    "train-decoder": train_decoder,
    "import-official": import_official,
    "probe": probe,
    "export": export,
    "bench": bench,
    "monitor": monitor,
    "plan": plan,
    "rerun": rerun,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lewm",
        description="Watch LeWM, a JEPA world model, think on PushT: collect data, train, probe, export, monitor.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__, formatter_class=HelpFormatter)
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
    except ModuleNotFoundError as err:
        from lewm.extras import missing_extra
        message = missing_extra(err)
        if message is None:
            raise
        print(f"lewm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lewm {args.command}: interrupted", file=sys.stderr)
        return 130
