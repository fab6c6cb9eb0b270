"""Every CQL statement of the project is one Amazon Keyspaces accepts, and none is assembled from strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from player_sessions.schema import Replication, render_schema_cql
from player_sessions.settings import DatabaseMode, Settings
from player_sessions_local.keyspaces_cql import (
    cql_built_from_strings,
    keyspaces_violations,
    project_cql,
)

ROOT = Path(__file__).resolve().parents[2]
# Only the schema renderer builds CQL, from player_sessions.schema's definitions, and the local roles tool its
# grants, from player_sessions.access and generated passwords (never from input).
RENDERS_DDL = frozenset(
    {"layers/player_sessions/schema.py", "tools/player_sessions_local/cassandra_roles.py"}
)


def test_project_cql_uses_only_what_keyspaces_supports():
    # Given every CQL literal in the code and the rendered schema
    statements = [(s.where, s.text) for s in project_cql(ROOT)]
    keyspaces = Replication.of(Settings(database_mode=DatabaseMode.KEYSPACES))
    statements += [("schema", cql) for cql in render_schema_cql("player_sessions", 31_536_000, keyspaces)]
    assert len(statements) > len(render_schema_cql("ks", 1)), "the scan found no CQL in the code"
    # When each is checked / Then none breaks a Keyspaces rule
    problems = {where: keyspaces_violations(text) for where, text in statements if keyspaces_violations(text)}
    assert problems == {}


def test_no_cql_is_built_from_strings():
    # Given the project's code, where only the schema renderer may build CQL
    # When it is scanned for CQL assembled from strings
    found = cql_built_from_strings(ROOT, RENDERS_DDL)
    # Then nothing is found
    assert found == []


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        ("CREATE INDEX ON t (c)", "supported-cql-only"),
        ("CREATE CUSTOM INDEX i ON t (c) USING 'StorageAttachedIndex'", "supported-cql-only"),
        ("CREATE MATERIALIZED VIEW v AS SELECT a FROM t", "supported-cql-only"),
        ("SELECT COUNT(*) FROM t WHERE k = ?", "supported-cql-only"),
        ("SELECT max(ts) FROM t WHERE k = ?", "supported-cql-only"),
        ("SELECT k, c FROM t WHERE k = ? GROUP BY c", "supported-cql-only"),
        ("SELECT k FROM t PER PARTITION LIMIT 1", "supported-cql-only"),
        ("TRUNCATE t", "supported-cql-only"),
        ("truncate table ks.t;", "supported-cql-only"),
        ("-- empty it\n/* all of it */ TRUNCATE ks.t", "supported-cql-only"),
        ("ALTER TYPE ks.address ADD zip text", "supported-cql-only"),
        (
            "CREATE FUNCTION f (a int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS 'return a;'",
            "supported-cql-only",
        ),
        ("BEGIN BATCH INSERT INTO t (k) VALUES (1); APPLY BATCH", "unlogged-batches-of-writes"),
        # As text, a batch's statements and partitions cannot be counted: only a BatchStatement is sent.
        ("BEGIN UNLOGGED BATCH INSERT INTO t (k) VALUES (?); APPLY BATCH", "unlogged-batches-of-writes"),
        ("UPDATE t USING TIMESTAMP :wt SET v = ? WHERE k = ?", "positional-bind-markers"),
        ("SELECT a FROM t WHERE k IN :keys", "positional-bind-markers"),
        # Literal IN lists multiply: 11 x 10 subqueries.
        (
            "SELECT a FROM t WHERE k IN ("
            + ", ".join(str(i) for i in range(11))
            + ") AND c IN ("
            + ", ".join(str(i) for i in range(10))
            + ")",
            "in-subqueries",
        ),
        ("SELECT * FROM t WHERE k = ?", "bounded-reads"),
        ("SELECT a FROM t WHERE b = ? ALLOW FILTERING", "bounded-reads"),
        ("SELECT a FROM t WHERE k IN ? AND c > ?", "in-with-clustering-range"),
        ("SELECT a FROM t WHERE k = ? AND c IN ? AND d >= ?", "in-with-clustering-range"),
        # A statement for the checker to refuse, of 101 literal numbers; never executed.
        ("SELECT a FROM t WHERE k IN (" + ", ".join(str(i) for i in range(101)) + ")", "in-subqueries"),
    ],
)
def test_each_unsupported_construct_is_caught(statement, rule):
    # Given a statement using a construct Keyspaces does not support
    # When it is checked
    problems = keyspaces_violations(statement)
    # Then a problem names the rule
    assert any(problem.startswith(f"{rule}:") for problem in problems), problems


def test_supported_statements_pass():
    # Given a select with IN and no range, a range in one partition, a conditional update, a comment and a
    # literal holding a colon
    # When they are checked / Then none breaks a rule
    assert keyspaces_violations("SELECT a, b FROM t WHERE k IN (?, ?) AND c = ? LIMIT ?") == []
    assert keyspaces_violations("SELECT a, b FROM t WHERE k = ? AND c > ? AND c <= ? LIMIT ?") == []
    assert keyspaces_violations("UPDATE t SET v = ? WHERE k IN ? IF v < ?") == []
    assert keyspaces_violations("/* why */ UPDATE t SET v = 'a:b' WHERE k = ?") == []
    # A column or a word in a comment that reads "truncate" is not the statement
    assert keyspaces_violations("SELECT truncate FROM t WHERE k = ?") == []
    assert keyspaces_violations("/* not a TRUNCATE */ DELETE FROM t WHERE k = ?") == []


def test_string_built_cql_is_detected(tmp_path):
    # Given a module that formats a value into a statement
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "bad.py").write_text(
        "def q(player):\n    return f\"SELECT a FROM t WHERE k = '{player}'\"\n"
        'def r(x):\n    return "DELETE FROM t WHERE k = %s" % x\n'
    )
    # When the code is scanned / Then both places are reported
    found = cql_built_from_strings(tmp_path, frozenset(), folders=("layers",))
    assert [place.split(":")[1] for place in found] == ["2", "4"]
