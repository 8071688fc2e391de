"""`lewm plan` end to end on a tiny model folder, and the two backends planning alike."""
import json

import numpy as np
import pytest

from export.backends import load_backend
from lewm_cli import main
from lewm.planning.planner import PlannerSettings, LatentPlanner
from lewm.planning.evaluation import make_trials
from scenes.render import draw_state


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from export.onnx_export import export_model_folder, make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path_factory.mktemp("plan") / "tiny", seed=0)
    export_model_folder(folder)
    return folder


def test_lewm_plan_writes_success_rates_for_the_model_and_the_baselines(tiny_folder, tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "--model", str(tiny_folder), "--out", str(out), "--episodes", "2", "--samples", "16",
                 "--iterations", "2", "--elites", "4"]) == 0
    report = json.loads((out / "plan.json").read_text())
    assert list(report["success"]) == ["cem", "random", "do-nothing", "expert"]
    assert {"success", "plan_time_s", "end_cost", "elite_cost_by_iteration"} <= set(report["definitions"])
    assert report["success"]["expert"]["success_rate"] == 1.0  # the protocol's upper bound holds
    for rate in report["success"].values():
        assert rate["trials"] == 2 and rate["interval_95"][0] <= rate["success_rate"] <= rate["interval_95"][1]
    cem = report["planners"]["cem"]
    assert cem["settings"] == dict(PlannerSettings(samples=16, iterations=2, elites=4).to_dict())
    assert len(report["trials"]) == 2 and cem["plan_time_s"]["plans"] >= 2 * 2  # two plans in 50 steps
    assert len(cem["elite_cost_by_iteration"]["median"]) == 2
    assert report["versions"]["onnxruntime"] and (out / "plan.png").stat().st_size > 10_000
    assert "expert" in capsys.readouterr().out
    # each wholly executed plan is scored where it really ended: the last one at the final state of a failed trial
    model = load_backend(tiny_folder, "onnx")
    for row in report["trials"]:
        costs = row["cem"]["plan_costs"]
        assert len(costs) == row["cem"]["plans"]
        if not row["cem"]["success"]:
            assert all(c["realised"] is not None for c in costs)
            goal = model.encode(draw_state(np.asarray(row["goal"]), model.image_size)[None])[0]
            final = model.encode(draw_state(np.asarray(row["cem"]["final"]), model.image_size)[None])[0]
            assert np.isclose(costs[-1]["realised"], ((final.astype(np.float64) - goal) ** 2).sum(), rtol=1e-5)
    assert cem["end_cost"]["plans"] == sum(c["realised"] is not None for row in report["trials"]
                                           for c in row["cem"]["plan_costs"]) > 0


def test_several_solvers_with_the_uncertainty_penalty_share_the_trials(tmp_path):
    from export.onnx_export import export_model_folder, make_random_model_folder

    folder = make_random_model_folder("tiny", tmp_path / "tiny", seed=0, ensemble=True)
    export_model_folder(folder)
    out = tmp_path / "plan"
    assert main(["plan", "--model", str(folder), "--out", str(out), "--episodes", "2", "--samples", "16",
                 "--iterations", "2", "--elites", "4", "--solver", "cem,icem+d1,mppi+u2", "--uncertainty-weight",
                 "0.5"]) == 0
    report = json.loads((out / "plan.json").read_text())
    labels = ["cem+u0.5", "icem+d1", "mppi+u2"]
    assert list(report["success"]) == labels + ["random", "do-nothing", "expert"]
    for label, solver, weight, penalty in zip(labels, ("cem", "icem", "mppi"), (0.5, 1.0, 2.0),
                                              ("total", "disagreement", "total")):
        figures = report["planners"][label]
        assert figures["settings"]["solver"] == solver and figures["settings"]["uncertainty_weight"] == weight
        assert figures["settings"]["penalty"] == penalty
        assert figures["plan_time_s"]["p50"] > 0 and figures["uncertainty"]["plans"] == figures["plan_time_s"]["plans"]
        assert figures["end_cost"]["realised_over_predicted_median"] > 0
    assert [row["trial"] for row in report["trials"]] == [0, 1]


def test_an_uncertainty_weight_without_an_ensemble_is_one_line(tiny_folder, tmp_path, capsys):
    assert main(["plan", "--model", str(tiny_folder), "--out", str(tmp_path), "--uncertainty-weight", "1"]) == 2
    err = capsys.readouterr().err
    assert "lewm train-ensemble" in err and err.count("\n") == 1
    assert main(["plan", "--model", str(tiny_folder), "--out", str(tmp_path), "--solver", "cem+uX"]) == 2
    assert "+u must be a number" in capsys.readouterr().err
    assert main(["plan", "--model", str(tiny_folder), "--out", str(tmp_path), "--solver", "cem+x1"]) == 2
    err = capsys.readouterr().err
    assert "u (the total uncertainty) or d (the disagreement alone)" in err and err.count("\n") == 1


def test_lewm_plan_rejects_a_context_longer_than_the_history(tiny_folder, tmp_path, capsys):
    assert main(["plan", "--model", str(tiny_folder), "--out", str(tmp_path), "--context", "9"]) == 2
    assert "--context 9 exceeds the model's history" in capsys.readouterr().err


def test_lewm_plan_refuses_to_overwrite_an_earlier_report_unless_forced(tiny_folder, tmp_path, capsys):
    args = ["plan", "--model", str(tiny_folder), "--out", str(tmp_path), "--episodes", "1", "--samples", "8",
            "--iterations", "1", "--elites", "2"]
    (tmp_path / "plan.json").write_text("{}")
    assert main(args) == 2
    assert "pass --force" in capsys.readouterr().err and (tmp_path / "plan.json").read_text() == "{}"
    assert main(args + ["--force"]) == 0
    assert json.loads((tmp_path / "plan.json").read_text())["success"]


def test_the_threads_option_reaches_the_onnx_engine(tiny_folder, tmp_path, capsys):
    assert main(["plan", "--model", str(tiny_folder), "--out", str(tmp_path), "--episodes", "1", "--samples", "8",
                 "--iterations", "1", "--elites", "2", "--threads", "2"]) == 0
    assert "2 thread(s) per call" in json.loads((tmp_path / "plan.json").read_text())["engine"]
    assert main(["plan", "--model", str(tiny_folder), "--out", str(tmp_path / "b"), "--threads", "0"]) == 2
    assert "argument --threads: must be between 1 and 1024, got 0" in capsys.readouterr().err


def test_torch_and_onnx_choose_the_same_first_action(tiny_folder):
    trial = make_trials(1, 1_000_000, np.random.default_rng(42))[0]
    first = {}
    for backend in ("torch", "onnx"):
        model = load_backend(tiny_folder, backend)
        z = model.encode(draw_state(trial.start, model.image_size)[None])
        z_goal = model.encode(draw_state(trial.goal, model.image_size)[None])[0]
        planner = LatentPlanner(model, PlannerSettings(samples=64, iterations=5, elites=8))
        plan = planner.plan(z, np.zeros((0, planner.block_dim)), z_goal, np.random.default_rng(0))
        first[backend] = plan.actions(2)[0]
    assert np.allclose(first["torch"], first["onnx"], atol=1e-4)
