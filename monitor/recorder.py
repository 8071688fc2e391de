"""Recording a pygame surface to mp4 through imageio-ffmpeg (an ffmpeg process fed by a pipe).

Apart from the loop and the panels: the app hands it a surface per frame. The frame is copied as raw 32-bit
pixels (a memory copy, no per-pixel conversion: ffmpeg converts) and a feeder thread writes it to ffmpeg, so the
loop never waits while ffmpeg encodes the frame before; it waits only when the encoder is QUEUE frames behind,
so no frame is ever dropped. close() finalises the file; the app calls it on quit, window close, Ctrl-C and
SIGTERM.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import pygame

QUEUE = 4  # frames waiting for the encoder at most
PIXELS = "bgr0"  # how ffmpeg reads the bytes of a 32-bit XRGB surface (little-endian: B, G, R, unused)


class Recorder:
    def __init__(self, path: str | Path, size: tuple[int, int], fps: float):
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.frames = 0
        self._canvas = pygame.Surface(size, 0, 32, (0xFF0000, 0xFF00, 0xFF, 0))  # the byte order PIXELS names
        self._writer = imageio_ffmpeg.write_frames(
            str(self.path), size, fps=fps, codec="libx264", pix_fmt_in=PIXELS, pix_fmt_out="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-preset", "veryfast", "-crf", "23", "-threads", "1"])
        self._writer.send(None)  # start ffmpeg
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE)
        self._error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="recorder", daemon=True)
        self._feeder.start()

    def add(self, surface: pygame.Surface) -> None:
        if self._writer is None:
            return
        self._raise_error()
        if surface.get_size() != self.size:
            surface = pygame.transform.scale(surface, self.size)
        self._canvas.blit(surface, (0, 0))
        self._queue.put(self._canvas.get_buffer().raw)
        self.frames += 1

    def close(self) -> Path:
        if self._writer is not None:
            self._queue.put(None)
            self._feeder.join()
            writer, self._writer = self._writer, None
            writer.close()
            self._raise_error()
        return self.path

    @property
    def active(self) -> bool:
        return self._writer is not None

    def _feed(self) -> None:
        while (frame := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.send(frame)
                except BaseException as err:  # surfaced to the loop by its next add() or close()
                    self._error = err

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def count_frames(path: str | Path) -> int:
    """Frames in a video file (decodes it)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return sum(1 for _ in reader)
