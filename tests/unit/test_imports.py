"""The packages import only what they may: the market kernel stands alone, the simulator and the service share
only it, the benchmarks never import the tests, and the bot and strategies need only hftbacktest."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT


# package → top-level packages it must never import
FORBIDDEN = {
    "market": {"service", "simulator"},
    "service": {"simulator"},
    "simulator": {"service"},
    "bench": {"tests"},
    # The bot image holds only the live wheel's runtime: no web stack, no simulator, no CLI.
    "bot": {"service", "simulator", "market", "cli", "tests", "fastapi", "pydantic"},
    "strategies": {"service", "simulator", "market", "cli", "tests"},
}


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports anywhere in it (relative imports stay in its own package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_never_imports_the_ones_it_must_not(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    wrong = {f"{path.relative_to(ROOT)} imports {name}"
             for path in modules for name in imported(path) & FORBIDDEN[package]}
    assert not wrong, sorted(wrong)


def test_the_check_sees_every_way_of_importing(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import service.config\nfrom service import app\nfrom .service import x\n"
                      "def f():\n    import simulator\n")
    assert imported(module) & {"service", "simulator"} == {"service", "simulator"}
    module.write_text("from . import service\nfrom ..simulator import y\n")
    assert imported(module) & {"service", "simulator"} == set()
