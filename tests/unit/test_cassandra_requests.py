"""How statements become driver requests: one statement alone, several of one partition as one unlogged batch."""

from __future__ import annotations

from typing import Any

from cassandra.query import BatchStatement, BatchType

from player_sessions.repositories.cassandra_helpers import request_of
from player_sessions.repositories.cql import Cql

WRITE = Cql("INSERT INTO arrival_minutes (scope, minute) VALUES (?, ?)")


def prepared(cql: Cql) -> Any:
    """Stands in for PreparedStatements: a statement the batch accepts, named by its text."""
    return f"prepared {cql.text}"


def test_a_list_of_one_statement_is_sent_alone_and_a_longer_one_as_an_unlogged_batch(monkeypatch):
    # Given the batch's add taking any statement (no driver session here)
    added: list[tuple[Any, Any]] = []
    monkeypatch.setattr(
        BatchStatement, "add", lambda self, statement, params: added.append((statement, params))
    )

    # When a statement, a list of one, and a list of two become requests
    alone = request_of(prepared, (WRITE, ("a", 1)))
    one = request_of(prepared, [(WRITE, ("a", 1))])
    batch, params = request_of(prepared, [(WRITE, ("a", 1)), (WRITE, ("a", 2))])

    # Then the first two are the same plain request (a batch of one statement only adds a batch's overhead), the
    # third one unlogged batch of both
    assert alone == one == (f"prepared {WRITE.text}", ("a", 1))
    assert isinstance(batch, BatchStatement) and batch.batch_type == BatchType.UNLOGGED
    assert params is None
    assert added == [(f"prepared {WRITE.text}", ("a", 1)), (f"prepared {WRITE.text}", ("a", 2))]
