"""The recorder hands ffmpeg the drawn pixels as they are, whatever the surface's layout, and the video shows the
window as drawn (within what H.264 at yuv420p loses), encoded with the monitor's x264 settings."""
import glob
import os
import sys
import threading

import imageio_ffmpeg
import numpy as np
import pygame
import pytest

from monitor.recorder import ENCODER_NICENESS, ENCODER_PARAMS, Recorder, count_frames, frame_bytes
from scenes.render import XRGB_MASKS

W, H = 64, 48


def _bgr(frame: bytes) -> np.ndarray:
    """(H, W, 3) RGB of a raw bgr0 frame."""
    return np.frombuffer(frame, np.uint8).reshape(H, W, 4)[..., 2::-1]


def test_every_surface_layout_is_handed_over_as_the_same_pixels():
    picture = np.random.default_rng(0).integers(0, 256, (W, H, 3), np.uint8)
    surfaces = [pygame.Surface((W, H), 0, 32, XRGB_MASKS), pygame.Surface((W, H), 0, 24),
                pygame.Surface((W, H), 0, 32, (0xFF, 0xFF00, 0xFF0000, 0)),
                pygame.Surface((2 * W, 2 * H), 0, 32, XRGB_MASKS)]
    canvas = pygame.Surface((W, H), 0, 32, XRGB_MASKS)  # the recorder's
    for surface in surfaces:
        shown = picture.repeat(2, 0).repeat(2, 1) if surface.get_width() == 2 * W else picture
        pygame.surfarray.blit_array(surface, shown)
        assert np.array_equal(_bgr(frame_bytes(surface, canvas)), picture.transpose(1, 0, 2))


def test_the_video_shows_the_drawn_window(make_app):
    app = make_app(steps=12)  # headless, lockstep, recording
    drawn = []
    add = app.recorder.add
    app.recorder.add = lambda surface: (drawn.append(pygame.surfarray.array3d(surface).transpose(1, 0, 2)),
                                        add(surface))
    app.run_headless(12)
    video = app.close()["video"]
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    assert len(frames) == len(drawn) == 12 and frames[0].shape == drawn[0].shape
    for seen, made in zip(frames, drawn):
        mse = np.mean((seen.astype(np.float64) - made) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 28  # dB; the text's colour edges lose most (4:2:0 chroma)
    settings = video.read_bytes()
    assert all(f"{setting}".encode() in settings for setting in ENCODER_PARAMS.split(":"))  # x264 writes its options


def _children() -> set[int]:
    found = set()
    for listing in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        found |= {int(pid) for pid in open(listing).read().split()}
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_encoder_yields_the_cores_to_the_monitor(tmp_path):
    before = _children()
    recorder = Recorder(tmp_path / "v.mp4", (W, H), 10)
    try:
        (ffmpeg,) = _children() - before
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, ffmpeg) == min(ours + ENCODER_NICENESS, 19)
        assert ours == os.getpriority(os.PRIO_PROCESS, os.getpid())  # the monitor's own threads keep theirs
        recorder.add(pygame.Surface((W, H), 0, 32, XRGB_MASKS))
    finally:
        recorder.close()
    assert recorder.frames == 1 and recorder.path.stat().st_size > 0


def test_frames_waiting_for_the_encoder_reuse_a_fixed_set_of_buffers(tmp_path):
    """However many frames pass, they travel in the same QUEUE buffers: the recorder's memory does not grow when
    ffmpeg falls behind (it once held a fresh copy per waiting frame)."""
    from monitor.recorder import QUEUE

    recorder = Recorder(tmp_path / "v.mp4", (W, H), 10)
    writer, sent = recorder._writer, []

    class Watched:  # the writer, noting which buffer each frame came in
        def send(self, frame):
            sent.append((id(frame), _bgr(bytes(frame))[0, 0].tolist()))
            return writer.send(frame)

        def close(self):
            return writer.close()

    recorder._writer = Watched()
    surface = pygame.Surface((W, H), 0, 32, XRGB_MASKS)
    for i in range(30):
        surface.fill((i, 2 * i, 3 * i))
        recorder.add(surface)
    recorder.close()
    assert len(sent) == 30 and len({buffer for buffer, _ in sent}) <= QUEUE
    assert [colour for _, colour in sent] == [[i, 2 * i, 3 * i] for i in range(30)]  # each frame as it was drawn


def test_a_live_recording_keeps_real_time(make_app, tmp_path, monkeypatch):
    """A window drawn at about 60 fps with jitter, then at 10 fps, records RECORD_FPS video frames per second of the
    run: slots are repeated when drawing is slow, never skipped (a recording once played 1.4x too fast)."""
    import types

    import monitor.app as monitor_app

    app = make_app(headless=False, lockstep=False, session=False)
    clock = [100.0]
    monkeypatch.setattr(monitor_app, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    app.start_recording(str(tmp_path / "live.mp4"))
    recorder = app.recorder
    steps = np.concatenate([np.random.default_rng(0).uniform(0.0164, 0.0170, 180), np.full(20, 0.1)])
    for step in steps:
        app.capture()
        clock[0] += step
    app.capture()
    assert abs(recorder.frames - (1 + steps.sum() * monitor_app.RECORD_FPS)) <= 1
    assert count_frames(app.stop_recording()) == recorder.frames
