"""Recording a pygame surface to mp4 through imageio-ffmpeg (an ffmpeg process fed by a pipe).

Apart from the loop and the panels: the app hands it a surface per frame. close() finalises the file; the
app calls it on quit, window close, Ctrl-C and SIGTERM.
"""
from __future__ import annotations

from pathlib import Path

import pygame


class Recorder:
    def __init__(self, path: str | Path, size: tuple[int, int], fps: float):
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.frames = 0
        self._writer = imageio_ffmpeg.write_frames(
            str(self.path), size, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-preset", "veryfast", "-crf", "23", "-threads", "1"])
        self._writer.send(None)  # start ffmpeg

    def add(self, surface: pygame.Surface) -> None:
        if self._writer is None:
            return
        if surface.get_size() != self.size:
            surface = pygame.transform.scale(surface, self.size)
        self._writer.send(pygame.image.tobytes(surface, "RGB"))
        self.frames += 1

    def close(self) -> Path:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
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
