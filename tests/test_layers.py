"""One direction of imports: scenes <- lewm <- export <- monitor <- lewm_cli. A package imports only itself and
the packages below it, and nothing imports a module by a name held in a string."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("scenes", "lewm", "export", "monitor", "lewm_cli")


def imported_packages(tree: ast.AST) -> set[str]:
    """Top-level project packages a module's import statements name (absolute imports only: the project uses no
    relative ones)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


def dynamic_imports(tree: ast.AST) -> list[int]:
    """Lines that import by a string: importlib.import_module(...) or __import__(...)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "import_module") or (
                    isinstance(f, ast.Name) and f.id in ("import_module", "__import__")):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_what_is_below_it(package):
    allowed = set(LAYERS[:LAYERS.index(package) + 1])
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    wrong = []
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for name in sorted(imported_packages(tree) - allowed):
            wrong.append(f"{path.relative_to(ROOT)} imports {name}")
        wrong += [f"{path.relative_to(ROOT)}:{line} imports by a string" for line in dynamic_imports(tree)]
    assert not wrong, "\n".join(wrong)


def test_the_checks_see_an_upward_import():
    tree = ast.parse("import importlib\nfrom export.engine import OnnxEngine\n"
                     "m = importlib.import_module('monitor.commands')\n")
    assert imported_packages(tree) == {"export"} and dynamic_imports(tree) == [3]
