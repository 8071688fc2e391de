"""The stream: everything the monitor shows and the probes measure, computed one env frame at a time.

Numpy only, above the two-call model interface (ARCHITECTURE.md), so the live monitor (ONNX engine)
and the offline probes (torch or ONNX) run this one computation and agree number for number.

Time. Frames arrive every env step; the model's step is `frameskip` env steps. The prediction of
frame t uses the frames t - 5k and the action blocks between them (frameskip = 5), so surprise and
forecast checks exist at every env frame. A forecast started at frame s from its real context
(z_{s-10}, z_{s-5}, z_s) is advanced one model step each time the next action block has been taken,
and checked when its frame arrives: horizon h at frame s + 5h. So each frame costs one encoder call
and one batched predictor call (the forecasts of every horizon and action stream together).

Action streams. Every forecast runs under three action streams at once:
  real     - the actions actually taken;
  shuffled - each block drawn from a bank of blocks from other episodes (marginal kept, alignment lost);
  zero     - raw zero actions (the agent's target is where it stands: "do nothing").
Under shuffled and zero every block the predictor sees is replaced, the context's included.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lewm.model_interface import UNCERTAINTY

ACTION_STREAMS = ("real", "shuffled", "zero")


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos along the last axis."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return 1.0 - num / np.maximum(den, 1e-12)


@dataclass
class PCA:
    """A frozen 2-D projection of latents (fitted once, so axes never flip)."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (2, D)

    @classmethod
    def fit(cls, z: np.ndarray) -> PCA:
        from sklearn.decomposition import PCA as SkPCA

        pca = SkPCA(n_components=2, svd_solver="full").fit(np.asarray(z, np.float64))
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32))

    def transform(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float32) - self.mean) @ self.components.T


@dataclass
class Forecast:
    """One rollout in flight: started at frame `start`, `steps` model steps done so far.

    windows[k] / blocks[k]: the latent window and the action blocks under action stream k; the
    newest block is appended when it has been taken."""

    start: int
    windows: list  # per stream: list of (D,) latents, oldest first, at most `history`
    blocks: list  # per stream: list of (A,) raw action blocks, one per window latent except the newest
    steps: int = 0


@dataclass
class StreamRecord:
    """What the stream knows after frame t."""

    t: int
    z: np.ndarray  # (D,) embedding of the frame
    surprise: np.ndarray  # (3,) per action stream: 1 - cos(one-step prediction, z); NaN before there is one
    forecast_error: np.ndarray  # (3, H): horizon h forecast of this frame vs z (index h-1); NaN where none
    copy_last_error: np.ndarray  # (H,): 1 - cos(z_{t-5h}, z_t), the "nothing changes" baseline
    probe_surprise: np.ndarray | None = None  # (3,) vs the embedding of probe_frame, when one was given
    pca: np.ndarray | None = None  # (2,) PCA coordinates of z
    lookahead: np.ndarray | None = None  # (F, D) forecasts of the next F model steps (active stream)
    lookahead_pca: np.ndarray | None = None  # (F, 2)
    forecast_z: np.ndarray | None = None  # (3, H, D) forecasts checked at this frame, NaN where none (keep_forecasts)
    # (2,) the model's uncertainty (disagreement, noise: lewm.ensemble.model) about the one-step forecast of this frame
    # under the real actions, the forecast that surprise[0] scores; known before the frame is seen; NaN before there
    # is a forecast; None where the model serves no uncertainty
    uncertainty: np.ndarray | None = None


class LatentStream:
    """Feed it (frame_t, action_t) for t = 0, 1, 2, ... (action_t: the raw action taken after frame t).

    model: anything with encode(frames uint8 (N,H,W,3)) -> (N,D), predict(z (B,T,D), blocks (B,T,A)) -> (B,D), and
    attributes history, frameskip; where it serves uncertainty(z (N,D), blocks (N,A)) -> (N,2) (UNCERTAINTY in its
    capabilities), each record carries the uncertainty of its frame's forecast.
    """

    def __init__(self, model, horizon: int = 10, shuffle_bank: np.ndarray | None = None, seed: int = 0,
                 pca: PCA | None = None, lookahead: int = 0, active_stream: str = "real",
                 keep_forecasts: bool = False):
        self.model = model
        self.keep_forecasts = keep_forecasts  # records carry the forecast latents (to decode them into pictures)
        self.horizon = horizon
        self.history = model.history
        self.frameskip = model.frameskip
        self.pca = pca
        self.lookahead = lookahead
        self.active_stream = active_stream
        self.shuffle_bank = None if shuffle_bank is None else np.asarray(shuffle_bank, np.float32)
        self.seed = seed
        self.serves_uncertainty = UNCERTAINTY in getattr(model, "capabilities", ())
        self.reset()

    def reset(self) -> None:
        self.t = -1
        self.z: dict[int, np.ndarray] = {}  # frame -> embedding (pruned to what forecasts still need)
        self.actions: dict[int, np.ndarray] = {}  # frame -> raw action taken after it
        self.flights: list[Forecast] = []
        self.rng = np.random.default_rng(self.seed)
        # The look ahead draws from its own generator: the forecasts' shuffled blocks are the same
        # whether or not a look ahead is asked for (monitor and probes agree).
        self.lookahead_rng = np.random.default_rng([self.seed, 1])
        self._lookahead = None

    # -- action streams --------------------------------------------------------------------------
    def _block_for(self, stream: int, real_block: np.ndarray, rng=None) -> np.ndarray:
        if stream == 0:
            return real_block
        if stream == 1:
            if self.shuffle_bank is None:
                raise ValueError("the shuffled action stream needs a shuffle_bank of action blocks")
            rng = self.rng if rng is None else rng
            return self.shuffle_bank[rng.integers(len(self.shuffle_bank))]
        return np.zeros_like(real_block)

    def _real_block(self, start: int) -> np.ndarray | None:
        """The raw action block taken after frame `start` (frameskip actions), if all taken and finite."""
        rows = [self.actions.get(start + i) for i in range(self.frameskip)]
        if any(r is None for r in rows):
            return None
        block = np.concatenate(rows).astype(np.float32)
        return block if np.all(np.isfinite(block)) else None

    # -- the per-frame step ------------------------------------------------------------------------
    def step(self, frame: np.ndarray, action=None, probe_frame: np.ndarray | None = None) -> StreamRecord:
        """Advance to the next frame. `probe_frame`, if given, is a second frame (e.g. the perturbed one)
        that predictions are also scored against without it entering the context."""
        self.t += 1
        t, fs, horizon = self.t, self.frameskip, self.horizon
        frames = frame[None] if probe_frame is None else np.stack([frame, probe_frame])
        encoded = self.model.encode(frames)
        z = encoded[0]
        self.z[t] = z
        if action is not None:
            self.actions[t] = np.asarray(action, np.float32).reshape(-1)

        forecast_error = np.full((3, horizon), np.nan)
        probe = None if probe_frame is None else np.full(3, np.nan)
        forecast_z = np.full((3, horizon, len(z)), np.nan, np.float32) if self.keep_forecasts else None
        predictions = self._advance_flights(t)
        for flight, preds in predictions:
            h = flight.steps
            forecast_error[:, h - 1] = cosine_distance(preds, z)
            if forecast_z is not None:
                forecast_z[:, h - 1] = preds
            if probe is not None and h == 1:
                probe[:] = cosine_distance(preds, encoded[1])
        self._start_flight(t)
        self._prune(t)

        copy_last = np.full(horizon, np.nan)
        for h in range(1, horizon + 1):
            if t - fs * h in self.z:
                copy_last[h - 1] = cosine_distance(self.z[t - fs * h], z)
        record = StreamRecord(t=t, z=z, surprise=forecast_error[:, 0].copy(), forecast_error=forecast_error,
                              copy_last_error=copy_last, probe_surprise=probe, forecast_z=forecast_z,
                              uncertainty=self._uncertainty(t) if self.serves_uncertainty else None)
        if self.pca is not None:
            record.pca = self.pca.transform(z)
        if self.lookahead:
            self._update_lookahead(record)
        return record

    def _uncertainty(self, t: int) -> np.ndarray:
        """(2,) the uncertainty of the step from frame t - frameskip under the real block taken since, or NaN."""
        block = self._real_block(t - self.frameskip) if t >= self.frameskip else None
        if block is None or t - self.frameskip not in self.z:
            return np.full(2, np.nan)
        return self.model.uncertainty(self.z[t - self.frameskip][None], block[None])[0].astype(np.float64)

    def _advance_flights(self, t: int) -> list[tuple[Forecast, np.ndarray]]:
        """Advance every forecast whose next frame is t, in one predictor call per window length."""
        due = [f for f in self.flights if t - f.start == self.frameskip * (f.steps + 1)]
        ready = []
        for f in due:
            real = self._real_block(t - self.frameskip)
            if real is None:  # an action is missing (episode end): this forecast cannot go on
                self.flights.remove(f)
                continue
            for k in range(3):
                f.blocks[k].append(self._block_for(k, real))
            ready.append(f)
        by_length: dict[int, list[Forecast]] = {}
        for f in ready:
            by_length.setdefault(len(f.windows[0]), []).append(f)
        out = []
        for length, group in by_length.items():
            z_in = np.stack([np.stack(f.windows[k]) for f in group for k in range(3)])
            a_in = np.stack([np.stack(f.blocks[k]) for f in group for k in range(3)])
            pred = self.model.predict(z_in, a_in).reshape(len(group), 3, -1)
            for f, p in zip(group, pred):
                f.steps += 1
                for k in range(3):
                    f.windows[k] = (f.windows[k] + [p[k]])[-self.history:]
                    f.blocks[k] = f.blocks[k][-(self.history - 1):] if self.history > 1 else []
                out.append((f, p))
        self.flights = [f for f in self.flights if f.steps < self.horizon]
        return out

    def _context(self, t: int) -> tuple[list, list] | None:
        """The real context ending at frame t: latents at t - 5k and the real blocks between them."""
        frames = [t - self.frameskip * k for k in reversed(range(self.history)) if t - self.frameskip * k >= 0]
        blocks = [self._real_block(s) for s in frames[:-1]]
        if any(b is None for b in blocks):
            return None
        return [self.z[s] for s in frames], blocks

    def _start_flight(self, t: int) -> None:
        context = self._context(t)
        if context is None:
            return
        latents, real_blocks = context
        windows = [list(latents) for _ in range(3)]
        blocks = [[self._block_for(k, b) for b in real_blocks] for k in range(3)]
        self.flights.append(Forecast(start=t, windows=windows, blocks=blocks))

    def _prune(self, t: int) -> None:
        keep_from = t - self.frameskip * (self.horizon + self.history)
        for d in (self.z, self.actions):
            for key in [k for k in d if k < keep_from]:
                del d[key]

    # -- the look ahead (monitor) ------------------------------------------------------------------
    def _update_lookahead(self, record: StreamRecord) -> None:
        """Forecasts of the next `lookahead` model steps from the newest real context, under the active
        stream, with future real actions assumed to repeat the last block taken. Recomputed once per
        model step; between, the last one is reported."""
        t = record.t
        if t % self.frameskip == 0 or self._lookahead is None:
            last = self._real_block(t - self.frameskip) if t >= self.frameskip else None
            context = self._context(t)
            if last is None or context is None:
                return
            k = ACTION_STREAMS.index(self.active_stream)
            window = list(context[0])
            rng = self.lookahead_rng
            blocks = [self._block_for(k, b, rng) for b in context[1]]
            ahead = []
            for _ in range(self.lookahead):
                blocks = (blocks + [self._block_for(k, last, rng)])[-len(window):]
                nxt = self.model.predict(np.stack(window)[None], np.stack(blocks)[None])[0]
                ahead.append(nxt)
                window = (window + [nxt])[-self.history:]
                blocks = blocks[-(len(window) - 1):] if len(window) > 1 else []
            self._lookahead = np.stack(ahead)
        record.lookahead = self._lookahead
        if self.pca is not None:
            record.lookahead_pca = self.pca.transform(self._lookahead)
