"""Data-parallel training on the CPU (gloo): 2 processes agree with 1, resume, export, and fail cleanly."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lewm.checkpoint import load_model_folder
from lewm_cli import main
from lewm.config import preset
from lewm.sigreg import sigreg
from lewm.training.loop import TrainSettings, train
from scenes.collect import collect
from lewm_errors import UserError

ROOT = Path(__file__).resolve().parents[2]
TINY_ARGS = ["--preset", "tiny", "--set", "dropout=0.0", "--batch-size", "8", "--warmup", "1", "--lr", "1e-3",
             "--threads", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    collect(path, episodes=3, steps=40, image_size=32, seed=0, mix={"random": 1.0})
    return path


def lewm(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "lewm_cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(*args: str, world_size: int = 2, data: list[Path]) -> list[subprocess.Popen]:
    """`lewm train` in one process per rank with the environment torchrun gives them (rank r trains on data[r])."""
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world_size),
               "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world_size)}
        procs.append(subprocess.Popen([sys.executable, "-m", "lewm_cli", "train", "--data", str(data[rank]), *args],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def train_one_step_in_float64(rank: int, world_size: int, port: int, dataset: Path, run: Path) -> None:
    """One optimiser step on a global batch of 8 clips, in float64, as rank `rank` of `world_size` processes.

    float64, because this model's float32 gradients are only good to ~1e-3 relative (its BatchNorms divide by
    small batch spreads): merely permuting the clips of one process moves them that much, and Adam's first step,
    lr * sign(gradient), then flips wherever a gradient is near zero. Dropout is off (each process draws its own
    masks)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        train(dataset, run, preset("tiny", dropout=0.0),
              TrainSettings(steps=1, batch_size=8, warmup=1, checkpoint_every=1, lr=1e-3, recalibration_batches=2),
              log=lambda line: None)
    finally:
        torch.set_default_dtype(default)
        for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            del os.environ[key]


def test_two_processes_of_b_clips_step_like_one_process_of_2b(dataset, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    train_one_step_in_float64(0, 1, free_port(), dataset, one)
    torch.multiprocessing.spawn(train_one_step_in_float64, args=(2, free_port(), dataset, two), nprocs=2)
    (one_log,), (two_log,) = ([json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
                              for run in (one, two))
    for key in ("loss", "pred", "sigreg"):  # the global batch's values: SIGReg of all 8 clips, the mean of pred
        assert two_log[key] == pytest.approx(one_log[key], abs=1e-5), key
    one_state, two_state = (load_file(str(run / "checkpoint" / "weights.safetensors")) for run in (one, two))
    assert one_state.keys() == two_state.keys()
    for name, value in one_state.items():  # the updated parameters, and the BatchNorm statistics
        assert value.dtype in (torch.float64, torch.int64), name
        assert torch.allclose(two_state[name], value, atol=1e-5, rtol=0), name
    assert json.loads((two / "settings.json").read_text())["processes"] == 2


@pytest.fixture(scope="module")
def killed_run(dataset, tmp_path_factory) -> tuple[Path, int, str]:
    """A 2-process run whose rank 1 is killed once the first checkpoint (step 2) is written: (run folder, rank 0's
    exit code, rank 0's stderr)."""
    run = tmp_path_factory.mktemp("killed") / "run"
    rank0, rank1 = start_ranks("--run", str(run), *TINY_ARGS, "--steps", "100000", "--checkpoint-every", "2",
                               data=[dataset] * 2)
    try:
        deadline = time.monotonic() + 900  # a guard against a hang, not a speed test
        while not ((run / "log.jsonl").is_file() and (run / "log.jsonl").read_text().count("\n") >= 1):
            assert rank0.poll() is None and rank1.poll() is None, rank0.stderr.read() if rank0.poll() else ""
            assert time.monotonic() < deadline, "no checkpoint within 900 s"
            time.sleep(0.2)
        rank1.send_signal(signal.SIGKILL)
        _, err = rank0.communicate(timeout=600)
    finally:
        for proc in (rank0, rank1):
            proc.kill()
            proc.wait()
    return run, rank0.returncode, err


def test_a_killed_rank_stops_the_run_with_a_message_and_a_whole_checkpoint(killed_run):
    run, returncode, err = killed_run
    assert returncode == 2
    assert "lost contact with the other training processes" in err and "--resume" in err
    model = load_model_folder(run / "checkpoint")
    assert model.config.image_size == 32
    assert torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=True)["step"] == 2
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint", "log.jsonl", "settings.json"]


def test_a_two_process_checkpoint_resumes_on_two_processes_and_exports(killed_run, dataset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(killed_run[0], run)
    done = lewm("train", "--data", str(dataset), "--run", str(run), *TINY_ARGS, "--steps", "3", "--checkpoint-every",
                "1", "--resume", "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert "2 processes" in done.stdout
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 3]
    assert main(["export", "--model", str(run / "checkpoint")]) == 0
    assert (run / "checkpoint" / "encoder.onnx").is_file() and (run / "checkpoint" / "predictor.onnx").is_file()


def test_ranks_with_different_datasets_are_refused(dataset, tmp_path):
    other = tmp_path / "other.h5"
    collect(other, episodes=3, steps=40, image_size=32, seed=1, mix={"random": 1.0})
    procs = start_ranks("--run", str(tmp_path / "run"), "--preset", "tiny", "--steps", "2", "--batch-size", "4",
                        "--threads", "1", data=[dataset, other])
    errors = [proc.communicate(timeout=900)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [2, 2]
    for err in errors:
        assert "the ranks see different datasets" in err and "same dataset file" in err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_batch_that_does_not_split_over_the_processes_is_refused(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserError, match="multiple of 3"):
        train(dataset, tmp_path / "run", preset("tiny"), TrainSettings(steps=1, batch_size=8), log=lambda line: None)


def test_sigreg_directions_come_from_the_step_generator_not_the_global_rng():
    z = torch.randn(64, 16)
    state = torch.get_rng_state()
    first = sigreg(z, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # dropout's stream on each rank is left alone
    assert sigreg(z, generator=torch.Generator().manual_seed(7)).item() == first.item()  # every rank alike
    assert sigreg(z, generator=torch.Generator().manual_seed(8)).item() != first.item()


def test_two_processes_train_under_bf16_autocast(dataset, tmp_path):
    """The shared BatchNorm's running statistics stay float32 when autocast hands it bfloat16 rows."""
    run = tmp_path / "run"
    result = lewm("train", "--data", str(dataset), "--run", str(run), *TINY_ARGS, "--steps", "2",
                  "--checkpoint-every", "2", "--nproc", "2", "--precision", "bf16")
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert record["step"] == 2 and torch.isfinite(torch.tensor(record["loss"]))
    state = load_file(str(run / "checkpoint" / "weights.safetensors"))
    assert all(value.dtype in (torch.float32, torch.int64) for value in state.values())
