"""Recording a pygame surface to mp4 through imageio-ffmpeg (an ffmpeg process fed by a pipe).

Apart from the loop and the panels: the app hands it a surface per frame. The frame is copied as raw 32-bit pixels into
one of QUEUE buffers made at the start (one memory copy of the surface's own bytes where it already has the layout
ffmpeg is told, else a blit into a canvas that has it; no per-pixel conversion in Python: ffmpeg converts) and a feeder
thread writes it to ffmpeg, so the loop never waits while ffmpeg encodes the frame before; it waits only when the
encoder is QUEUE frames behind, so no frame is ever dropped and the memory stays flat. close() finalises the file; the
app calls it on quit, window close, Ctrl-C and SIGTERM. When the file cannot be written (a full disk, a directory, no
permission) ffmpeg ends and the failure is one UserError, raised by the next add() or by close().

The encoder is x264 at `veryfast` with whole-pixel motion vectors and the cheapest motion search (ENCODER_PARAMS):
on the monitor's window (flat panels, thin lines, text) that takes about a fifth less of ffmpeg's time per frame
than the preset alone, at the same size and fidelity to the drawn frames (tools/bench_video_encoder.py measures
it; BENCHMARKS.md).
"""
from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from pathlib import Path

import pygame

from lewm_errors import UserError
from scenes.render import XRGB_MASKS

QUEUE = 4  # frames waiting for the encoder at most
PIXELS = "bgr0"  # how ffmpeg reads the bytes of a 32-bit XRGB surface (little-endian: B, G, R, unused)
ENCODER_PARAMS = "subme=0:me=dia"  # x264: whole-pixel motion only, diamond motion search
ENCODER_NICENESS = 10  # ffmpeg yields the cores to the monitor's threads (BENCHMARKS.md: +8-15% env steps/s)


def open_encoder(path: str | Path, size: tuple[int, int], fps: float, x264_params: str = ENCODER_PARAMS):
    """A started imageio-ffmpeg writer of PIXELS frames to an H.264 mp4 at `path` (send(bytes) per frame). On Linux
    ffmpeg runs at ENCODER_NICENESS: it takes the cores the monitor leaves, and the QUEUE bounds how far it lags."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="libx264", pix_fmt_in=PIXELS, pix_fmt_out="yuv420p", macro_block_size=1,
        ffmpeg_log_level="quiet",
        output_params=["-preset", "veryfast", "-x264-params", x264_params, "-crf", "23", "-threads", "1", "-f", "mp4"])
    failure: list[BaseException] = []

    def start() -> None:
        """ffmpeg starts on the first send, and a child inherits the niceness of the thread that starts it. On Linux
        niceness is per thread, so raising it in this short-lived thread lowers ffmpeg alone, never the monitor's
        threads; elsewhere it is the whole process's, so it is left as it is."""
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):
                os.nice(ENCODER_NICENESS)
        try:
            writer.send(None)
        except BaseException as err:  # raised in the caller's thread below
            failure.append(err)

    starter = threading.Thread(target=start, name="recorder-start")
    starter.start()
    starter.join()
    if failure:
        raise failure[0]
    return writer


def frame_surface(surface: pygame.Surface, canvas: pygame.Surface) -> pygame.Surface:
    """What ffmpeg reads of `surface`, at canvas's size: the surface itself when its bytes are laid out as PIXELS,
    unpadded; else the canvas (a 32-bit XRGB_MASKS surface) with the surface drawn into it."""
    size = canvas.get_size()
    if surface.get_size() != size:
        surface = pygame.transform.scale(surface, size)
    if (surface.get_bitsize(), surface.get_masks(), surface.get_pitch()) != (32, XRGB_MASKS, 4 * size[0]):
        canvas.blit(surface, (0, 0))
        surface = canvas
    return surface


def frame_bytes(surface: pygame.Surface, canvas: pygame.Surface) -> bytes:
    """The raw frame ffmpeg reads of `surface` (a copy)."""
    return frame_surface(surface, canvas).get_buffer().raw


class Recorder:
    def __init__(self, path: str | Path, size: tuple[int, int], fps: float):
        self.path = Path(path)
        self.size = size
        self.frames = 0
        self._writer = None
        if self.path.is_dir():
            raise UserError(f"cannot record to {self.path}: it is a directory; give a file name")
        self._canvas = pygame.Surface(size, 0, 32, XRGB_MASKS)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = open_encoder(self.path, size, fps)
        except (OSError, RuntimeError):
            self._writer = None
            self._failed()
        # QUEUE frame buffers made once and reused: the frames waiting for ffmpeg never take more memory than
        # these, however far behind it falls
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(QUEUE):
            self._free.put(bytearray(4 * size[0] * size[1]))
        self._queue: queue.Queue[bytearray | None] = queue.Queue()
        self._error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="recorder", daemon=True)
        self._feeder.start()

    def add(self, surface: pygame.Surface) -> None:
        if self._writer is None:
            return
        self._raise_error()
        buffer = self._free.get()  # waits while QUEUE frames are still with the encoder
        pixels = frame_surface(surface, self._canvas).get_buffer()
        memoryview(buffer)[:] = pixels
        del pixels  # unlocks the surface
        self._queue.put(buffer)
        self.frames += 1

    def close(self) -> Path:
        """Finalise the file; a failure of ffmpeg to write or finish it (a full disk) is a UserError."""
        if self._writer is not None:
            self._queue.put(None)
            self._feeder.join()
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception as err:  # imageio-ffmpeg raises several types when ffmpeg failed
                self._error = self._error or err
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
            self._free.put(frame)

    def _raise_error(self) -> None:
        if self._error is not None:
            self._error = None
            if self._writer is not None:  # ffmpeg has ended: stop feeding it
                self._queue.put(None)
                self._feeder.join()
                self._writer = None
            self._failed()

    def _failed(self):
        raise UserError(f"cannot write the video {self.path} after {self.frames} frames: "
                        f"{_write_problem(self.path)}") from None


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


def count_frames(path: str | Path) -> int:
    """Frames in a video file (decodes it)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return sum(1 for _ in reader)
