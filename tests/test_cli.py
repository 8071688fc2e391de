"""The `lewm` dispatcher: every subcommand's --help names each option once, with help, and shows a default only
when there is one."""
import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lewm_cli import SUBCOMMANDS, build_parser
from lewm_cli.help_format import HelpFormatter

ROOT = Path(__file__).resolve().parents[1]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_is_registered():
    assert list(subparsers()) == list(SUBCOMMANDS)


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_help_has_text_for_every_option_and_each_default_once(name):
    parser = subparsers()[name]
    for action in parser._actions:
        assert action.help, f"lewm {name} {'/'.join(action.option_strings) or action.dest}: no help"
    text = " ".join(parser.format_help().split())  # argparse wraps lines: undo it
    assert "(default: None)" not in text and "(default: False)" not in text
    for action in parser._actions:
        if action.option_strings and action.help is not argparse.SUPPRESS:
            shown = HelpFormatter(name)._expand_help(action)
            assert len(re.findall(r"\bdefault\b", shown, re.IGNORECASE)) <= 1, shown


def test_the_formatter_shows_a_real_default_and_nothing_else():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="frame size")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the scene's)")
    parser.add_argument("--model", required=True, default=None, help="model folder")
    parser.add_argument("--fast", action="store_true", help="go fast")
    text = " ".join(parser.format_help().split())
    assert "frame size (default: 128)" in text and "seed (default: the scene's) --model" in text
    assert "model folder --fast" in text and "go fast" in text and "None" not in text and "False" not in text


def test_python_m_lewm_cli_is_the_lewm_command():
    out = subprocess.run([sys.executable, "-m", "lewm_cli", "--help"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0 and "usage: lewm" in out.stdout
    for name in SUBCOMMANDS:
        assert name in out.stdout


def test_the_parser_builds_without_onnxruntime_or_torch():
    """`lewm --help` and every subcommand's help come from the parser alone: neither library may be needed."""
    code = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnxruntime"):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Blocked())
import argparse
from lewm_cli import build_parser
parser = build_parser()
sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
print(sum(len(p.format_help()) > 0 for p in sub.choices.values()), len(sub.choices))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    built, total = out.stdout.split()
    assert built == total == str(len(SUBCOMMANDS))


@pytest.mark.parametrize("argv", [["plan", "--out", "o"], ["probe", "all", "--out", "o"], ["bench"]])
def test_commands_that_take_a_model_default_to_the_bundled_one(argv):
    from lewm.bundled import BUNDLED_MODEL

    assert build_parser().parse_args(argv).model == BUNDLED_MODEL


def test_export_defaults_to_the_bundled_model_and_never_replaces_its_files_unforced(capsys):
    from lewm.bundled import BUNDLED_MODEL
    from lewm_cli import main

    before = {p.name: p.stat().st_mtime_ns for p in BUNDLED_MODEL.iterdir()}
    assert main(["export"]) == 2
    err = capsys.readouterr().err
    assert err == (f"lewm export: error: {BUNDLED_MODEL} already holds ONNX files; pass --force to export it again "
                   "(its ONNX files, int8 and fp16 copies included, are replaced)\n")
    assert {p.name: p.stat().st_mtime_ns for p in BUNDLED_MODEL.iterdir()} == before


def test_train_set_takes_the_named_choices_of_text_fields():
    """`--set stem=conv encoder=cnn` reach the config as text; an unknown choice is refused by the config, naming
    the choices."""
    from lewm.config import preset
    from lewm_cli.commands.train import parse_overrides
    from lewm_errors import UserError

    assert parse_overrides(["stem=conv", "encoder=cnn", "patch_size=32"]) == {"stem": "conv", "encoder": "cnn",
                                                                              "patch_size": 32}
    with pytest.raises(UserError, match="choose vit, cnn or keypoints"):
        preset("tiny", **parse_overrides(["encoder=resnet"]))
