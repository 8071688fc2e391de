"""Session folders: the video(s), a meta file, and an append-only per-step log that a crash cannot corrupt.

SESSIONS/<time>-<scene>-s<seed>/
  session.json  what ran: model folder and config, scene, seed, mode, provider, options (written at start)
  log.jsonl     one JSON object per env step (state, action, artifacts drawn, surprise per stream, the model's
                uncertainty about the frame's forecast where it serves one, forecast errors per horizon,
                copy-last baseline, provider, timings), written and flushed as each step's numbers arrive, so
                a kill loses at most the step in flight
  *.mp4         recordings (finalised on close, Ctrl-C and window close)

read_log() tolerates a truncated last line (what a kill mid-write leaves). A write that fails (a full disk, a
file-size limit) is cut back to the last whole line and reported as a UserError; the rows before it stay readable.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from lewm_errors import UserError

LOG = "log.jsonl"
META = "session.json"


def json_ready(value):
    """JSON-ready: arrays to lists, NaN to None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class Session:
    def __init__(self, root: str | Path, name: str, meta: dict):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = Path(root)
        folder = root / f"{stamp}-{name}"
        n = 1
        while folder.exists():
            n += 1
            folder = root / f"{stamp}-{name}-{n}"
        try:
            folder.mkdir(parents=True)
        except OSError as err:
            raise UserError(f"cannot create a session folder under {root}: {err.strerror or err}; "
                            f"choose a writable --sessions DIR") from None
        self.folder = folder
        self.meta = dict(meta, created=time.strftime("%Y-%m-%dT%H:%M:%S"), videos=[])
        self._write_meta()
        self._log = open(folder / LOG, "ab")
        self._whole = 0  # bytes of the log that end in a whole line
        self.rows = 0

    def _write_meta(self) -> None:
        tmp = self.folder / (META + ".tmp")
        try:
            tmp.write_text(json.dumps(json_ready(self.meta), indent=2) + "\n")
            tmp.replace(self.folder / META)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write the session file {self.folder / META}: {err.strerror or err}") from None

    def add_video(self, path: Path) -> None:
        self.meta["videos"].append(str(path))
        self._write_meta()

    def write(self, row: dict) -> None:
        if self._log.closed:
            return
        line = (json.dumps(json_ready(row), separators=(",", ":")) + "\n").encode("utf-8")
        try:
            self._log.write(line)
            self._log.flush()
        except OSError as err:
            self._cut_back()
            raise UserError(f"cannot write the session log {self.folder / LOG} after {self.rows} rows: "
                            f"{err.strerror or err}; the rows before it are kept") from None
        self._whole += len(line)
        self.rows += 1

    def _cut_back(self) -> None:
        """After a failed write: drop what the failed write left and close the log, so every line in it is whole."""
        try:
            self._log.close()
        except OSError:
            pass  # the unwritten rest of the failed line is what could not be flushed
        try:
            os.truncate(self.folder / LOG, self._whole)
        except OSError:
            pass

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()


def read_log(path: str | Path) -> list[dict]:
    """The rows of a session's log (a folder or the log file); a truncated or garbled last line is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise UserError(f"no session log at {path}")
    rows = []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # the last line, cut by a kill: drop it
                break
            raise UserError(f"{path} line {i + 1} is not JSON") from None
    return rows


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def column(rows: list[dict], key: str, dtype=np.float64) -> np.ndarray:
    """A log column as an array (None -> NaN)."""
    return np.array([[np.nan if v is None else v for v in np.atleast_1d(r.get(key))] if isinstance(r.get(key), list)
                     else (np.nan if r.get(key) is None else r[key]) for r in rows], dtype=dtype)
