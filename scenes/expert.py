"""A scripted PushT expert: quasi-static pushing of the T onto the goal pose.

The block has no inertia between physics steps (space.damping = 0), so every physics step it starts
at rest and moves only by the impulse the (kinematic) agent gives it. That makes a one-contact
impulse model exact enough to plan with: for a contact point r (from the centre of gravity) and a
push velocity d of the agent, the sticking impulse is j = K^-1 d with K = I2/m + r_perp r_perp^T / I,
projected onto the friction cone; PushT's contacts are frictionless (mu = 0), so that is the normal
alone. The block's twist is (j/m, r x j / I).
These twists are body-frame constants, precomputed once for ~100 contact points x 3 push directions.

Each call:
1. the pose error (CoG position, angle) to the goal is turned into a desired body-frame twist;
2. every candidate (contact, direction) is scored by how well its twist matches it (cosine in a
   weighted twist space), minus a travel cost for the agent, plus a bonus for the current candidate
   (hysteresis, so the agent does not dither between contacts);
3. the agent goes to the candidate's standoff point (outside the block on the contact's outward
   normal), around the block when the straight line would cross it, then pushes by the
   least-squares step length along the candidate's direction;
4. once the block covers the goal well enough it stops and backs off.

Pure numpy plus scenes.pusht.coverage (shapely) near the goal; ~0.1 ms per call.
"""
from __future__ import annotations

import math

import numpy as np

from scenes.pusht import ACTION_SCALE, AGENT_RADIUS, GOAL_POSE, T_BOXES, coverage

_MASS = 1.0
_MOMENT = 3000.0  # 2 x moment_for_poly(1, T_BAR), as the simulator builds it
_COG = np.array([0.0, 45.0])  # body-local centre of gravity
_MU = 0.0  # contacts are frictionless (scenes.pusht): the impulse is along the normal only
_ANGLE_SCALE = 60.0  # units of length one radian of angle error is worth
_GAP = 1.0  # standoff distance beyond touching
_RC = 78.0 + AGENT_RADIUS + 12.0  # orbit radius around the CoG (T's farthest point is ~76.5 away)
_DIR_ANGLES = (0.0, 0.45, -0.45)  # push directions relative to the inward normal (inside the cone)

# The T outline in body coordinates, edge by edge, with outward normals.
_OUTLINE = (
    ((-60.0, 0.0), (60.0, 0.0), (0.0, -1.0)),      # top of the bar
    ((60.0, 0.0), (60.0, 30.0), (1.0, 0.0)),       # right end of the bar
    ((60.0, 30.0), (15.0, 30.0), (0.0, 1.0)),      # underside of the bar, right
    ((15.0, 30.0), (15.0, 120.0), (1.0, 0.0)),     # right side of the stem
    ((15.0, 120.0), (-15.0, 120.0), (0.0, 1.0)),   # end of the stem
    ((-15.0, 120.0), (-15.0, 30.0), (-1.0, 0.0)),  # left side of the stem
    ((-15.0, 30.0), (-60.0, 30.0), (0.0, 1.0)),    # underside of the bar, left
    ((-60.0, 30.0), (-60.0, 0.0), (-1.0, 0.0)),    # left end of the bar
)
_BOX_LO = np.array([[min(p[0] for p in b), min(p[1] for p in b)] for b in T_BOXES])
_BOX_HI = np.array([[max(p[0] for p in b), max(p[1] for p in b)] for b in T_BOXES])


def _rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _dist_to_t(points_b: np.ndarray) -> np.ndarray:
    """Distance from body-frame points (n, 2) to the T (0 inside)."""
    d = np.maximum(np.maximum(_BOX_LO[None] - points_b[:, None], 0.0), points_b[:, None] - _BOX_HI[None])
    return np.sqrt((d ** 2).sum(-1)).min(1)


def _nearest_on_t(point_b: np.ndarray) -> np.ndarray:
    q = np.clip(point_b[None], _BOX_LO, _BOX_HI)
    return q[np.argmin(((q - point_b) ** 2).sum(-1))]


def _build_candidates():
    """Body-frame contact points, outward normals, push directions and unit-push twists."""
    pts, nrm = [], []
    for a, b, n in _OUTLINE:
        a, b, n = np.array(a), np.array(b), np.array(n)
        length = np.linalg.norm(b - a)
        for t in np.linspace(3.0, length - 3.0, max(2, int(length // 5))):
            p = a + (b - a) * t / length
            # The agent's disc must fit at the contact without overlapping the T elsewhere.
            if _dist_to_t((p + n * (AGENT_RADIUS + _GAP))[None])[0] >= AGENT_RADIUS + _GAP - 1e-6:
                pts.append(p)
                nrm.append(n)
    pts, nrm = np.array(pts), np.array(nrm)
    P, N, D, W = [], [], [], []
    for p, n in zip(pts, nrm):
        r = p - _COG
        rp = np.array([-r[1], r[0]])
        K = np.eye(2) / _MASS + np.outer(rp, rp) / _MOMENT
        n_in, t = -n, np.array([n[1], -n[0]])
        for ang in _DIR_ANGLES:
            d = _rot(ang) @ n_in
            j = np.linalg.solve(K, d)
            jn, jt = j @ n_in, j @ t
            if jn <= 0:
                continue
            if abs(jt) > _MU * jn:  # sliding: impulse on the edge of the friction cone
                g = n_in + math.copysign(_MU, jt) * t
                j = g * (n_in @ d) / (n_in @ K @ g)
            w = np.array([j[0] / _MASS, j[1] / _MASS, (rp @ j) / _MOMENT])
            P.append(p), N.append(n), D.append(d), W.append(w)
    return np.array(P), np.array(N), np.array(D), np.array(W)


_P, _N, _D, _W = _build_candidates()
_S = _P + _N * (AGENT_RADIUS + _GAP)  # body-frame standoff points
_WS = _W * np.array([1.0, 1.0, _ANGLE_SCALE])  # weighted twists
_WS_NORM = np.linalg.norm(_WS, axis=1)
_GOAL_ANGLE = GOAL_POSE[2]
_GOAL_COG = np.array(GOAL_POSE[:2]) + _rot(_GOAL_ANGLE) @ _COG


class ExpertPolicy:
    """Scripted PushT expert: 7-D state -> LeWM relative action (float64 (2,), in [-1, 1]).

    noise: std of Gaussian noise added to each action (then clipped), for data diversity.
    seed: seeds the noise; the policy is deterministic given the seed and the states.
    Call reset() at each episode start (clears the chosen contact and phase, reseeds the noise).
    """

    def __init__(self, noise: float = 0.0, seed: int | None = None, *, done_coverage: float = 0.97,
                 push_gain: float = 1.5, max_push: float = 25.0, hysteresis: float = 0.25,
                 travel_cost: float = 0.15):
        self.noise = float(noise)
        self.seed = seed
        self.done_coverage = done_coverage
        self.push_gain = push_gain
        self.max_push = max_push
        self.hysteresis = hysteresis
        self.travel_cost = travel_cost
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Clear the phase and the chosen contact; reseed the noise with seed, if given.

        reset() with no seed keeps the noise stream going (so successive episodes get different
        noise, still deterministic given the constructor's seed); reset(seed=s) restarts it from s.
        """
        if seed is not None or not hasattr(self, "_rng"):
            self.seed = seed if seed is not None else self.seed
            self._rng = np.random.default_rng(self.seed)
        self._cand = -1  # index of the chosen (contact, direction)
        self._pushing = False
        self._done = False

    # ------------------------------------------------------------------------------------------
    def __call__(self, state: np.ndarray) -> np.ndarray:
        action = self._act(np.asarray(state, dtype=np.float64))
        if self.noise > 0:
            action = action + self._rng.normal(0.0, self.noise, 2)
        return np.clip(action, -1.0, 1.0).astype(np.float64)

    def _act(self, state: np.ndarray) -> np.ndarray:
        agent, block, theta = state[0:2], state[2:4], float(state[4])
        R = _rot(theta)
        cog = block + R @ _COG
        e_p = _GOAL_COG - cog
        e_th = _wrap(_GOAL_ANGLE - theta)
        agent_b = R.T @ (agent - block)

        if np.hypot(*e_p) < 15 and abs(e_th) < 0.25:
            cov = coverage((state[2], state[3], theta))
            if cov > self.done_coverage or (self._done and cov > 0.95):
                self._done = True
                self._pushing = False
                self._cand = -1
                return self._back_off(agent_b, R)
        self._done = False

        # Desired body-frame twist, weighted; score each candidate's twist against it.
        E = np.concatenate([R.T @ e_p, [_ANGLE_SCALE * e_th]])
        e_norm = np.linalg.norm(E)
        dots = _WS @ E
        cos = dots / (_WS_NORM * e_norm + 1e-9)
        rel = agent_b - _P
        behind = (rel * _N).sum(1) < AGENT_RADIUS * 0.5  # agent must go round to reach it
        travel = np.linalg.norm(agent_b - _S, axis=1) + 120.0 * behind
        score = cos - self.travel_cost * travel / 100.0
        if self._cand >= 0:
            score[self._cand] += self.hysteresis
            if cos[self._cand] < 0.2:
                score[self._cand] -= 10.0
        k = int(np.argmax(score))
        if k != self._cand:
            self._pushing = False
        self._cand = k

        S_w = block + R @ _S[k]
        N_w = R @ _N[k]
        to_s = S_w - agent
        if self._pushing and np.linalg.norm(to_s) > 10.0:
            self._pushing = False
        if not self._pushing and np.linalg.norm(to_s) < 4.0:
            self._pushing = True
        if self._pushing:
            step = dots[k] / (_WS_NORM[k] ** 2)  # least-squares push length
            step = float(np.clip(self.push_gain * step, 0.5, self.max_push))
            target = S_w + (R @ _D[k]) * step
            return self._toward(agent, target)
        return self._toward(agent, self._navigate(agent, agent_b, block, R, cog, S_w, N_w))

    def _navigate(self, agent, agent_b, block, R, cog, S_w, N_w) -> np.ndarray:
        """Where to aim the agent to reach the standoff S_w without crossing the block."""
        if self._clear(agent_b, R.T @ (S_w - block), AGENT_RADIUS + _GAP - 0.5):
            return S_w
        A_w = S_w + N_w * 40.0
        if self._clear(agent_b, R.T @ (A_w - block), AGENT_RADIUS + 3.0):
            return A_w
        rel = agent - cog
        rho = float(np.hypot(*rel))
        if rho < _RC - 15.0:  # too close to orbit: back away from the nearest point of the T
            q = _nearest_on_t(agent_b)
            away = agent_b - q
            n = np.linalg.norm(away)
            away = away / n if n > 1e-6 else (agent_b - _COG) / (np.linalg.norm(agent_b - _COG) + 1e-9)
            return agent + R @ away * 40.0
        phi = math.atan2(rel[1], rel[0])
        ra = A_w - cog
        dphi = _wrap(math.atan2(ra[1], ra[0]) - phi)
        phi2 = phi + math.copysign(min(abs(dphi), 0.7), dphi)
        return cog + _RC * np.array([math.cos(phi2), math.sin(phi2)])

    @staticmethod
    def _clear(a_b: np.ndarray, b_b: np.ndarray, radius: float) -> bool:
        n = max(2, int(np.linalg.norm(b_b - a_b) // 4) + 2)
        pts = a_b[None] + (b_b - a_b)[None] * np.linspace(0.0, 1.0, n)[:, None]
        return bool(_dist_to_t(pts).min() >= radius)

    def _back_off(self, agent_b: np.ndarray, R: np.ndarray) -> np.ndarray:
        q = _nearest_on_t(agent_b)
        away = agent_b - q
        n = np.linalg.norm(away)
        if n > AGENT_RADIUS + 30.0 or n < 1e-6:
            return np.zeros(2)
        return np.clip(R @ (away / n) * 0.15, -1.0, 1.0)

    @staticmethod
    def _toward(agent: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.clip((target - agent) / ACTION_SCALE, -1.0, 1.0)
