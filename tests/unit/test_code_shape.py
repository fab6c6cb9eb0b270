"""The shape the codebase keeps: the deployed package imports no tooling, and no module outgrows one concern."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
"""The anchors' modules stay near 150 lines; past 400 a module holds more than one concern."""


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("folder", ["layers", "functions"])
def test_the_deployed_code_imports_no_tooling(folder):
    # Given the code that is deployed (the shared layer and the functions)
    # When its imports are read
    tooling = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files(folder)
        for module in imported_modules(path)
        if module.split(".")[0] in {"player_sessions_local", "tests", "infra_cdk"}
    }
    # Then none is the local tooling (the work meter, the emulators), the tests or the CDK app
    assert tooling == set()


def test_no_module_outside_the_tests_is_over_400_lines():
    # Given every Python module of the product, the CDK app and the tooling
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in python_files("layers", "functions", "infra_cdk", "tools")
    }
    # Then each holds one concern's worth of lines
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
