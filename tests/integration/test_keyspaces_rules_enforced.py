"""Amazon Keyspaces' rules fail locally, on the real Cassandra, before the statement is sent: one test per rule,
each with a statement that breaks it (player_sessions.keyspaces_rules, docs/keyspaces.md)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType

from player_sessions import keyspaces_rules
from player_sessions.keyspaces_rules import KeyspacesRuleViolation
from player_sessions.repositories.cassandra_helpers import first_row
from player_sessions.repositories.cassandra_rollups import CLAIM_FOLD, DELETE_ROLLUPS_BEFORE, WRITE_ROLLUP
from player_sessions.repositories.cassandra_starts import READ_ARRIVALS, READ_ROLLUPS
from player_sessions.repositories.cassandra_store import WRITE_ARRIVAL_MINUTE

pytestmark = pytest.mark.integration

WRITE_MINUTE_AT = "INSERT INTO arrival_minutes (scope, minute) VALUES (?, ?) USING TIMESTAMP ?"
READ_MINUTES = "SELECT minute FROM arrival_minutes WHERE scope = ?"


def prepared(connection, cql):
    return connection.prepare(getattr(cql, "text", cql))


def minutes_stored(connection, scope: str) -> int:
    return sum(1 for _ in connection.session().execute(prepared(connection, READ_MINUTES), (scope,)))


@pytest.fixture
def scope() -> str:
    """A partition of arrival_minutes of the test's own."""
    return f"rules-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("offset", [timedelta(days=-2, minutes=-1), timedelta(minutes=6)])
def test_a_client_timestamp_outside_keyspaces_window_is_refused(counts_connection, scope, offset):
    # Given a write whose client timestamp is just outside [now - 2 days, now + 5 minutes]
    micros = int((time.time() + offset.total_seconds()) * 1_000_000)
    statement = prepared(counts_connection, WRITE_MINUTE_AT)
    # When it is sent / Then it is refused by name, and nothing was written
    with pytest.raises(KeyspacesRuleViolation, match="client-timestamp-window"):
        counts_connection.session().execute(statement, (scope, datetime.now(UTC), micros))
    assert minutes_stored(counts_connection, scope) == 0


def test_a_client_timestamp_inside_the_window_is_sent(counts_connection, scope):
    # Given a write stamped a day ago (inside the window) / When it is sent / Then it is stored
    micros = int((time.time() - 86_400) * 1_000_000)
    counts_connection.session().execute(
        prepared(counts_connection, WRITE_MINUTE_AT), (scope, datetime.now(UTC), micros)
    )
    assert minutes_stored(counts_connection, scope) == 1


def test_more_than_100_in_subqueries_are_refused(counts_connection):
    # Given the arrivals read over 26 slots of 4 shards: 104 subqueries (Keyspaces multiplies the IN lists)
    statement = prepared(counts_connection, READ_ARRIVALS)
    # When it is sent / Then it is refused; 25 slots (100 subqueries) are sent
    with pytest.raises(KeyspacesRuleViolation, match="in-subqueries"):
        counts_connection.session().execute(statement, (list(range(26)), [0, 1, 2, 3]))
    assert list(counts_connection.session().execute(statement, (list(range(25)), [0, 1, 2, 3]))) == []


def test_in_with_a_clustering_range_is_refused_when_prepared(counts_connection):
    # Given a read with IN on the partition and a range on a clustering column (not documented by Keyspaces)
    cql = (
        "SELECT ts FROM session_starts WHERE hour IN ? AND shard IN ? AND country = ? AND ts > ? AND ts <= ?"
    )
    # When it is prepared / Then it is refused by name
    with pytest.raises(KeyspacesRuleViolation, match="in-with-clustering-range"):
        counts_connection.prepare(cql)


def test_the_first_page_of_an_in_query_is_not_taken_for_the_answer(counts_connection):
    # Given the result of an IN query (Keyspaces pages it subquery by subquery: its first page may be empty)
    result = counts_connection.session().execute(prepared(counts_connection, READ_ARRIVALS), ([1, 2], [0, 1]))
    # When its first row is taken with one() / Then it is refused; iterating the result is the way
    with pytest.raises(KeyspacesRuleViolation, match="in-query-paged-by-subquery"):
        result.one()
    assert first_row(result) is None


def rollup_row(period: datetime, slot: int, *, bucket: datetime | None = None) -> tuple:
    return ("h", period, bucket or period, slot, False, '{"FI":1}', 3600)


def rows_of_period(connection, period: datetime) -> int:
    rows = connection.session().execute(
        prepared(connection, READ_ROLLUPS),
        ("h", period, period - timedelta(days=1), period + timedelta(days=1)),
    )
    return sum(1 for _ in rows)


def test_a_logged_batch_is_refused(counts_connection):
    # Given a logged batch of one partition's rows
    period = datetime(2026, 3, 1, tzinfo=UTC)
    batch = BatchStatement(batch_type=BatchType.LOGGED)
    batch.add(prepared(counts_connection, WRITE_ROLLUP), rollup_row(period, 1))
    # When it is sent / Then it is refused, and nothing was written
    with pytest.raises(KeyspacesRuleViolation, match="unlogged-batches-of-writes"):
        counts_connection.session().execute(batch)
    assert rows_of_period(counts_connection, period) == 0


def test_an_unlogged_batch_over_30_statements_is_refused(counts_connection):
    # Given 31 rows of one partition in one unlogged batch
    period = datetime(2026, 3, 2, tzinfo=UTC)
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for slot in range(31):
        batch.add(prepared(counts_connection, WRITE_ROLLUP), rollup_row(period, slot))
    # When it is sent / Then it is refused, and nothing was written
    with pytest.raises(KeyspacesRuleViolation, match="unlogged-batch-size"):
        counts_connection.session().execute(batch)
    assert rows_of_period(counts_connection, period) == 0


def test_a_batch_over_two_partitions_is_refused(counts_connection):
    # Given one batch writing rows of two partitions
    first, second = datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add(prepared(counts_connection, WRITE_ROLLUP), rollup_row(first, 1))
    batch.add(prepared(counts_connection, WRITE_ROLLUP), rollup_row(second, 1))
    # When it is sent / Then it is refused, and neither row was written
    with pytest.raises(KeyspacesRuleViolation, match="batch-single-partition"):
        counts_connection.session().execute(batch)
    assert rows_of_period(counts_connection, first) + rows_of_period(counts_connection, second) == 0


@pytest.mark.parametrize(
    ("member", "values", "rule"),
    [
        # The removal of the rows before a base, beside it (the old compaction)
        (DELETE_ROLLUPS_BEFORE, lambda period: ("h", period, period, 9), "no-range-delete-in-batch"),
        # A fold's claim (IF NOT EXISTS): Keyspaces takes only unconditional writes in a batch
        (CLAIM_FOLD, lambda period: (987_654_322, "[]", 60), "unlogged-batches-of-writes"),
    ],
    ids=["range delete", "conditional write"],
)
def test_a_write_that_may_not_join_a_batch_is_refused_in_one(counts_connection, member, values, rule):
    # Given a rollup row and that write in one single-partition batch
    period = datetime(2026, 3, 5, tzinfo=UTC)
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add(prepared(counts_connection, WRITE_ROLLUP), rollup_row(period, 9))
    batch.add(prepared(counts_connection, member), values(period))
    # When it is sent / Then it is refused by name, and nothing was written
    with pytest.raises(KeyspacesRuleViolation, match=rule):
        counts_connection.session().execute(batch)
    assert rows_of_period(counts_connection, period) == 0


def test_a_batch_written_as_text_is_refused(counts_connection, scope):
    # Given 31 writes of two partitions as one CQL text (the checker cannot count a text batch's statements)
    inserts = " ".join(
        f"INSERT INTO arrival_minutes (scope, minute) VALUES ('{scope}', {minute * 60_000});"
        for minute in range(31)
    )
    text = f"BEGIN UNLOGGED BATCH {inserts} APPLY BATCH"
    # When it is prepared / Then it is refused, naming the rule, and nothing was written
    with pytest.raises(KeyspacesRuleViolation, match="unlogged-batches-of-writes"):
        counts_connection.prepare(text)
    assert minutes_stored(counts_connection, scope) == 0


def test_a_named_bind_marker_is_refused_when_prepared(counts_connection, scope):
    # Given a write whose timestamp is a named marker (its value's role could not be told from its column)
    text = "INSERT INTO arrival_minutes (scope, minute) VALUES (:scope, :minute) USING TIMESTAMP :at"
    # When it is prepared / Then it is refused
    with pytest.raises(KeyspacesRuleViolation, match="positional-bind-markers"):
        counts_connection.prepare(text)
    assert minutes_stored(counts_connection, scope) == 0


def test_a_serial_consistency_level_is_refused(counts_connection):
    # Given a fold's claim with LOCAL_SERIAL as its serial consistency (how the claim used to be sent)
    statement = prepared(counts_connection, CLAIM_FOLD).bind((987_654_321, "[]", 60))
    statement.serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL
    # When it is sent / Then it is refused by name
    with pytest.raises(KeyspacesRuleViolation, match="no-serial-consistency"):
        counts_connection.session().execute(statement)


@pytest.mark.parametrize("comment", ["", "/* a note */ ", "-- a note\n"])
def test_a_write_below_local_quorum_is_refused(counts_connection, scope, comment):
    # Given a write at consistency ONE (its text led by a comment or not)
    statement = prepared(counts_connection, comment + WRITE_ARRIVAL_MINUTE.text).bind(
        (scope, datetime.now(UTC), 60)
    )
    statement.consistency_level = ConsistencyLevel.ONE
    # When it is sent / Then it is refused by name, and nothing was written
    with pytest.raises(KeyspacesRuleViolation, match="local-quorum-writes"):
        counts_connection.session().execute(statement)
    assert minutes_stored(counts_connection, scope) == 0


def test_truncate_is_refused_and_the_table_keeps_its_rows(counts_connection, scope):
    # Given a stored row (Keyspaces does not support TRUNCATE)
    counts_connection.session().execute(
        prepared(counts_connection, WRITE_MINUTE_AT), (scope, datetime.now(UTC), int(time.time() * 1_000_000))
    )
    # When the table is emptied at once, as text or prepared / Then refused by name, and the row is still there
    with pytest.raises(KeyspacesRuleViolation, match=r"supported-cql-only.*emptied"):
        counts_connection.session().execute("TRUNCATE arrival_minutes")
    with pytest.raises(KeyspacesRuleViolation, match="supported-cql-only"):
        counts_connection.prepare("TRUNCATE TABLE arrival_minutes")
    assert minutes_stored(counts_connection, scope) == 1


def test_an_aggregate_is_refused_when_prepared(counts_connection):
    # Given a COUNT, which Keyspaces does not support / When prepared / Then refused by name
    with pytest.raises(KeyspacesRuleViolation, match="supported-cql-only"):
        counts_connection.prepare("SELECT COUNT(*) FROM session_starts WHERE hour = ? AND shard = ?")


def test_select_star_is_refused_when_prepared(counts_connection):
    # Given a read that names no columns (the project's rule) / When prepared / Then refused by name
    with pytest.raises(KeyspacesRuleViolation, match="bounded-reads"):
        counts_connection.prepare("SELECT * FROM sessions WHERE session_id = ?")


@pytest.mark.parametrize("ttl", ["0", "630720001"])
def test_a_literal_ttl_outside_the_documented_range_is_refused_when_prepared(counts_connection, ttl):
    # Given a write whose TTL Keyspaces does not document (0: no expiry in Cassandra; over 20 years)
    cql = f"INSERT INTO arrival_minutes (scope, minute) VALUES (?, ?) USING TTL {ttl}"
    # When prepared / Then refused by name
    with pytest.raises(KeyspacesRuleViolation, match="ttl-range"):
        counts_connection.prepare(cql)


def test_a_bound_ttl_of_zero_is_refused_and_one_in_range_is_sent(counts_connection, scope):
    # Given a write with a bound TTL
    statement = prepared(
        counts_connection, "INSERT INTO arrival_minutes (scope, minute) VALUES (?, ?) USING TTL ?"
    )
    # When sent with 0 / Then refused by name and nothing written; with an hour it is stored
    with pytest.raises(KeyspacesRuleViolation, match="ttl-range"):
        counts_connection.session().execute(statement, (scope, datetime.now(UTC), 0))
    assert minutes_stored(counts_connection, scope) == 0
    counts_connection.session().execute(statement, (scope, datetime.now(UTC), 3600))
    assert minutes_stored(counts_connection, scope) == 1


def test_every_rule_has_a_test_here():
    # Given the rules the local connection enforces / Then each is exercised by a test of this module
    source = Path(__file__).read_text()
    assert [rule.name for rule in keyspaces_rules.RULES if rule.name not in source] == []
