"""The docs match the tree: every file or folder a README's table names exists, export/README.md's table names every
module of export/, and ARCHITECTURE.md names every package and every probe."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATH_LIKE = re.compile(r"`([A-Za-z0-9_./-]+(?:/|\.[a-z0-9]+))`")


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], capture_output=True, text=True, cwd=ROOT, check=True)
    return [ROOT / line for line in out.stdout.splitlines()]


def table_paths(markdown: Path) -> list[str]:
    """The paths named in the first cell of each table row (a `name.ext` or a `folder/`)."""
    names = []
    for line in markdown.read_text().splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            names += PATH_LIKE.findall(line.split("|")[1])
    return names


@pytest.mark.parametrize("markdown", [p for p in tracked("*.md") if p.name == "README.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_readme_table_names_exists(markdown):
    named = table_paths(markdown)
    missing = [name for name in named if not (markdown.parent / name).exists() and not (ROOT / name).exists()]
    assert missing == []


def test_the_table_parser_reads_a_file_cell():
    assert PATH_LIKE.findall(" `engine.py`, `commands/` ") == ["engine.py", "commands/"]


def test_export_readme_names_every_module():
    named = set(table_paths(ROOT / "export" / "README.md"))
    modules = {p.name for p in (ROOT / "export").glob("*.py") if p.name != "__init__.py"}
    assert modules - named == set()


def test_architecture_names_every_package_and_probe():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"}
    assert {name for name in packages if f"{name}/" not in text} == set()
    probes = {p.stem for p in (ROOT / "lewm" / "probes").glob("*.py")} - {"__init__", "common", "suite"}
    assert {name for name in probes if f"`{name}`" not in text} == set()
