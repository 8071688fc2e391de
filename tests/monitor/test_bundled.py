"""With the bundled model, the published sliding red square raises surprise above baseline (the same episode
without it), measured through the monitor itself."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lewm.bundled import BUNDLED_MODEL
from monitor.app import run_app
from monitor.session import column, read_log

# LEWM_BUNDLED_MODEL points the test at another model folder (e.g. an exported training checkpoint).
BUNDLED = Path(os.environ.get("LEWM_BUNDLED_MODEL", BUNDLED_MODEL))
STEPS = 90  # the square is in the frame at env steps 25..74


def surprise_of(make_app, scene):
    app = make_app(scene=scene, seed=0, steps=STEPS, video=False)
    out = run_app(app, STEPS)
    return column(read_log(out["session"]), "surprise")[:, 0]  # the real action stream


@pytest.fixture
def bundled_app(tmp_path):
    if not (BUNDLED / "encoder.onnx").is_file():
        pytest.skip(f"the bundled model is not there yet ({BUNDLED} with encoder.onnx): train it and "
                    f"`lewm export --model {BUNDLED}`")
    from export.engine import OnnxEngine
    from monitor.app import MonitorApp, Options, init_pygame
    from monitor.reference import load_or_build

    init_pygame(True)
    # A copy of what the engine reads: the reference bank's cache is written next to it, not into the source tree.
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "encoder.onnx", "predictor.onnx", "predictor.weights"):
        shutil.copy2(BUNDLED / name, model / name)
    engine = OnnxEngine.from_folder(model)
    bank, where = load_or_build(engine, episodes=2, steps=40)
    assert Path(where).parent == model
    apps = []

    def make(**kw):
        app = MonitorApp(engine, bank, Options(headless=True, lockstep=True, sessions=str(tmp_path / "sessions"), **kw))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def test_sliding_square_raises_surprise_above_baseline(bundled_app):
    perturbed = surprise_of(bundled_app, "seed-artifact")
    clean = surprise_of(bundled_app, "expert")  # the same seed, the same expert, no square
    window = slice(30, 75)
    np.testing.assert_allclose(perturbed[:25], clean[:25], atol=1e-6, equal_nan=True)  # identical before it enters
    assert np.nanmean(perturbed[window]) > np.nanmean(clean[window])
    assert np.nanmax(perturbed[window]) > 1.5 * np.nanmean(clean[10:25])
