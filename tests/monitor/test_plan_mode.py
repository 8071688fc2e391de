"""The plan mode: the model drives by CEM toward a goal, plans in its own thread, and sessions keep the plans."""
import numpy as np
import pygame

from lewm.planning.planner import PlannerSettings, agent_paths
from monitor.panels.plan import CHOSEN
from monitor.replay import SessionReplay
from monitor.session import read_log
from scenes.pusht import ACTION_SCALE, WORLD_SIZE

QUICK = PlannerSettings(samples=24, iterations=3, elites=4)


def chosen_pixels(app) -> int:
    """Pixels of the chosen plan's colour over the scene."""
    rect = app.scene_panel.image
    pixels = pygame.surfarray.pixels3d(app.surface)[rect.left:rect.right, rect.top:rect.bottom]
    return int(np.all(pixels == CHOSEN, axis=-1).sum())


def test_headless_plan_session_records_its_plans_and_replays_them(make_app):
    app = make_app(scene="expert", mode="plan", plan=QUICK)
    app.run_headless(30)
    assert chosen_pixels(app) > 50  # the chosen plan is drawn over the scene
    assert app.plan.last.number == 2 and app.plan.last.end_latent.shape == (app.engine.latent_dim,)
    assert app.data.plan_view is None  # no pixel decoder: no decoded plan end, nothing drawn for it
    folder = app.session.folder
    app.close()
    rows = read_log(folder)
    planned = [r for r in rows if r.get("plan")]
    assert [r["env_step"] for r in planned] == [0, 25]  # receding horizon 5 model steps = 25 env steps
    first = planned[0]["plan"]
    assert len(first["elite_cost"]) == 3 and first["seconds"] > 0 and first["number"] == 1
    blocks = np.asarray(first["blocks"])
    assert blocks.shape == (5, 10)
    assert np.allclose([r["action"] for r in rows[:25]], blocks.reshape(-1, 2), atol=1e-6)  # the plan is executed

    replay = make_app(replay=SessionReplay(folder), mode="replay", scene="expert", session=False)
    replay.run_headless(3)
    view, goal_frame, _ = replay.replayed_plan
    assert view.number == 1 and goal_frame.shape == (app.engine.image_size,) * 2 + (3,)
    start = np.asarray(first["start_xy"])
    assert np.allclose(view.chosen, agent_paths(start, blocks.reshape(1, -1, 2), ACTION_SCALE, WORLD_SIZE)[0])
    replay.draw()
    assert chosen_pixels(replay) > 50


def test_planning_never_holds_the_window(make_app):
    app = make_app(scene="expert", mode="plan", headless=False, lockstep=False, session=False,
                   plan=PlannerSettings(samples=300, iterations=30, elites=30))
    assert app.sim_tick()  # starts the plan and returns at once: the simulator waits at the boundary
    assert app.sim.env_step == 0 and app.plan.waiting and app.plan.last is None
    assert any("waiting for plan 1" in text for text, _ in app.status_fields())
    app.draw()  # the window draws while the plan forms
    while app.sim.env_step == 0:
        app.sim_tick()
        app.drain()
    assert app.plan.last.number == 1 and len(app.plan.last.costs) == 30 and not app.plan.waiting


def test_goal_key_sets_the_goal_to_the_current_frame(make_app):
    app = make_app(scene="expert", mode="plan", plan=QUICK, session=False)
    app.run_headless(3)
    before = app.plan.z_goal.copy()
    app.perform("set_goal")
    assert np.array_equal(app.plan.goal_frame, app.sim.current.frame)
    assert not np.allclose(app.plan.z_goal, before)
    assert app.plan.mpc.needs_plan()  # a new goal: the next step plans afresh


def test_lockstep_plans_use_every_core_while_the_stream_keeps_one(make_app):
    from export.engine import available_cores

    app = make_app(scene="expert", mode="plan", plan=QUICK, session=False, video=False)  # headless: lockstep
    assert app.engine.threads == 1
    assert app.plan.engine.threads == available_cores()
    assert app.plan.engine._predictor is app.engine._predictor  # the same sessions, nothing loaded twice
    live = make_app(scene="expert", mode="plan", plan=QUICK, session=False, headless=False, lockstep=False)
    assert live.plan.engine.threads == 1  # the window and the stream need the other cores


def test_plan_boxes_sit_beside_the_scene_and_paths_stay_inside_it():
    """Nothing but the candidate paths is drawn over the scene, and they stop at its border; the goal, the plan's
    end, the elite cost and the status go to the plan's own panel beside it."""
    from monitor.app import SCENE_IMAGE_PX, SCENE_RECT
    from monitor.panels import style
    from monitor.panels.plan import PlanOverlay
    from monitor.panels.scene import ScenePanel
    from monitor.plan_mode import PlanView

    pygame.font.init()
    image = ScenePanel(pygame.Rect(SCENE_RECT), image_px=SCENE_IMAGE_PX).image
    side = pygame.Rect(416, 222, 420, 206)
    assert not side.colliderect(image)
    surface = pygame.Surface((900, 460))
    surface.fill(style.BG)
    before = pygame.surfarray.array3d(surface)
    overlay = PlanOverlay(image, side)
    # candidate paths that run past the scene's right and bottom borders (the world is 512 units wide)
    diagonal = np.stack([np.linspace(300, 760, 11), np.linspace(280, 740, 11)], axis=1)
    paths = np.stack([diagonal + dx for dx in (-40, 0, 40)])
    view = PlanView(number=3, start_xy=np.array([300.0, 280.0]), paths=paths, elites=np.arange(2),
                    chosen=paths[1], costs=[3.0, 2.0, 1.5])
    goal = np.full((64, 64, 3), 90, np.uint8)
    overlay.draw(surface, view, goal, "plans 3, last 1.70 s", end_frame=goal)
    changed = np.any(pygame.surfarray.array3d(surface) != before, axis=2)  # (w, h)
    allowed = np.zeros_like(changed)
    for rect in (image, side):
        allowed[rect.left:rect.right, rect.top:rect.bottom] = True
    assert changed[image.left:image.right, image.top:image.bottom].any()  # the paths are there
    assert not changed[~allowed].any()  # and nothing outside the scene and the plan's panel: clipped
    goal_rect, end_rect, cost_rect = overlay.layout()
    for rect in (goal_rect, end_rect, cost_rect):
        assert side.contains(rect) and not rect.colliderect(image)

    surface.fill(style.BG)  # without paths, the scene is left exactly as it was drawn
    overlay.draw(surface, None, goal, "waiting for a goal", end_frame=goal)
    after = pygame.surfarray.array3d(surface)
    assert np.array_equal(after[image.left:image.right, image.top:image.bottom],
                          before[image.left:image.right, image.top:image.bottom])

def test_the_nearest_expert_frames_are_large_enough_to_read():
    """The window's "what the model expects" strip: forecasts at a 128 px model's own size, the nearest expert
    frames below them at over 80 px (they were 55 px, too small to read the T's pose)."""
    from monitor.app import SIZE
    from monitor.panels.expects import ExpectsPanel

    panel = ExpectsPanel(pygame.Rect(8, 436, SIZE[0] - 16, 252), count=5)
    inner, large, small, box = panel.layout()
    assert small >= 80 and large >= 120
    assert inner.y + large + 6 + small <= inner.bottom and inner.x + 5 * large + 4 * 8 <= box.x
