"""One direction of imports: lewm_errors <- scenes <- lewm <- export <- monitor <- lewm_cli. A package imports only
itself and the packages below it, and nothing imports a module by a name held in a string."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("lewm_errors", "scenes", "lewm", "export", "monitor", "lewm_cli")
MODULE_PATH = re.compile(r"[a-z_]+(\.[a-z_]+)+")


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


def string_imports(tree: ast.AST) -> set[str]:
    """Project packages named by a dotted module path held in a string (e.g. "export.engine"), the way
    importlib.import_module would reach them."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.fullmatch(node.value):
            names.add(node.value.split(".")[0])
    return names & set(LAYERS)


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
        for name in sorted(string_imports(tree) - allowed):
            wrong.append(f"{path.relative_to(ROOT)} names a module of {name} in a string")
    assert not wrong, "\n".join(wrong)


def test_the_checks_see_an_upward_import():
    tree = ast.parse("import importlib\nfrom export.engine import OnnxEngine\n"
                     "m = importlib.import_module('monitor.app')\n")
    assert imported_packages(tree) == {"export"} and string_imports(tree) == {"monitor"}
