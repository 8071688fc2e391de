"""The `lewm` command: one dispatcher above the four packages (scenes, lewm, export, monitor).

Each subcommand is a module of lewm_cli.commands exposing HELP, add_arguments(parser) and run(args); those modules
import heavy libraries (torch, onnxruntime, pygame, rerun) only inside run(), so `lewm --help` stays fast and
torch-free. Only this package imports every layer; no layer imports it."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings

from lewm_cli.arguments import Parser
from lewm_cli.commands import (bench, collect, export, import_official, list_scenes, monitor, plan, probe, rerun,
                               train, train_decoder, train_ensemble, tune_predictor)
from lewm_errors import UserError
from lewm_cli.help_format import HelpFormatter

SUBCOMMANDS = {
    "scenes": list_scenes,
    "collect": collect,
    "train": train,
    "train-decoder": train_decoder,
    "train-ensemble": train_ensemble,
    "tune-predictor": tune_predictor,
    "import-official": import_official,
    "probe": probe,
    "export": export,
    "bench": bench,
    "monitor": monitor,
    "plan": plan,
    "rerun": rerun,
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lewm",
        description="Watch LeWM, a JEPA world model, think on PushT: collect data, train, probe, export, monitor.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__, formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class Terminated(Exception):
    """SIGTERM arrived: the command stops as at Ctrl-C (its finally blocks run) and exits 143."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit codes: 0 done, 2 bad input (one line), 130 Ctrl-C, 143 SIGTERM."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a bad command line (its one line is printed)
        return stop.code
    formatwarning = warnings.formatwarning  # a warning is one line, without the source line that raised it
    warnings.formatwarning = lambda message, category, *rest: f"lewm {args.command}: warning: {message}\n"
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return args._run(args) or 0
    except UserError as err:
        print(f"lewm {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        from lewm.extras import missing_extra
        message = missing_extra(err)
        if message is None:
            raise
        print(f"lewm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lewm {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print(f"lewm {args.command}: interrupted (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        warnings.formatwarning = formatwarning
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def one_line(err: Exception) -> str:
    """An error's message on one line (a library's message, e.g. h5py's, may span several)."""
    return " ".join(str(err).split())
