"""Bad input to any `lewm` subcommand: one line saying what was wrong, exit code 2, no traceback, nothing written.

Hypothesis drives every subcommand with values outside what each option accepts (read from the option's type:
negative, zero, NaN, infinite, huge, the wrong type, a missing path, a file where a folder is expected and the
reverse, corrupt files), plus the values only the command itself can judge (an unknown provider, scene, config
field or policy; an output that is a folder or a file)."""
import argparse
import contextlib
import io
import math
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lewm.bundled import BUNDLED_MODEL
from lewm_cli import SUBCOMMANDS, build_parser, main
from lewm_cli.arguments import LARGEST, InputPath, Integer, Number


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A folder holding a model folder (a copy of the bundled one's fp32 files), a small dataset at its image size,
    a file, a folder, a corrupt .h5 and a corrupt model folder; commands run in its `work` subfolder."""
    from lewm.config import ModelConfig
    from scenes.catalog import get_scene
    from scenes.dataset import DatasetWriter
    from scenes.episode import play_episode

    root = tmp_path_factory.mktemp("bad-input")
    model = root / "model"
    model.mkdir()
    for name in ("config.json", "weights.safetensors", "encoder.onnx", "predictor.onnx", "predictor.weights",
                 "rollout.onnx"):
        shutil.copy(BUNDLED_MODEL / name, model / name)
    size = ModelConfig.load(model / "config.json").image_size
    with DatasetWriter(root / "data.h5", size) as writer:
        for seed in (0, 1):
            episode = play_episode(get_scene("expert"), size, steps=30, seed=seed)
            writer.add_episode(episode.frames, episode.actions, episode.states)
    (root / "a-file.txt").write_text("text")
    (root / "a-folder").mkdir()
    (root / "official").mkdir()
    (root / "corrupt.h5").write_bytes(os.urandom(2048))
    (root / "corrupt-model").mkdir()
    (root / "corrupt-model" / "config.json").write_bytes(b"{\"image_size\": ")
    (root / "work").mkdir()
    return root


def baseline(name: str, root: Path) -> list[str]:
    """Valid arguments of each subcommand (small runs), to which one bad option is added."""
    model, data, work = str(root / "model"), str(root / "data.h5"), root / "work"
    return {
        "scenes": [],
        "collect": ["--out", str(work / "new.h5"), "--episodes", "1", "--steps", "5"],
        "train": ["--data", data, "--run", str(work / "run"), "--preset", "tiny", "--set", "image_size=128",
                  "--steps", "1"],
        "train-decoder": ["--model", model, "--data", data, "--run", str(work / "decoder-run"), "--steps", "1"],
        "train-ensemble": ["--model", model, "--data", data, "--run", str(work / "ensemble-run"), "--steps", "1"],
        "tune-predictor": ["--model", model, "--data", data, "--run", str(work / "tune-run"), "--steps", "1",
                           "--horizon", "1", "--branches", "4"],
        "import-official": [str(root / "official"), "--out", str(work / "imported")],
        "probe": ["latent", "--model", model, "--out", str(work / "probes"), "--episodes", "1", "--steps", "20"],
        "export": ["--model", model, "--no-verify"],
        "bench": ["--model", model, "--presets", "", "--frames", "1", "--warmup", "0"],
        "monitor": ["--model", model, "--headless", "--steps", "2", "--sessions", str(work / "sessions")],
        "plan": ["--model", model, "--out", str(work / "plan"), "--episodes", "1"],
        "rerun": [str(root / "a-folder"), "--out", str(work / "new.rrd")],
    }[name]


# Values only the command can judge, each with the option its one line must name.
JUDGED_BY_THE_COMMAND = {
    "scenes": [],
    "collect": [("--out", "{folder}"), ("--mix", "bogus=1"), ("--mix", "expert=abc")],
    "train": [("--run", "{file}"), ("--set", "nosuchkey=3"), ("--set", "image_size=abc"), ("--set", "image_size=0"),
              ("--set", "image_size"), ("--out", "{file}")],
    "train-decoder": [("--out", "{file}"), ("--out", "{model}")],
    "train-ensemble": [("--run", "{file}")],
    "tune-predictor": [("--run", "{file}"), ("--out", "{file}"), ("--out", "{model}"), ("--plan-solvers", "nosuch"),
                       ("--plan-solvers", "cem+x1")],
    "import-official": [("--out", "{file}")],
    "probe": [("--out", "{file}")],
    "export": [("--out", "{file}")],
    "bench": [("--out", "{folder}"), ("--presets", "nosuch")],
    "monitor": [("--provider", "Bogus"), ("--scene", "nosuch"), ("--record", "{folder}"), ("--screenshot", "{folder}"),
                ("--record", "{missing}.txt")],
    "plan": [("--out", "{file}"), ("--solver", "nosuch"), ("--solver", "cem+u-1"), ("--solver", "")],
    "rerun": [("--out", "{folder}"), ("--out", "{file}")],
}
EXTRA = {("export", "--out"): ["--random-weights", "--preset", "tiny"]}  # --out goes with --random-weights


def bad_values(action: argparse.Action) -> st.SearchStrategy[str]:
    """Values the option's type refuses."""
    kind = action.type
    words = st.sampled_from(["abc", "", "1e", "0x"])
    if isinstance(kind, Integer):
        out = [st.integers(max_value=kind.minimum - 1), st.integers(min_value=kind.maximum + 1, max_value=10**30),
               st.floats(allow_nan=True).map(str), words]
        return st.one_of(*out).map(str)
    if isinstance(kind, Number):
        low = kind.above if kind.above is not None else kind.minimum
        out = [st.sampled_from(["nan", "inf", "-inf", "abc", ""])]
        if low is not None:
            out.append(st.floats(max_value=low, allow_nan=False, allow_infinity=False, exclude_max=kind.minimum
                                 is not None).map(repr))
        if math.isfinite(kind.maximum):
            out.append(st.floats(min_value=kind.maximum, exclude_min=True, allow_infinity=False).map(repr))
        return st.one_of(*out)
    if isinstance(kind, InputPath):
        wrong = {"file": ["{folder}"], "folder": ["{file}"], "dataset": ["{folder}", "{file}", "{corrupt_h5}"],
                 "model": ["{file}", "{folder}", "{corrupt_model}"]}[kind.kind]
        return st.sampled_from(["{missing}/x", *wrong])
    assert action.choices is not None, action
    return st.sampled_from(["nosuch", ""])


def checked_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if isinstance(a.type, (Integer, Number, InputPath)) or a.choices]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_value_option_of_every_subcommand_checks_its_value():
    """An option that takes a number or a path has a checking type (else the property below would miss it)."""
    unchecked = [f"lewm {name} {action.option_strings[0]}" for name, parser in subparsers().items()
                 for action in parser._actions
                 if action.option_strings and action.nargs != 0 and action.type in (None, int, float, str)
                 and action.choices is None and action.dest not in UNTYPED]
    assert unchecked == []


# Options that take free text, each judged by its command (JUDGED_BY_THE_COMMAND) or by what it names.
UNTYPED = {"out", "run", "set", "mix", "presets", "torch_device", "int8_cache", "provider", "scene", "record",
           "screenshot", "sessions", "help", "solver", "plan_solvers"}


def snapshot(root: Path) -> dict:
    """Every path under `root`, with each file's size and time of change (a folder's time changes when a check
    makes and removes a trial file in it, which leaves nothing behind)."""
    return {str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def fill(value: str, root: Path) -> str:
    names = {"file": root / "a-file.txt", "folder": root / "a-folder", "missing": root / "missing",
             "model": root / "model", "corrupt_h5": root / "corrupt.h5", "corrupt_model": root / "corrupt-model"}
    return value.format(**{k: str(v) for k, v in names.items()})


def run_lewm(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_bad_values_are_one_line_exit_2_and_write_nothing(name, place, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    parser = subparsers()[name]
    generated = [st.tuples(st.just(a.option_strings[0] if a.option_strings else a.dest), bad_values(a))
                 for a in checked_options(parser)]
    judged = [st.just(case) for case in JUDGED_BY_THE_COMMAND[name]]
    unknown = st.just(("--no-such-option", "3"))
    cases = st.one_of(*generated, *judged, unknown)

    @settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(cases)
    def check(case):
        option, value = case
        value = fill(value, place)
        argv = [name, *baseline(name, place)]
        positional = not option.startswith("--")
        if positional:  # replace the positional of the baseline
            index = {"probe": 1, "import-official": 1}[name]
            argv[index] = value
        else:
            argv += [*EXTRA.get((name, option), []), f"{option}={value}" if value.startswith("-") else option,
                     *([] if value.startswith("-") else [value])]
        before = snapshot(place)
        code, out, err = run_lewm(argv, place / "work")
        lines = err.splitlines()
        assert code == 2, (argv, code, out, err)
        assert len(lines) == 1 and "Traceback" not in err, (argv, err)
        assert option in lines[0] or option.lstrip("-") in lines[0], (argv, lines[0])
        assert snapshot(place) == before, argv

    check()
