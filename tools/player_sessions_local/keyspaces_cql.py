"""Checks CQL against what Amazon Keyspaces supports, and finds every CQL statement in the project.

Keyspaces has no secondary indexes, materialized views, aggregates, GROUP BY, PER PARTITION LIMIT or
user-defined functions, takes only unlogged batches, and at most 100 values in an ``IN``. We also refuse
``SELECT *`` (a read names what it needs) and ``ALLOW FILTERING`` (a read must be bounded by its keys).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

MAX_IN_VALUES = 100
CQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|BEGIN|APPLY)\b", re.I)

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bCREATE\s+(CUSTOM\s+)?INDEX\b", re.I), "secondary indexes are not supported by Keyspaces"),
    (re.compile(r"\bMATERIALIZED\s+VIEW\b", re.I), "materialized views are not supported by Keyspaces"),
    (
        re.compile(r"\b(COUNT|MIN|MAX|SUM|AVG)\s*\(", re.I),
        "aggregate functions are not supported by Keyspaces",
    ),
    (re.compile(r"\bGROUP\s+BY\b", re.I), "GROUP BY is not supported by Keyspaces"),
    (re.compile(r"\bPER\s+PARTITION\s+LIMIT\b", re.I), "PER PARTITION LIMIT is not supported by Keyspaces"),
    (
        re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|AGGREGATE)\b", re.I),
        "user-defined functions and aggregates are not supported by Keyspaces",
    ),
    (re.compile(r"\bCREATE\s+TRIGGER\b", re.I), "triggers are not supported by Keyspaces"),
    (
        re.compile(r"\bBEGIN\s+(LOGGED\s+|COUNTER\s+)?BATCH\b", re.I),
        "only unlogged batches are allowed (BEGIN UNLOGGED BATCH)",
    ),
    (re.compile(r"\bSELECT\s+(DISTINCT\s+)?\*", re.I), "refused: SELECT * (name the columns a read needs)"),
    (
        re.compile(r"\bALLOW\s+FILTERING\b", re.I),
        "ALLOW FILTERING is refused: reads are bounded by their keys",
    ),
)
_IN_LIST = re.compile(r"\bIN\s*\(([^)]*)\)", re.I)


@dataclass(frozen=True)
class CqlStatement:
    where: str
    text: str


def keyspaces_violations(statement: str) -> list[str]:
    """Why ``statement`` would fail on (or is refused for) Amazon Keyspaces; empty when it is fine."""
    problems = [reason for pattern, reason in _RULES if pattern.search(statement)]
    for values in _IN_LIST.findall(statement):
        if len(values.split(",")) > MAX_IN_VALUES:
            problems.append(f"IN takes at most {MAX_IN_VALUES} values in Keyspaces")
    return problems


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
