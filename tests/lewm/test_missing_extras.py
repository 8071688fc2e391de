"""Without the training extras (the monitor's install), the commands that need torch say what to install."""
import os
import subprocess
import sys
from pathlib import Path

from lewm.bundled import BUNDLED_MODEL as BUNDLED

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [["train", "--data", "data.h5", "--run", "run"], ["probe", "latent", "--model", str(BUNDLED), "--out", "o"],
            ["export", "--preset", "tiny", "--random-weights", "--out", "m"], ["bench"],
            ["import-official", "folder", "--out", "m"]]
# Runs each command with torch made unimportable, as on an install without it.
CODE = """
import json, sys
sys.modules["torch"] = None
from lewm_cli import main
print(json.dumps([main(argv) for argv in json.loads(sys.argv[1])]))
"""


def test_torch_commands_without_torch_say_what_to_install(tmp_path):
    import json

    from scenes.catalog import get_scene
    from scenes.dataset import DatasetWriter
    from scenes.episode import play_episode

    episode = play_episode(get_scene("expert"), 32, steps=5, seed=0)
    with DatasetWriter(tmp_path / "data.h5", 32) as writer:  # the inputs exist: only torch is missing
        writer.add_episode(episode.frames, episode.actions, episode.states)
    (tmp_path / "folder").mkdir()
    out = subprocess.run([sys.executable, "-c", CODE, json.dumps(COMMANDS)], capture_output=True, text=True,
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [2] * len(COMMANDS)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == len(COMMANDS), out.stderr
    for argv, line in zip(COMMANDS, lines):
        assert line.startswith(f"lewm {argv[0]}: error: ") and "needs torch" in line
        assert "pip install -e '.[train]'" in line
