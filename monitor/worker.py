"""Inference off the render loop: one worker thread owns the LatentStream and feeds it frames in order.

Hand-off. The simulator submits one FrameItem per env step (the frame the model sees and the action taken after it) into
a slot that holds ONE item. The worker takes it, runs stream.step (one encoder call and one batched predictor call) and
publishes (item, record, latency), in submission order, for the loop to draw and log. Nothing is ever queued without
bound.

When the model falls behind. If the simulator submits while the slot still holds an item the worker has not
started, that older item is DROPPED: counted, and reported to the loop (logged with "dropped": true and no
numbers). A dropped frame is a GAP in the stream, and the stream needs every frame in order (a forecast made
at frame s is checked against frame s + 5h, with the actions in between). So the worker RESETS the stream at
the first frame after a gap: no surprise, forecast error or PCA path ever spans a missing frame, and the
charts show nothing until the context has re-filled (history x frameskip frames). Every number shown is
therefore the same number the offline probes would compute for the frames that were processed.

Lockstep (--lockstep, headless runs, tests): submit() waits until the worker has finished the item, so the
simulator never runs ahead and nothing is dropped (deterministic recordings). The "as fast as possible" speed
also submits only when the worker is idle, so it never drops either.

A new episode (reset, new seed, mode switch to replay) is marked on its first item (`episode_start`); the
worker resets the stream there too. A replay re-drops what the recording dropped: an item marked `dropped` is
published as dropped without reaching the stream, so the stream resets after it exactly where it did live.

Each item carries the action stream that was active when it was submitted; the worker computes its record
under that stream, so the log says which stream a record's look ahead used, whenever it is drained.

Pictures. With a `decoder` (the engine, where the model folder has a pixel decoder), the worker also decodes the
look-ahead forecasts into frames, once per model step (when the stream renews them), and any latents the loop
asked for with request_decode (a spike's prediction, a new plan's end), batched into the same call.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from lewm.stream import ACTION_STREAMS, LatentStream, StreamRecord


@dataclass
class FrameItem:
    seq: int  # submission number (consecutive; a gap means frames were dropped)
    env_step: int
    frame: np.ndarray  # (S, S, 3) uint8, what the model sees
    action: np.ndarray | None  # raw action taken after the frame (None: none, e.g. the last replay row)
    episode_start: bool = False
    active_stream: str = "real"  # the stream the look ahead of this frame's record follows
    dropped: bool = False  # a replay of a frame the recording dropped: published as dropped, not computed
    info: dict = field(default_factory=dict)  # what the log keeps about the step (state, artifacts, mode, ...)
    submitted: float = 0.0


@dataclass
class Result:
    item: FrameItem
    record: StreamRecord | None  # None: the item was dropped
    latency: float = 0.0  # seconds in stream.step
    stream_step: int = -1  # the stream's frame index (0 at each reset)
    lookahead_frames: np.ndarray | None = None  # (F, S, S, 3) uint8: the look-ahead decoded, when renewed here
    decoded: dict = field(default_factory=dict)  # tag -> (S, S, 3) uint8 for the request_decode calls served
    decode_latency: float = 0.0  # seconds decoding


class InferenceWorker:
    def __init__(self, stream: LatentStream, lockstep: bool = False, decoder=None):
        self.stream = stream
        self.lockstep = lockstep
        self.decoder = decoder  # decode(z (N, D)) -> uint8 frames, or None
        self._requests: dict = {}  # tag -> latent (D,), decoded with the next frame
        self._decoded_lookahead = None  # the look-ahead array last decoded
        self.dropped = 0
        self.processed = 0
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._slot: FrameItem | None = None
        self._busy = False
        self._done_seq = -1
        self._last_seq = None
        self._results: deque[Result] = deque()
        self._drops: list[Result] = []  # dropped frames, held until the frame before them is published
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="lewm-inference", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the simulator's side
    def submit(self, item: FrameItem, wait: bool = True) -> None:
        """Hand `item` to the worker; in lockstep, wait until it is done (unless `wait` is False: the caller then
        waits with wait_idle() before the next submit, doing other work meanwhile)."""
        item.submitted = time.perf_counter()
        with self._cond:
            self._raise_error()
            self.dropped += item.dropped  # a replay's re-dropped frame counts as the recording counted it
            if self._slot is not None:  # the model fell behind: the waiting frame is dropped
                self.dropped += 1
                if self._busy:  # published after the frame in flight, which is older
                    self._drops.append(Result(self._slot, None))
                else:  # nothing older is unpublished: it goes out now, before any newer frame
                    self._results.append(Result(self._slot, None))
            self._slot = item
            self._cond.notify_all()
            if self.lockstep and wait:
                while self._done_seq < item.seq and self.error is None:
                    self._cond.wait(0.5)
                self._raise_error()

    def idle(self) -> bool:
        with self._cond:
            return self._slot is None and not self._busy

    def wait_idle(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        with self._cond:
            while (self._slot is not None or self._busy) and self.error is None and time.monotonic() < end:
                self._cond.wait(0.05)
            self._raise_error()

    def results(self) -> list[Result]:
        """Everything finished (or dropped) since the last call, in frame order; once all is handed out, the
        worker's error, if it failed."""
        with self._cond:
            out = list(self._results)
            self._results.clear()
            if not out:
                self._raise_error()
        return out

    def request_decode(self, tag, z: np.ndarray) -> None:
        """Decode latent z (D,) with the next frame processed; the picture comes back in that Result's `decoded`."""
        with self._cond:
            self._requests[tag] = np.asarray(z, np.float32)

    def stop(self) -> None:
        """End the thread; an error it ended with is raised here (after the thread is gone)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        with self._cond:
            self._raise_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the inference worker failed: {self.error!r}") from self.error

    # ---------------------------------------------------------------- the worker's side
    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item, self._slot = self._slot, None
                self._busy = True
            try:
                if item.dropped:
                    result = Result(item, None)
                else:
                    gap = self._last_seq is not None and item.seq != self._last_seq + 1
                    if item.episode_start or gap:
                        self.stream.reset()
                    self._last_seq = item.seq
                    assert item.active_stream in ACTION_STREAMS, item.active_stream
                    self.stream.active_stream = item.active_stream
                    t0 = time.perf_counter()
                    record = self.stream.step(item.frame, item.action)
                    result = Result(item, record, time.perf_counter() - t0, self.stream.t)
                    if self.decoder is not None:
                        self._decode(result)
            except BaseException as err:  # surfaced to the loop on its next call
                with self._cond:
                    self.error = err
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._results.append(result)
                self._results.extend(self._drops)  # all submitted after this frame, before the next one taken
                self._drops.clear()
                self.processed += result.record is not None
                self._done_seq = item.seq
                self._busy = False
                self._cond.notify_all()

    def _decode(self, result: Result) -> None:
        """One decoder call: the look-ahead when the stream renewed it (once per model step), plus the requests."""
        with self._cond:
            requests, self._requests = self._requests, {}
        lookahead = result.record.lookahead
        fresh = lookahead is not None and lookahead is not self._decoded_lookahead
        latents = ([lookahead] if fresh else []) + [z[None] for z in requests.values()]
        if not latents:
            return
        t0 = time.perf_counter()
        frames = self.decoder.decode(np.concatenate(latents))
        result.decode_latency = time.perf_counter() - t0
        if fresh:
            self._decoded_lookahead = lookahead
            result.lookahead_frames, frames = frames[:len(lookahead)], frames[len(lookahead):]
        result.decoded = dict(zip(requests, frames))
