"""Turn a recorded session into a Rerun recording (.rrd), to scrub in the Rerun viewer: `rerun FILE.rrd`.

Every step of the session on one timeline (`step`: env steps one after another, episodes included): the frame the
model saw with its artifacts, the decoded look-ahead, surprise under the real, shuffled and zero actions, the horizon
forecasts' errors as they arrive and their running means, the PCA trace, the actions, the plans (plan mode), and the
events (episode starts, artifacts entering and leaving, teleports, stream and mode switches, dropped frames) as a
text log; the views laid out like the monitor's window. The values are the session log's; the pictures, running
means and look-ahead points, which the log does not keep, come from replaying the session on its own model, and the
command stops if that replay's numbers differ from the log's.

Needs the optional extra rerun-sdk: pip install -e '.[rerun]'. For a live view, `lewm monitor --rerun`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lewm_errors import UserError

HELP = "a recorded session as a Rerun recording (.rrd), to scrub in the Rerun viewer"
DEFAULT_NAME = "session.rrd"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", metavar="SESSION", help="a session folder written by `lewm monitor`")
    p.add_argument("--out", metavar="FILE.rrd", default=None,
                   help=f"where to write the recording (default: SESSION/{DEFAULT_NAME})")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    from monitor.replay import SessionReplay, replay_settings
    from lewm_cli.output_path import check_output_file

    folder = Path(args.session)
    if not folder.is_dir():
        raise UserError(f"no session folder at {folder}; give a folder that `lewm monitor` wrote (under sessions/)")
    out = Path(args.out) if args.out else folder / DEFAULT_NAME
    if out.suffix != ".rrd":
        raise UserError(f"--out {out}: a Rerun recording's name ends in .rrd")
    check_output_file(out, "--out", force=args.force)
    replay = SessionReplay(folder)
    if not replay.meta:
        raise UserError(f"{folder} has no session.json: the session's model and settings are unknown")
    settings = replay_settings(replay.meta, dict.fromkeys(("scene", "seed", "horizon", "precision",
                                                           "reference_episodes", "reference_steps", "model")))
    if settings["model"] is None:
        raise UserError(f"the session's model folder {replay.meta.get('model')} is not there; the recording needs "
                        f"it to replay the session")
    from monitor.rerun_recording import blueprint, build_recording, open_stream  # needs the extra: says so

    from export.backends import load_engine
    from lewm_cli.commands.monitor import DEFAULT_HORIZON, DEFAULT_REFERENCE, DEFAULT_SCENE, text_progress
    from monitor.reference import load_or_build

    engine = load_engine(settings["model"], None, settings["precision"] or "fp32")
    bank, _ = load_or_build(engine, settings["reference_episodes"] or DEFAULT_REFERENCE[0],
                            settings["reference_steps"] or DEFAULT_REFERENCE[1], text_progress)
    partial = out.with_name(out.name + ".partial")
    stream = open_stream(folder.name, live=False)
    stream.save(partial, default_blueprint=blueprint())
    try:
        steps = build_recording(replay, engine, bank, settings["scene"] or DEFAULT_SCENE,
                                settings["horizon"] or DEFAULT_HORIZON, stream)
        stream.flush()
        stream.disconnect()
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    print(f"wrote {out}: {steps} steps of {folder.name}; view it with: rerun {out}", file=sys.stderr)
    print(out)
    return 0
