"""How statements become driver requests: one statement alone, several of one partition as one unlogged batch;
which may be sent twice, and when the driver sends one again."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import ConsistencyLevel, WriteType
from cassandra.policies import RetryPolicy
from cassandra.query import BatchStatement, BatchType, SimpleStatement

from player_sessions.cassandra_cluster import TimeoutRetryPolicy
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


def test_a_batch_may_be_sent_twice_only_when_each_of_its_statements_may(monkeypatch):
    # Given the batch's add taking any statement (no driver session here)
    monkeypatch.setattr(BatchStatement, "add", lambda self, statement, params: None)
    claim = Cql("INSERT INTO rollup_folds (slot, starts) VALUES (?, ?) IF NOT EXISTS USING TTL ?")

    # When two plain writes, and a plain write with a conditional one, become batches
    plain, _ = request_of(prepared, [(WRITE, ("a", 1)), (WRITE, ("a", 2))])
    mixed, _ = request_of(prepared, [(WRITE, ("a", 1)), (claim, (1, 2, 3))])

    # Then the first is idempotent (speculation and a retry after a timeout may send it again), the second not
    assert (plain.is_idempotent, mixed.is_idempotent) == (True, False)


@pytest.mark.parametrize(
    ("idempotent", "retry_num", "decision"),
    [(True, 0, RetryPolicy.RETRY_NEXT_HOST), (False, 0, RetryPolicy.RETHROW), (True, 1, RetryPolicy.RETHROW)],
)
def test_a_write_the_coordinator_timed_out_is_tried_once_more_on_the_next_one_when_it_may_be_sent_twice(
    idempotent, retry_num, decision
):
    # Given a write, idempotent or not, that its coordinator answered with a write timeout
    write = SimpleStatement("UPDATE sessions SET end_ts = ? WHERE session_id = ?", is_idempotent=idempotent)
    # When the policy is asked / Then the first timeout of an idempotent write goes to the next coordinator, at the
    # same consistency; a conditional write's, or a second one, is the caller's
    retry, consistency = TimeoutRetryPolicy().on_write_timeout(
        write,
        consistency=ConsistencyLevel.LOCAL_QUORUM,
        required_responses=2,
        received_responses=1,
        write_type=WriteType.SIMPLE,
        retry_num=retry_num,
    )
    assert retry == decision
    assert consistency == (ConsistencyLevel.LOCAL_QUORUM if decision == RetryPolicy.RETRY_NEXT_HOST else None)


def test_a_read_the_coordinator_timed_out_is_tried_once_more_on_the_next_one():
    read = SimpleStatement("SELECT end_ts FROM sessions WHERE session_id = ?", is_idempotent=True)
    answer = {"required_responses": 2, "received_responses": 1, "data_retrieved": False}
    # When the policy is asked about a first and a second timeout / Then the first goes to the next coordinator
    decisions = [
        TimeoutRetryPolicy().on_read_timeout(
            read, consistency=ConsistencyLevel.LOCAL_QUORUM, retry_num=retry_num, **answer
        )
        for retry_num in (0, 1)
    ]
    assert decisions == [
        (RetryPolicy.RETRY_NEXT_HOST, ConsistencyLevel.LOCAL_QUORUM),
        (RetryPolicy.RETHROW, None),
    ]
