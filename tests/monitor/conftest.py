"""Fixtures for the monitor tests: a tiny random-weight ONNX model folder with an uncertainty ensemble (torch only
BUILDS it), a small reference bank, and headless pygame."""
import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"

import pytest  # noqa: E402

REF_EPISODES, REF_STEPS = 2, 40


@pytest.fixture(scope="session")
def reference_sizes():
    """(episodes, env steps each) of the tests' reference bank (small: it is built once per session)."""
    return REF_EPISODES, REF_STEPS


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from export.onnx_export import export_model_folder, make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path_factory.mktemp("model") / "tiny", seed=0, ensemble=True)
    export_model_folder(folder)
    return folder


@pytest.fixture(scope="session")
def engine(tiny_model):
    from export.engine import OnnxEngine

    return OnnxEngine.from_folder(tiny_model)


@pytest.fixture(scope="session")
def bank(engine):
    from monitor.reference import load_or_build

    bank, _ = load_or_build(engine, REF_EPISODES, REF_STEPS)
    return bank


@pytest.fixture
def make_app(engine, bank, tmp_path):
    """A headless MonitorApp; closed at the end of the test."""
    from monitor.app import MonitorApp, Options, init_pygame

    init_pygame(True)
    apps = []

    def make(replay=None, **overrides):
        kw = dict(headless=True, lockstep=True, sessions=str(tmp_path / "sessions"))
        kw.update(overrides)
        app = MonitorApp(engine, bank, Options(**kw), replay=replay)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
