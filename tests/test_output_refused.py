"""Commands that fill a folder or a file refuse one that already holds something unless --force, and say so in one
line before their work starts (a training run must not end by overwriting a model folder)."""
import pytest

from lewm.bundled import BUNDLED_MODEL as BUNDLED
from lewm_cli import main


@pytest.fixture
def inputs(tmp_path):
    """A dataset and an (empty) official checkpoint folder: the inputs exist, the output is the problem."""
    from scenes.catalog import get_scene
    from scenes.dataset import DatasetWriter
    from scenes.episode import play_episode

    episode = play_episode(get_scene("expert"), 32, steps=5, seed=0)
    with DatasetWriter(tmp_path / "data.h5", 32) as writer:
        writer.add_episode(episode.frames, episode.actions, episode.states)
    (tmp_path / "official").mkdir()


@pytest.fixture
def occupied(tmp_path):
    folder = tmp_path / "occupied"
    folder.mkdir()
    (folder / "config.json").write_text("an earlier model")
    return folder


@pytest.mark.parametrize("argv", [
    ["train", "--data", "data.h5", "--run", "run", "--preset", "tiny", "--out"],
    ["train-decoder", "--model", str(BUNDLED), "--data", "data.h5", "--out"],
    ["tune-predictor", "--model", str(BUNDLED), "--data", "data.h5", "--run", "run", "--out"],
    ["import-official", "official", "--out"],
    ["export", "--preset", "tiny", "--random-weights", "--out"],
], ids=lambda argv: argv[0])
def test_a_folder_that_holds_files_is_refused_before_the_work(argv, inputs, occupied, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, str(occupied)]) == 2
    err = capsys.readouterr().err
    assert err == (f"lewm {argv[0]}: error: --out {occupied} already holds files; pass --force to write into it "
                   "or choose another folder\n")
    assert [p.name for p in occupied.iterdir()] == ["config.json"]
    assert (occupied / "config.json").read_text() == "an earlier model"
    assert not (tmp_path / "run").exists()  # nothing started


def test_forced_export_writes_into_the_folder(occupied, capsys):
    assert main(["export", "--preset", "tiny", "--random-weights", "--out", str(occupied), "--force"]) == 0
    assert (occupied / "encoder.onnx").is_file() and (occupied / "config.json").read_text() != "an earlier model"


def test_bench_keeps_an_earlier_report(tmp_path, capsys):
    report = tmp_path / "bench.json"
    report.write_text("{}")
    assert main(["bench", "--model", str(BUNDLED), "--presets", "", "--out", str(report)]) == 2
    assert "pass --force" in capsys.readouterr().err and report.read_text() == "{}"
