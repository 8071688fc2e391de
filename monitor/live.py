"""What the panels show, accumulated from the worker's results (no drawing here, no model here).

One LiveData per run: the last ~30 s of surprise per action stream with artifact flags and spikes (and, where the
model serves it, of its uncertainty about each frame's forecast), running
means of the forecast errors per horizon (the horizon and action probes, live), the PCA path, the look-ahead
retrieval, and inference latencies. Where the model has a pixel decoder: the decoded look-ahead frames, the
decoded prediction next to the seen frame at the last surprise spike, and in plan mode the decoded end of the
chosen plan next to its goal. Those pictures (lookahead_frames, spike_view, plan_view) are replaced when they
change, never changed in place: the panels compare them by identity.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from lewm.stream import ACTION_STREAMS
from monitor.worker import Result

CHART_STEPS = 300  # ~30 s at 10 Hz
HORIZON_WINDOW = 600  # frames the live horizon means run over
PATH_POINTS = 200


class LiveData:
    def __init__(self, horizon: int, bank=None, has_decoder: bool = False):
        self.horizon = horizon
        self.bank = bank
        self.has_decoder = has_decoder
        self.lookahead_frames: np.ndarray | None = None  # (F, S, S, 3) uint8, decoded look-ahead
        self.spike_view: tuple | None = None  # (env step, predicted frame (decoded), seen frame) at the last spike
        self.plan_view: tuple | None = None  # (plan end frame (decoded), goal frame) of the newest plan
        self._plan_pending: tuple | None = None  # (decode tag, goal frame) of the plan whose end is being decoded
        self.spike_request: np.ndarray | None = None  # the spiking frame's one-step prediction, to be decoded
        self._spike_pending: tuple | None = None  # (env step, seen frame) of the requested decode
        self.surprise: deque[np.ndarray] = deque(maxlen=CHART_STEPS)  # (3,) per env step
        # (2,) per env step: the forecast's uncertainty in its parts (disagreement, noise); NaN: none
        self.uncertainty: deque[np.ndarray] = deque(maxlen=CHART_STEPS)
        self.artifact: deque[bool] = deque(maxlen=CHART_STEPS)
        self.spike: deque[bool] = deque(maxlen=CHART_STEPS)
        self.steps: deque[int] = deque(maxlen=CHART_STEPS)
        self._fe: deque[np.ndarray] = deque()
        self._cl: deque[np.ndarray] = deque()
        self.fe_sum = np.zeros((3, horizon))
        self.fe_n = np.zeros((3, horizon))
        self.cl_sum = np.zeros(horizon)
        self.cl_n = np.zeros(horizon)
        self.path: deque[np.ndarray] = deque(maxlen=PATH_POINTS)
        self.lookahead_pca: np.ndarray | None = None
        self.lookahead_thumbs: list[int] = []
        self._thumbs_of: np.ndarray | None = None  # the look-ahead lookahead_thumbs were found for
        self.latency: deque[float] = deque(maxlen=200)
        self.last = None  # the newest Result with a record
        self.active_stream = "real"

    def reset_episode(self) -> None:
        self.path.clear()
        self.lookahead_pca = None
        self.lookahead_thumbs = []
        self._thumbs_of = None
        self.lookahead_frames = None

    def add(self, result: Result) -> None:
        rec = result.record
        if rec is None:  # a dropped frame: a hole in the chart
            self._push_chart(np.full(3, np.nan), bool(result.item.info.get("artifacts")), result.item.env_step)
            self.uncertainty.append(np.full(2, np.nan))
            self.path.clear()
            return
        if result.item.episode_start:
            self.reset_episode()
        self.last = result
        self.latency.append(result.latency)
        self._push_chart(rec.surprise, bool(result.item.info.get("artifacts")), result.item.env_step)
        self.uncertainty.append(np.full(2, np.nan) if rec.uncertainty is None else np.asarray(rec.uncertainty, float))
        self._pictures(result)
        self._push_horizon(rec.forecast_error, rec.copy_last_error)
        if rec.pca is not None:
            self.path.append(np.asarray(rec.pca, np.float32))
        if rec.lookahead is not None:
            self.lookahead_pca = rec.lookahead_pca
            if self.bank is not None and rec.lookahead is not self._thumbs_of:  # renewed once per model step
                self.lookahead_thumbs = [int(i) for i in self.bank.nearest(rec.lookahead)]
                self._thumbs_of = rec.lookahead

    def expect_plan_end(self, tag, goal_frame: np.ndarray) -> None:
        """A plan starts executing and its end latent was sent to the worker under `tag`: the picture that comes
        back with that tag becomes plan_view, next to `goal_frame`."""
        self._plan_pending = (tag, goal_frame)

    def clear_plan(self) -> None:
        """No plan to show (plan mode left, new goal, new episode); a picture still being decoded is dropped."""
        self.plan_view = None
        self._plan_pending = None

    def _pictures(self, result: Result) -> None:
        """Take the decoded frames of a result; on a spike of the active stream, ask for its prediction's picture."""
        if result.lookahead_frames is not None:
            self.lookahead_frames = result.lookahead_frames
        if "spike" in result.decoded and self._spike_pending is not None:
            step, seen = self._spike_pending
            self.spike_view = (step, result.decoded["spike"], seen)
            self._spike_pending = None
        if self._plan_pending is not None and self._plan_pending[0] in result.decoded:
            tag, goal = self._plan_pending
            self.plan_view = (result.decoded[tag], goal)
            self._plan_pending = None
        forecasts = result.record.forecast_z
        if self.spike[-1] and forecasts is not None:
            z = forecasts[ACTION_STREAMS.index(self.active_stream), 0]
            if np.all(np.isfinite(z)):
                self.spike_request = z
                self._spike_pending = (result.item.env_step, result.item.frame)

    def _push_chart(self, surprise: np.ndarray, artifact: bool, step: int) -> None:
        k = ACTION_STREAMS.index(self.active_stream)
        self.surprise.append(np.asarray(surprise, np.float64))
        self.artifact.append(artifact)
        self.steps.append(step)
        self.spike.append(self._is_spike(surprise[k], k))

    def _is_spike(self, value: float, k: int) -> bool:
        """A spike: the active stream's surprise far above its recent level (median + 4 MAD, and +0.02)."""
        if not np.isfinite(value) or len(self.surprise) < 20:
            return False
        recent = np.array([s[k] for s in list(self.surprise)[-100:-1]])
        recent = recent[np.isfinite(recent)]
        if len(recent) < 10:
            return False
        med = np.median(recent)
        mad = np.median(np.abs(recent - med))
        return bool(value > med + max(4 * 1.4826 * mad, 0.02))

    def _push_horizon(self, fe: np.ndarray, cl: np.ndarray) -> None:
        for buf, sums, counts, x in ((self._fe, self.fe_sum, self.fe_n, fe), (self._cl, self.cl_sum, self.cl_n, cl)):
            ok = np.isfinite(x)
            sums += np.where(ok, x, 0.0)
            counts += ok
            buf.append(x)
            if len(buf) > HORIZON_WINDOW:
                old = buf.popleft()
                ok = np.isfinite(old)
                sums -= np.where(ok, old, 0.0)
                counts -= ok

    def horizon_means(self) -> tuple[np.ndarray, np.ndarray]:
        """(3, H) mean forecast error per stream and horizon, (H,) copy-last mean; NaN where none yet."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.where(self.fe_n > 0, self.fe_sum / np.maximum(self.fe_n, 1), np.nan),
                    np.where(self.cl_n > 0, self.cl_sum / np.maximum(self.cl_n, 1), np.nan))

    def latency_p50(self) -> float:
        return float(np.median(self.latency)) if self.latency else float("nan")
