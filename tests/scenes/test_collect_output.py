"""`lewm collect --out`: an existing file is kept unless --force, and a path that cannot be written is a one-line
error before any episode is played."""
from lewm_cli import main
from scenes.dataset import EpisodeDataset

ARGS = ["--episodes", "1", "--steps", "3", "--image-size", "16", "--mix", "expert=1"]


def test_an_existing_dataset_is_kept_unless_forced(tmp_path, capsys):
    out = tmp_path / "data.h5"
    out.write_bytes(b"an earlier dataset")
    assert main(["collect", "--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert err == f"lewm collect: error: --out {out} exists; pass --force to overwrite it or choose another name\n"
    assert out.read_bytes() == b"an earlier dataset"
    assert main(["collect", "--out", str(out), "--force", *ARGS]) == 0
    with EpisodeDataset(out) as data:
        assert data.num_episodes == 1


def test_a_directory_is_refused_before_collecting(tmp_path, capsys):
    assert main(["collect", "--out", str(tmp_path), *ARGS]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"lewm collect: error: --out {tmp_path} is a directory; give a file name\n"
    assert "collect" not in captured.out and not list(tmp_path.parent.glob("*.partial"))
