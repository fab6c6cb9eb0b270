"""The statement of access: each statement names its table and the access it needs, every statement the
repositories hold is given to a function, and the grants follow from the statements alone."""

from __future__ import annotations

import pytest

from player_sessions.access import FUNCTION_STATEMENTS, table_access
from player_sessions.repositories import cassandra_rollups, cassandra_starts, cassandra_store
from player_sessions.repositories.cql import Access, Cql
from player_sessions.routes import (
    COUNTRY_STARTS,
    FUNCTIONS,
    PLAYER_SESSIONS,
    ROLLUP_BUILDER,
    SCHEDULED_FUNCTIONS,
)


@pytest.mark.parametrize(
    ("text", "table", "access"),
    [
        ("SELECT slot FROM rollup_progress WHERE name = ?", "rollup_progress", {Access.SELECT}),
        ("INSERT INTO start_marks (session_id) VALUES (?) USING TTL ?", "start_marks", {Access.MODIFY}),
        ("UPDATE sessions USING TTL ? SET end_ts = ? WHERE session_id = ?", "sessions", {Access.MODIFY}),
        (
            "DELETE FROM start_count_rollups WHERE level = ? AND slot < ?",
            "start_count_rollups",
            {Access.MODIFY},
        ),
        (
            "INSERT INTO rollup_folds (slot, starts) VALUES (?, ?) IF NOT EXISTS",
            "rollup_folds",
            {Access.SELECT, Access.MODIFY},
        ),
        (
            "UPDATE rollup_progress SET slot = ? WHERE name = ? IF slot < ?",
            "rollup_progress",
            {Access.SELECT, Access.MODIFY},
        ),
    ],
)
def test_a_statement_names_its_table_and_the_access_it_needs(text, table, access):
    # When a statement is declared / Then its table and access are read from its text
    statement = Cql(text)
    assert (statement.table, statement.access) == (table, access)


def test_a_statement_on_a_table_the_schema_does_not_define_is_refused_at_import():
    # When a statement names an unknown table / Then it is refused at once
    with pytest.raises(ValueError, match="not a statement on one of the service's tables"):
        Cql("SELECT a FROM nowhere WHERE k = ?")


def test_every_statement_of_the_repositories_is_given_to_a_function():
    # Given every statement the repositories define
    defined = {
        value
        for module in (cassandra_store, cassandra_starts, cassandra_rollups)
        for value in vars(module).values()
        if isinstance(value, Cql)
    }
    # When the statement of access is read / Then none is left to no function (a grant nobody would check)
    given = {statement for statements in FUNCTION_STATEMENTS.values() for statement in statements}
    assert defined - given == set()
    assert len(defined) > 20


def test_every_function_has_a_statement_of_access():
    assert set(FUNCTION_STATEMENTS) == set(FUNCTIONS + SCHEDULED_FUNCTIONS)


def test_grants_follow_from_the_statements():
    # Then readers may modify nothing, the builder may read the start rows it checks, and the health check
    # needs no table beyond the player history's (and the cache's debt, read after Redis failed)
    assert table_access(COUNTRY_STARTS).modify == table_access(PLAYER_SESSIONS).modify == ()
    assert "session_starts" in {table.name for table in table_access(ROLLUP_BUILDER).select}
    assert [table.name for table in table_access(PLAYER_SESSIONS).select] == [
        "completed_sessions_by_player",
        "rollup_progress",
    ]


@pytest.mark.parametrize(
    ("text", "idempotent"),
    [
        ("SELECT slot FROM rollup_progress WHERE name = ?", True),
        ("UPDATE sessions USING TTL ? SET player_id = ?, country = ? WHERE session_id = ?", True),
        ("DELETE FROM completed_sessions_by_player WHERE player_id = ?", True),
        ("INSERT INTO rollup_folds (slot, starts) VALUES (?, ?) IF NOT EXISTS USING TTL ?", False),
        ("UPDATE rollup_progress SET slot = ? WHERE name = ? IF slot < ?", False),
        ("UPDATE rollup_progress SET slot = slot + ? WHERE name = ?", False),
        ("UPDATE sessions SET country = ? + country WHERE session_id = ?", False),
    ],
)
def test_a_statement_is_idempotent_unless_it_is_conditional_or_computed_from_what_it_replaces(
    text, idempotent
):
    # When a statement is declared / Then whether it may be sent twice is read from its text
    assert Cql(text).is_idempotent is idempotent


def test_only_the_builders_conditional_writes_are_never_sent_twice():
    # Given every statement any function sends
    sent = {statement for statements in FUNCTION_STATEMENTS.values() for statement in statements}
    # Then every one may be sent to a second coordinator or again after a timeout, except the watermark's and
    # the fold claim's lightweight transactions (of every family)
    once = {statement.text for statement in sent if not statement.is_idempotent}
    assert once == {statement.text for statement in sent if " IF " in statement.text}
    assert {
        cassandra_rollups.START_PROGRESS.text,
        cassandra_rollups.ADVANCE_PROGRESS.text,
        cassandra_rollups.CLAIM_FOLD.text,
    } <= once
    assert all(
        statement.access == {Access.SELECT, Access.MODIFY} for statement in sent if statement.text in once
    )
