"""Checking an output before the work that fills it starts: never overwrite silently, never fail at the end.

`check_output_file` refuses a path that is a directory, an existing file (unless `force`), and a place where a
file cannot be created (a read-only or missing parent that cannot be made, no permission), each with a one-line
UserError naming the option. It creates the parent folder, as the writers would, and leaves no file behind.
`check_output_folder` does the same for a folder a command fills (a model folder): a file there, or a folder that
already holds something, is refused unless `force`.
"""
from __future__ import annotations

import os
from pathlib import Path

from lewm_errors import UserError


def check_output_file(path: str | Path, option: str, force: bool = False) -> Path:
    """`path` as a Path, once it is known that a file can be written there (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name")
    if path.exists() and not force:
        raise UserError(f"{option} {path} exists; pass --force to overwrite it or choose another name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            path.unlink()
        elif not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        blocker = next((p for p in path.parents if p.exists()), None)
        reason = f"{blocker} is a file" if blocker is not None and not blocker.is_dir() else err.strerror or err
        raise UserError(f"cannot write {option} {path}: {reason}") from None
    return path


def check_output_folder(path: str | Path, option: str, force: bool = False) -> Path:
    """`path` as a Path, once it is known that a folder can be filled there (see the module docstring); an empty
    folder that exists is fine. Creates the folder, as the writers would."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file; give a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UserError(f"{option} {path} already holds files; pass --force to write into it or choose another "
                        "folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        raise UserError(f"cannot write {option} {path}: {err.strerror or err}") from None
    return path
