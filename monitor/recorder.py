"""Recording a pygame surface to mp4 through imageio-ffmpeg (an ffmpeg process fed by a pipe).

Apart from the loop and the panels: the app hands it a surface per frame. close() finalises the file; the
app calls it on quit, window close, Ctrl-C and SIGTERM. When the file cannot be written (a full disk, a directory,
no permission) ffmpeg ends and the failure is one UserError; close() then finalises what ffmpeg still can.
"""
from __future__ import annotations

import os
from pathlib import Path

import pygame

from scenes.errors import UserError


class Recorder:
    def __init__(self, path: str | Path, size: tuple[int, int], fps: float):
        import imageio_ffmpeg

        self.path = Path(path)
        self.size = size
        self.frames = 0
        self._writer = None
        if self.path.is_dir():
            raise UserError(f"cannot record to {self.path}: it is a directory; give a file name")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = imageio_ffmpeg.write_frames(
                str(self.path), size, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                macro_block_size=1, ffmpeg_log_level="quiet",
                output_params=["-preset", "veryfast", "-crf", "23", "-threads", "1", "-f", "mp4"])
            self._writer.send(None)  # start ffmpeg
        except (OSError, RuntimeError) as err:
            self._failed(err)

    def add(self, surface: pygame.Surface) -> None:
        if self._writer is None:
            return
        if surface.get_size() != self.size:
            surface = pygame.transform.scale(surface, self.size)
        try:
            self._writer.send(pygame.image.tobytes(surface, "RGB"))
        except (OSError, RuntimeError) as err:  # ffmpeg could not write and ended
            self._failed(err)
        self.frames += 1

    def _failed(self, err: BaseException):
        self._writer = None  # ffmpeg has ended: nothing more to finalise
        raise UserError(f"cannot write the video {self.path} after {self.frames} frames: "
                        f"{_write_problem(self.path)}") from None

    def close(self) -> Path:
        """Finalise the file; a failure of ffmpeg to finish it (a full disk) is a UserError."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception as err:  # imageio-ffmpeg raises several types when ffmpeg failed
                self._failed(err)
        return self.path

    @property
    def active(self) -> bool:
        return self._writer is not None


def count_frames(path: str | Path) -> int:
    """Frames in a video file (decodes it)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return sum(1 for _ in reader)


def _write_problem(path: Path) -> str:
    """Why ffmpeg could not write `path` (its own messages are silenced: they would flood the terminal), found by
    appending one byte ourselves (taken back if it went in), e.g. "No space left on device"."""
    try:
        size = path.stat().st_size if path.is_file() else None
        with open(path, "ab") as handle:
            handle.write(b"\0")
            handle.flush()
        if size is not None:
            os.truncate(path, size)
    except OSError as err:
        return err.strerror or str(err)
    return "the encoder stopped"
