"""Each key in the key table does what the help says; mouse drag places an artifact with a path; right-click
removes it. Driven headless with posted pygame events."""
import numpy as np
import pygame
import pytest

from monitor import controls


def pump(app):
    for event in pygame.event.get():
        app.handle_event(event)


def press(app, key_name, shift=False):
    key = pygame.key.key_code(key_name)
    mod = pygame.KMOD_LSHIFT if shift else 0
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=mod, unicode=""))
    pump(app)


def release(app, key_name):
    pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.key.key_code(key_name), mod=0))
    pump(app)


def tick(app, n=1):
    for _ in range(n):
        app.sim_tick()
        app.worker.wait_idle()
        app.drain()


def with_selected(app):
    tick(app)
    return app.sim.place_artifact(100.0, 100.0)


# action -> (setup(app) -> context, check(app, context)): the behaviour its help line promises
CHECKS = {
    "quit": (lambda app: None, lambda app, c: not app.running),
    "help": (lambda app: app.show_help, lambda app, c: app.show_help != c),
    "pause": (lambda app: app.paused, lambda app, c: app.paused != c),
    "single_step": (lambda app: app.sim.env_step,
                    lambda app, c: app.paused and (app.update(0.0) or True) and app.sim.env_step == c + 1),
    "speed_half": (lambda app: None, lambda app, c: app.speed == 0.5),
    "speed_1": (lambda app: None, lambda app, c: app.speed == 1.0),
    "speed_2": (lambda app: None, lambda app, c: app.speed == 2.0),
    "speed_max": (lambda app: None, lambda app, c: app.speed == float("inf")),
    "new_seed": (lambda app: (tick(app, 3), app.sim.seed)[1],
                 lambda app, c: app.sim.seed == c + 1 and app.sim.env_step == 0),
    "cycle_mode": (lambda app: app.sim.mode, lambda app, c: app.sim.mode != c),
    "set_goal": (lambda app: (tick(app, 3), app.plan.goal_state.copy())[1],
                 lambda app, c: np.array_equal(app.plan.goal_state, app.sim.current.state)
                 and np.array_equal(app.plan.goal_frame, app.sim.current.frame)
                 and not np.array_equal(c, app.sim.current.state)),
    "cycle_stream": (lambda app: app.active_stream,
                     lambda app, c: app.active_stream != c and app.data.active_stream == app.active_stream),
    "cycle_kind": (lambda app: app.sim.kind, lambda app, c: app.sim.kind != c),
    "cycle_color": (lambda app: with_selected(app),
                    lambda app, c: app.sim.color != (255, 50, 50) and c.color == app.sim.color),
    "sliding_square": (lambda app: (tick(app, 2), app.sim.env_step)[1],
                       lambda app, c: app.sim.artifacts[-1].motion == "horizontal"
                       and app.sim.artifacts[-1].color == (255, 50, 50) and app.sim.artifacts[-1].size == 20
                       and app.sim.artifacts[-1].enter == c),
    "teleport_block": (lambda app: app.sim.player.env.state[2:5].copy(),
                       lambda app, c: not np.allclose(app.sim.player.env.state[2:5], c)
                       and not np.allclose(app.sim.current.state[2:5], c)),
    "select_next": (lambda app: (with_selected(app), app.sim.place_artifact(50.0, 50.0))[0],
                    lambda app, c: app.sim.selected is not None and app.sim.selected is not app.sim.artifacts[-1]),
    "remove_selected": (lambda app: with_selected(app), lambda app, c: c not in app.sim.artifacts),
    "clear_artifacts": (lambda app: (with_selected(app), app.sim.start_sliding_square()),
                        lambda app, c: app.sim.artifacts == [] and app.sim.selected is None),
    "record": (lambda app: app.recorder is not None, lambda app, c: (app.recorder is not None) != c),
    "move_left": (lambda app: None, lambda app, c: app.sim.mode == "manual" and app.sim.decide()[0] < 0),
    "move_right": (lambda app: None, lambda app, c: app.sim.mode == "manual" and app.sim.decide()[0] > 0),
    "move_up": (lambda app: None, lambda app, c: app.sim.mode == "manual" and app.sim.decide()[1] < 0),
    "move_down": (lambda app: None, lambda app, c: app.sim.mode == "manual" and app.sim.decide()[1] > 0),
    "artifact_left": (lambda app: with_selected(app), lambda app, c: c.center(app.sim.env_step)[0] < 100),
    "artifact_right": (lambda app: with_selected(app), lambda app, c: c.center(app.sim.env_step)[0] > 100),
    "artifact_up": (lambda app: with_selected(app), lambda app, c: c.center(app.sim.env_step)[1] < 100),
    "artifact_down": (lambda app: with_selected(app), lambda app, c: c.center(app.sim.env_step)[1] > 100),
}


def test_every_binding_has_a_check_and_help():
    from monitor.app import init_pygame

    init_pygame(True)
    assert {b.action for b in controls.KEYS} == set(CHECKS)
    for b in controls.KEYS:
        assert b.help and pygame.key.key_code(b.key)
    assert len({(b.key, b.shift) for b in controls.KEYS}) == len(controls.KEYS)  # no key bound twice


@pytest.mark.parametrize("binding", controls.KEYS, ids=lambda b: f"{b.shown}-{b.action}")
def test_key_does_what_the_help_says(make_app, binding):
    app = make_app(session=False, scene="expert")
    tick(app)
    setup, check = CHECKS[binding.action]
    context = setup(app)
    press(app, binding.key, binding.shift)
    assert check(app, context), f"{binding.shown}: {binding.help}"


def test_releasing_an_arrow_ends_its_push(make_app):
    app = make_app(session=False, scene="expert")
    tick(app)
    press(app, "left")
    press(app, "up")
    action = app.sim.decide()
    assert app.sim.mode == "manual" and action[0] < 0 and action[1] < 0
    release(app, "left")
    action = app.sim.decide()
    assert action[0] == 0 and action[1] < 0  # up alone
    release(app, "up")
    assert not app.sim.keys_held and np.array_equal(app.sim.decide(), [0, 0])


def test_help_overlay_lists_every_key(make_app):
    rows = controls.help_lines()
    for b in controls.KEYS:
        assert any(b.shown in keys and b.help == what for keys, what in rows)
    assert "| H / F1 |" in controls.markdown_table()
    app = make_app(session=False)
    press(app, "h")
    app.draw()  # the overlay renders


def _scene_pos(app, x_ref, y_ref):
    return tuple(int(round(v)) for v in app.scene_panel.from_reference(x_ref, y_ref))


def test_mouse_drag_places_an_artifact_with_a_path_and_right_click_removes_it(make_app):
    app = make_app(session=False, scene="expert")
    tick(app, 2)
    start = _scene_pos(app, 60, 60)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=start, button=1))
    pump(app)
    assert len(app.sim.artifacts) == 1
    artifact = app.sim.artifacts[0]
    assert artifact.kind == "square" and artifact.motion == "path"
    for k in range(1, 4):
        tick(app)
        pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, pos=_scene_pos(app, 60 + 20 * k, 60), rel=(0, 0),
                                             buttons=(1, 0, 0)))
        pump(app)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=_scene_pos(app, 120, 60), button=1))
    pump(app)
    steps = [p[0] for p in artifact.path]
    assert len(artifact.path) == 4 and steps == sorted(steps) and len(set(steps)) == 4
    assert abs(artifact.center(app.sim.env_step)[0] - 120) < 1.0
    # the model sees it where it was dragged: the frame is red there
    frame = app.sim.current.frame
    s = frame.shape[0] / 224
    assert tuple(frame[int(60 * s), int(120 * s)]) == (255, 50, 50)
    # the log keeps it as drawn
    assert app.sim.current.artifacts[0]["x"] == pytest.approx(120, abs=1.0)
    # right click removes the one under the cursor
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=_scene_pos(app, 120, 60), button=3))
    pump(app)
    assert app.sim.artifacts == []


def test_manual_mode_mouse_drives_the_agent(make_app):
    app = make_app(session=False, scene="manual", mode="manual")
    tick(app)
    agent = app.sim.current.state[:2]
    target = agent + np.array([150.0, 0.0])
    pos = _scene_pos(app, *(target * 224 / 512))
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, pos=pos, rel=(0, 0), buttons=(0, 0, 0)))
    pump(app)
    action = app.sim.decide()
    assert action[0] == pytest.approx(1.0) and abs(action[1]) < 0.05  # clipped at the edge
    tick(app, 3)
    assert app.sim.current.state[0] > agent[0] + 10


def test_every_key_action_is_one_entry_of_the_app_table():
    """perform() looks an action up (a speed, a nudge, an arrow, or ACTIONS): every key's action is there, and
    nothing else is."""
    from monitor.app import ACTIONS

    table = set(ACTIONS) | set(controls.SPEEDS) | set(controls.ARTIFACT_NUDGE) | set(controls.HOLD_ACTIONS)
    assert {binding.action for binding in controls.KEYS} == table
