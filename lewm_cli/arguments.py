"""The command line's value types: each checks its value while the command line is parsed, before any work starts,
so a bad value is one line naming the option ("lewm train: error: argument --steps: must be at least 1, got -2")
and exit code 2. Each type knows the values it accepts (a test drives every option with values outside them).
The parser (`Parser`) prints that one line instead of argparse's usage block."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

LARGEST = 2**31 - 1  # counts, sizes and seeds beyond it overflow the integers of numpy's and torch's generators


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, with where to read more."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Integer:
    """A whole number in [minimum, maximum]."""

    def __init__(self, minimum: int, maximum: int = LARGEST):
        self.minimum, self.maximum = minimum, maximum

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not self.minimum <= value <= self.maximum:
            raise argparse.ArgumentTypeError(f"must be {_between(self.minimum, self.maximum)}, got {value}")
        return value


class Number:
    """A finite number above `above` (or at least `minimum`) and at most `maximum`."""

    def __init__(self, *, above: float | None = None, minimum: float | None = None, maximum: float = math.inf):
        self.above, self.minimum, self.maximum = above, minimum, maximum

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if self.above is not None and value <= self.above:
            raise argparse.ArgumentTypeError(f"must be above {self.above:g}, got {value:g}")
        if self.minimum is not None and value < self.minimum:
            raise argparse.ArgumentTypeError(f"must be at least {self.minimum:g}, got {value:g}")
        if value > self.maximum:
            raise argparse.ArgumentTypeError(f"must be at most {self.maximum:g}, got {value:g}")
        return value


def _between(low: int, high: int) -> str:
    return f"at least {low}" if high == LARGEST else f"between {low} and {high}"


SEED = Integer(0)
COUNT = Integer(1)  # episodes, steps, frames, threads: at least one
THREADS = Integer(1, 1024)


class InputPath:
    """A path that must already hold a `kind`: "file", "folder", "dataset" (an HDF5 dataset of episodes) or
    "model" (a model folder with a readable config.json)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, text: str) -> Path:
        path = Path(text)
        if not path.exists():
            hint = ("; drop --model for the bundled model, or make one with `lewm train` then `lewm export`"
                    if self.kind == "model" else "")
            raise argparse.ArgumentTypeError(f"{text} does not exist{hint}")
        folder = self.kind in ("folder", "model")
        if folder and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
        if not folder and path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file")
        if self.kind == "model":
            _check_model(path)
        elif self.kind == "dataset":
            _check_dataset(path)
        return path


def _check_model(path: Path) -> None:
    from lewm.config import ModelConfig
    from lewm_errors import UserError

    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a model folder (it has no config.json)")
    try:
        ModelConfig.load(path / "config.json")
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _check_dataset(path: Path) -> None:
    from lewm_errors import UserError
    from scenes.dataset import EpisodeDataset

    try:
        EpisodeDataset(path).close()
    except UserError as err:
        raise argparse.ArgumentTypeError(" ".join(str(err).split())) from None


FILE, FOLDER, DATASET, MODEL = InputPath("file"), InputPath("folder"), InputPath("dataset"), InputPath("model")
