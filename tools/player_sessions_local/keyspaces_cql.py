"""Finds every CQL statement in the project's code, and holds each to Amazon Keyspaces' rules before anything
runs: the rules are player_sessions.keyspaces_rules (the same ones a local connection enforces on every request),
read here from the text alone.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from player_sessions.keyspaces_rules import text_violations

CQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|BEGIN|APPLY)\b", re.I)


@dataclass(frozen=True)
class CqlStatement:
    where: str
    text: str


def keyspaces_violations(statement: str) -> list[str]:
    """Why ``statement``, from its text alone, would fail on (or is refused for) Amazon Keyspaces: each as
    ``rule-name: what``; empty when it is fine."""
    return [f"{rule.name}: {detail}" for rule, detail in text_violations(statement)]


def project_cql(
    root: Path, folders: tuple[str, ...] = ("layers", "functions", "tools")
) -> list[CqlStatement]:
    """Every string literal in the project's Python code that is a CQL statement."""
    found: list[CqlStatement] = []
    for path in _python_files(root, folders):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CQL_START.match(node.value):
                found.append(CqlStatement(f"{path.relative_to(root)}:{node.lineno}", node.value))
    return found


def cql_built_from_strings(
    root: Path, allowed: frozenset[str], folders: tuple[str, ...] = ("layers", "functions", "tools")
) -> list[str]:
    """Places where CQL is assembled at run time (f-strings, ``%``, ``.format``, ``+``) outside ``allowed``.

    Only data definitions may be rendered (the schema, from player_sessions.schema); every statement that
    touches data is a constant, prepared once and bound with parameters.
    """
    found: list[str] = []
    for path in _python_files(root, folders):
        relative = str(path.relative_to(root))
        if relative in allowed:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.expr):  # f-strings, operators and calls are expressions
                continue
            text = _dynamic_string_head(node)
            if text is not None and CQL_START.match(text):
                found.append(f"{relative}:{node.lineno}: {text.strip()[:60]!r}")
    return found


def _dynamic_string_head(node: ast.expr) -> str | None:
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        left = node.left
        if isinstance(left, ast.Constant) and isinstance(left.value, str):
            return left.value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        return node.func.value.value
    return None


def _python_files(root: Path, folders: tuple[str, ...]) -> list[Path]:
    return sorted(
        path for folder in folders for path in (root / folder).rglob("*.py") if ".venv" not in path.parts
    )
