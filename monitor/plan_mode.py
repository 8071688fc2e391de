"""The plan mode: the model drives the agent by receding-horizon planning (CEM, iCEM or MPPI, with the uncertainty
penalty where set) toward a goal frame (lewm.planning.planner, the same code as `lewm plan`), planning in a thread of
its own so the window never waits on it.

Each env step the app asks decide(view) for the action. At a plan boundary (every receding_horizon model steps) a
plan is started from the current frame; until it is ready decide() answers None and the simulator waits there (in
lockstep runs the call waits for the plan instead). While CEM runs, `live` holds the newest iteration (the
candidates as the agent-target paths they imply, which are elites, how uncertain the model is about each, the cost
curve so far) for the panels; when it
is done `last` holds the chosen plan (its blocks, its predicted end embedding, its cost curve, its time) until the
next one, and the step that begins executing it carries the plan's record into the session log (replayed from
there).

Goal: the PushT goal (the T on its green target, the agent beside it) rendered as a frame, or the current frame
(set_goal, the G key).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from lewm.planning.planner import PlannerSettings, Iteration, LatentPlanner, Plan, RecedingHorizon, agent_paths
from scenes.pusht import ACTION_SCALE, GOAL_POSE, WORLD_SIZE
from scenes.render import draw_state

# The default goal: the block on the green target, the agent clear of it, below the bar's left end.
DEFAULT_GOAL = np.array([120.0, 400.0, *GOAL_POSE, 0.0, 0.0])


@dataclass
class PlanView:
    """What the panels draw of a plan, forming (live) or made (last)."""

    number: int  # 1 for the session's first plan
    start_xy: np.ndarray  # (2,) world units: the agent where the plan starts
    paths: np.ndarray | None = None  # (S, N + 1, 2) the candidates' agent-target paths (world units)
    elites: np.ndarray | None = None  # (K,) indices into paths
    uncertainty: np.ndarray | None = None  # (S,) each candidate's summed forecast uncertainty, where served
    chosen: np.ndarray | None = None  # (N + 1, 2) the chosen plan's path
    costs: list = field(default_factory=list)  # elite cost per iteration so far
    iteration: int = 0
    seconds: float = float("nan")
    end_latent: np.ndarray | None = None  # (D,) the predicted embedding after the chosen plan (decoders draw it)
    end_pca: np.ndarray | None = None  # (2,)


def plan_record(plan: Plan, view: PlanView, goal_state: np.ndarray, goal_pca) -> dict:
    """A plan as the session log keeps it (JSON-ready, enough to draw it again in a replay)."""
    return {"number": view.number, "blocks": plan.blocks, "elite_cost": plan.elite_cost, "best_cost": plan.best_cost,
            "cost": plan.cost, "seconds": plan.seconds, "start_xy": view.start_xy, "goal_state": goal_state,
            "end_pca": view.end_pca, "goal_pca": goal_pca}


def view_from_record(record: dict, action_dim: int) -> PlanView:
    """The PlanView of a logged plan (replays): the chosen path, its cost curve and time."""
    start = np.asarray(record["start_xy"], np.float64)
    actions = np.asarray(record["blocks"], np.float64).reshape(1, -1, action_dim)
    end_pca = record.get("end_pca")
    return PlanView(number=int(record["number"]), start_xy=start,
                    chosen=agent_paths(start, actions, ACTION_SCALE, WORLD_SIZE)[0],
                    costs=[c for c in record["elite_cost"]], iteration=len(record["elite_cost"]),
                    seconds=float(record["seconds"]), end_pca=None if end_pca is None else np.asarray(end_pca))


class _Cancelled(Exception):
    pass


class PlanDriver:
    def __init__(self, engine, settings: PlannerSettings | None = None, pca=None, seed: int = 0,
                 lockstep: bool = False):
        self.engine = engine
        self.planner = LatentPlanner(engine, settings)
        self.mpc = RecedingHorizon(self.planner)
        self.pca = pca
        self.lockstep = lockstep
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.live: PlanView | None = None  # the plan being made
        self.last: PlanView | None = None  # the newest plan made
        self.waiting = False  # the simulator is held at a plan boundary
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._done: tuple[Plan, PlanView] | None = None
        self._cancel = threading.Event()
        self.set_goal(DEFAULT_GOAL)

    # ---------------------------------------------------------------- goal
    def set_goal(self, state: np.ndarray, frame: np.ndarray | None = None) -> None:
        """The goal: a state (drawn as the goal frame unless its frame is given)."""
        self.goal_state = np.asarray(state, np.float64).copy()
        self.goal_frame = draw_state(self.goal_state, self.engine.image_size) if frame is None else frame.copy()
        self.z_goal = self.engine.encode(self.goal_frame[None])[0]
        self.goal_pca = None if self.pca is None else self.pca.transform(self.z_goal)
        self.reset()

    def reset(self) -> None:
        """Start over (new episode, new goal, mode switched): the next step plans afresh."""
        self._cancel.set()  # a plan in the making stops at its next iteration
        self._join()
        self._cancel.clear()
        self.mpc.reset()
        self.live = None
        self.waiting = False
        self._done = None

    # ---------------------------------------------------------------- the simulator's side
    def decide(self, frame: np.ndarray, state: np.ndarray) -> tuple[np.ndarray | None, dict | None]:
        """The action to take after this frame, or None while the plan for it is being made; and the record of a
        plan that starts executing with this action (for the session log)."""
        self._raise_error()
        record = None
        if self.mpc.needs_plan():
            if self._thread is None and self._done is None:
                if self.mpc.wants_frame():
                    self.mpc.observe(self.engine.encode(frame[None])[0])
                self._start(np.asarray(state[:2], np.float64))
            if self.lockstep:
                self._join()
                self._raise_error()
            if self._done is None:
                self.waiting = True
                return None, None
            plan, view = self._done
            self._done, self._thread = None, None
            self.mpc.accept(plan)
            self.last, self.live = view, None
            record = plan_record(plan, view, self.goal_state, self.goal_pca)
        elif self.mpc.wants_frame():
            self.mpc.observe(self.engine.encode(frame[None])[0])
        self.waiting = False
        return self.mpc.next_action(), record

    # ---------------------------------------------------------------- the planning thread
    def _start(self, start_xy: np.ndarray) -> None:
        self.count += 1
        view = PlanView(number=self.count, start_xy=start_xy)
        self.live = view
        z_goal = self.z_goal

        def on_iteration(it: Iteration) -> None:
            if self._cancel.is_set():
                raise _Cancelled
            raw = self.planner.to_raw(it.samples).reshape(len(it.samples), -1, self.planner.action_dim)
            view.paths = agent_paths(start_xy, raw, ACTION_SCALE, WORLD_SIZE)
            view.elites = it.elites
            view.uncertainty = it.uncertainty
            view.costs = view.costs + [float(it.costs[it.elites].mean())]
            view.iteration = it.index + 1

        def work() -> None:
            try:
                plan = self.mpc.plan(z_goal, self.rng, on_iteration)
                view.chosen = agent_paths(start_xy, plan.actions(self.planner.action_dim)[None], ACTION_SCALE,
                                          WORLD_SIZE)[0]
                view.seconds = plan.seconds
                view.end_latent = plan.end_latent
                view.end_pca = None if self.pca is None else self.pca.transform(plan.end_latent)
                self._done = (plan, view)
            except _Cancelled:
                pass
            except BaseException as err:  # surfaced to the app on its next call
                self.error = err

        self._thread = threading.Thread(target=work, name="lewm-planner", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _raise_error(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the planner failed: {self.error!r}") from self.error

    # ---------------------------------------------------------------- for the status line
    def status(self) -> str:
        if self.waiting and self.live is not None:
            return (f"waiting for plan {self.live.number} "
                    f"(CEM iteration {self.live.iteration}/{self.planner.settings.iterations})")
        if self.last is None:
            return "plan: none yet"
        return f"plans {self.last.number}, last {self.last.seconds:.2f} s"

    def stop(self) -> None:
        self._join()
