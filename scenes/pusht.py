"""The PushT simulator (the reference gym-pusht / stable-worldmodel PushT), as a gymnasium environment, written for
pymunk 7.

World units: a 512 x 512 arena, y pointing down on screen (pymunk coordinates map straight to
canvas pixels, as in the references). Actions use the LeWM convention: a in [-1, 1]^2, relative,
target = agent position + 100 * a, reached by a PD controller over 10 physics substeps.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pymunk
import shapely.affinity
import shapely.geometry
import shapely.ops

from lewm_errors import UserError

WORLD_SIZE = 512
# The four walls exactly as gym-pusht and stable-worldmodel add them: this order and these directions, not a
# walk round the corners. pymunk solves contacts shape by shape in the order shapes were added, and a segment's
# direction sets its normal side, so another order or direction gives a different solution whenever the block
# touches a wall (the parity test in tests/scenes/test_pusht_reference.py pins this).
WALLS = (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506)))
WALL_RADIUS = 2
AGENT_RADIUS = 15
PHYSICS_DT = 0.01
SUBSTEPS = 10  # 100 Hz physics, 10 Hz control
K_P, K_V = 100.0, 20.0
ACTION_SCALE = 100.0  # relative action -> target offset in world units
GOAL_POSE = (256.0, 256.0, math.pi / 4)

# The T, in body coordinates: a bar and a stem (scale 30), the two boxes every reference uses.
T_BAR = ((-60.0, 30.0), (60.0, 30.0), (60.0, 0.0), (-60.0, 0.0))
T_STEM = ((-15.0, 30.0), (-15.0, 120.0), (15.0, 120.0), (15.0, 30.0))
T_BOXES = (T_BAR, T_STEM)

# Success tests: gym-pusht's coverage threshold and LeWM's pose tolerance.
COVERAGE_SUCCESS = 0.95
POSE_TOLERANCE_XY = 20.0
POSE_TOLERANCE_ANGLE = math.pi / 9

STATE_DIM = 7  # agent x, agent y, block x, block y, block angle mod 2pi, agent vx, agent vy
ACTION_DIM = 2


# The outline in body coordinates (made once: a union per call cost more than the rest of the coverage test).
_T_BODY = shapely.ops.unary_union([shapely.geometry.Polygon(box) for box in T_BOXES])


def t_polygon(x: float, y: float, angle: float) -> shapely.geometry.Polygon:
    """The T's outline in world coordinates for a block pose (body origin x, y and angle)."""
    t = shapely.affinity.rotate(_T_BODY, angle, origin=(0, 0), use_radians=True)
    return shapely.affinity.translate(t, x, y)


_GOAL_T = t_polygon(*GOAL_POSE)

# The T's area centroid in body coordinates: on the stem's axis, 40.7 below the bar's top edge (the body origin).
# pymunk's centre of gravity, (0, 45), is the mean of the two boxes' centres (a quirk every reference shares); the
# area centroid is the point the T is seen to turn about.
T_CENTROID = np.array(t_polygon(0.0, 0.0, 0.0).centroid.coords[0])


def _rotation(angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def block_centroid(pose) -> np.ndarray:
    """The T's area centroid in world coordinates for block poses (..., 3): body origin x, y and angle."""
    pose = np.asarray(pose, np.float64)
    return pose[..., :2] + _rotation(pose[..., 2]) @ T_CENTROID


def moved_block_pose(pose, shift=(0.0, 0.0), turn: float = 0.0) -> np.ndarray:
    """The block pose (x, y, angle) after its area centroid moves by `shift` and the block turns by `turn` radians
    about that centroid: the body origin moves with the turn."""
    pose = np.asarray(pose, np.float64)
    angle = pose[2] + turn
    centroid = block_centroid(pose) + np.asarray(shift, np.float64)
    return np.array([*(centroid - _rotation(angle) @ T_CENTROID), angle])


def coverage(block_pose) -> float:
    """Fraction of the goal T's area covered by the block at pose (x, y, angle)."""
    return float(t_polygon(*block_pose).intersection(_GOAL_T).area / _GOAL_T.area)


def angle_difference(a: float, b: float) -> float:
    """Smallest absolute difference between two angles, in [0, pi]."""
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


GOAL_STATE = np.array([GOAL_POSE[0], GOAL_POSE[1], *GOAL_POSE, 0.0, 0.0])  # agent and block on the goal pose


def pose_success(state: np.ndarray, goal: np.ndarray = GOAL_STATE) -> bool:
    """LeWM's test: agent and block xy within 20 units of the goal state's, block angle within pi/9.

    goal: a 7-D state; by default PushT's own goal (the planning evaluation passes the state it asks for)."""
    state, goal = np.asarray(state, np.float64), np.asarray(goal, np.float64)
    return bool(
        np.linalg.norm(state[0:2] - goal[0:2]) < POSE_TOLERANCE_XY
        and np.linalg.norm(state[2:4] - goal[2:4]) < POSE_TOLERANCE_XY
        and angle_difference(state[4], goal[4]) < POSE_TOLERANCE_ANGLE
    )


def check_action(action) -> np.ndarray:
    """The action as a float64 (2,) array, or a UserError saying what is wrong with it."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (ACTION_DIM,):
        raise UserError(f"an action must have shape (2,) (relative dx, dy in [-1, 1]); got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise UserError(f"an action must be finite; got {a.tolist()}")
    return a


def random_state(rng: np.random.Generator) -> np.ndarray:
    """A state from LeWM's reset distribution (velocities zero)."""
    agent = rng.uniform(50, 450, size=2)
    block = rng.uniform(100, 400, size=2)
    # Drawn from U(-2pi, 2pi) as in LeWM, stored mod 2pi: the same poses, and a state read back
    # from a dataset then sets exactly the same angle (replays are bit-identical).
    angle = rng.uniform(-2 * math.pi, 2 * math.pi) % (2 * math.pi)
    return np.array([agent[0], agent[1], block[0], block[1], angle, 0.0, 0.0])


class PushT(gym.Env):
    """PushT with LeWM's relative actions; deterministic given the seed and the actions.

    reset(seed, options={"state": 7-vector}) starts from a given state instead of a random one.
    info carries state (7), proprio (4), coverage, success (coverage > 0.95) and pose_success.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, image_size: int | None = 224):
        """image_size None: a world without observations (reset and step return None for the frame), for
        collections that store states and draw frames on demand."""
        self.image_size = image_size
        if image_size is not None:
            self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float64)
        self._space: pymunk.Space | None = None
        self.block_color = None  # None: the reference LightSlateGray; perturbations may recolour it

    # -- physics -------------------------------------------------------------------------------
    def _build_space(self) -> None:
        space = pymunk.Space()
        space.gravity = (0, 0)
        space.damping = 0
        # Friction: every shape keeps pymunk's default, 0. The references write `body.friction = 1`, but in
        # pymunk friction is a property of shapes; on a Body it is a plain Python attribute that the solver
        # never reads, so their contacts are frictionless, and that is the world their data was recorded in.
        for a, b in WALLS:
            space.add(pymunk.Segment(space.static_body, a, b, WALL_RADIUS))

        self.agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        space.add(self.agent, pymunk.Circle(self.agent, AGENT_RADIUS))

        # Moment = 2 x the bar's moment, a quirk gym-pusht and stable-worldmodel share.
        moment = 2 * pymunk.moment_for_poly(1, T_BAR)
        self.block = pymunk.Body(1, moment)
        boxes = [pymunk.Poly(self.block, box) for box in T_BOXES]
        self.block.center_of_gravity = (np.mean([b.center_of_gravity for b in boxes], axis=0)).tolist()
        space.add(self.block, *boxes)
        self._space = space

    def set_state(self, state: np.ndarray) -> None:
        """Agent velocity, agent position, block angle, then block position; then one physics step."""
        self.agent.velocity = (float(state[5]), float(state[6]))
        self.agent.position = (float(state[0]), float(state[1]))
        self.block.angle = float(state[4])
        self.block.position = (float(state[2]), float(state[3]))
        self.block.velocity = (0, 0)
        self.block.angular_velocity = 0
        self._space.step(PHYSICS_DT)

    def place_block(self, pose) -> None:
        """Put the block at pose (x, y, angle), at rest, without advancing the physics (set_state takes a physics
        step, which moves the agent too): a change of the block alone."""
        self.block.angle = float(pose[2])
        self.block.position = (float(pose[0]), float(pose[1]))
        self.block.velocity = (0, 0)
        self.block.angular_velocity = 0

    @property
    def state(self) -> np.ndarray:
        a, b = self.agent.position, self.block.position
        v = self.agent.velocity
        return np.array([a.x, a.y, b.x, b.y, self.block.angle % (2 * math.pi), v.x, v.y])

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._build_space()
        options = options or {}
        if "state" in options:
            state = np.asarray(options["state"], dtype=np.float64)
            if state.shape != (STATE_DIM,) or not np.all(np.isfinite(state)):
                raise UserError(f"a start state must be 7 finite numbers "
                                f"(agent x, y, block x, y, angle, agent vx, vy); got {state.tolist()}")
        else:
            state = random_state(self.np_random)
        self.set_state(state)
        return self.render(), self.info()

    def step(self, action):
        a = check_action(action)
        # Clipped to the arena: the same target box as gym-pusht's absolute actions.
        target = np.clip(np.array(self.agent.position) + ACTION_SCALE * np.clip(a, -1.0, 1.0), 0, WORLD_SIZE)
        for _ in range(SUBSTEPS):
            p = np.array(self.agent.position)
            v = np.array(self.agent.velocity)
            self.agent.velocity = tuple(v + (K_P * (target - p) - K_V * v) * PHYSICS_DT)
            self._space.step(PHYSICS_DT)
        info = self.info()
        return self.render(), float(info["coverage"]), bool(info["success"]), False, info

    def render(self) -> np.ndarray | None:
        from scenes.render import draw_state

        if self.image_size is None:
            return None
        return draw_state(self.state, self.image_size, block_color=self.block_color)

    def info(self) -> dict:
        state = self.state
        cov = coverage(state[2:5])
        return {
            "state": state,
            "proprio": state[[0, 1, 5, 6]],
            "coverage": cov,
            "success": cov > COVERAGE_SUCCESS,
            "pose_success": pose_success(state),
        }
