"""The local Cassandra behaves as the service relies on: schema, per-write TTLs, LOCAL_QUORUM."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from cassandra import ConsistencyLevel

from player_sessions.schema import TABLES, render_schema_cql
from player_sessions_local.schema_tool import SchemaDriftError, apply_schema, verify_schema

pytestmark = pytest.mark.integration

INSERT_START = (
    "INSERT INTO sessions (session_id, player_id, country, start_ts) VALUES (?, ?, ?, ?) USING TTL ?"
)
SELECT_TTL = "SELECT TTL(player_id) AS ttl_left, player_id FROM sessions WHERE session_id = ?"


def test_schema_applies_twice_and_matches_the_definitions(cassandra_session, test_settings):
    # Given the schema was applied once by the fixture
    # When it is applied again
    apply_schema(cassandra_session, test_settings)
    # Then every table exists with the keys, orders and default TTL of player_sessions.schema
    verify_schema(cassandra_session, test_settings)
    live_tables = {
        row.table_name
        for row in cassandra_session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (test_settings.keyspace,)
        )
    }
    assert {table.name for table in TABLES} <= live_tables


def test_schema_check_names_a_column_that_drifted(cassandra_session, test_settings):
    # Given a scratch keyspace whose sessions table has an extra column
    scratch = test_settings.model_copy(update={"keyspace": "player_sessions_drift"})
    for statement in render_schema_cql(scratch.keyspace, scratch.retention_seconds):
        cassandra_session.execute(statement, timeout=60)
    try:
        cassandra_session.execute("ALTER TABLE player_sessions_drift.sessions ADD surprise text", timeout=60)
        # When the live schema is checked / Then the drift is reported by name
        with pytest.raises(SchemaDriftError, match=r"sessions\.surprise"):
            verify_schema(cassandra_session, scratch)
    finally:
        cassandra_session.execute("DROP KEYSPACE IF EXISTS player_sessions_drift", timeout=60)


def test_applying_the_schema_adds_a_regular_column_a_live_table_lacks(cassandra_session, test_settings):
    # Given a scratch keyspace whose arrivals table was created before it had the seen columns
    scratch = test_settings.model_copy(update={"keyspace": "player_sessions_older"})
    for statement in render_schema_cql(scratch.keyspace, scratch.retention_seconds):
        cassandra_session.execute(statement, timeout=60)
    try:
        cassandra_session.execute(f"ALTER TABLE {scratch.keyspace}.start_arrivals DROP seen_fold", timeout=60)
        with pytest.raises(SchemaDriftError, match=r"start_arrivals\.seen_fold"):
            verify_schema(cassandra_session, scratch)
        # When the schema is applied
        apply_schema(cassandra_session, scratch)
        # Then the column is back, and the table matches the definitions
        verify_schema(cassandra_session, scratch)
    finally:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {scratch.keyspace}", timeout=60)


def test_schema_check_names_a_keyspace_replicated_otherwise(cassandra_session, test_settings):
    # Given a scratch keyspace created with one replica, and settings that ask for two
    scratch = test_settings.model_copy(update={"keyspace": "player_sessions_drift_rf"})
    for statement in render_schema_cql(scratch.keyspace, scratch.retention_seconds):
        cassandra_session.execute(statement, timeout=60)
    asks_two = scratch.model_copy(update={"replication_factor": 2})
    try:
        # When the live schema is checked against each / Then only the mismatch is reported, naming both maps
        verify_schema(cassandra_session, scratch)
        with pytest.raises(SchemaDriftError, match=r"replication .*'replication_factor': '1'.* != .*'2'"):
            verify_schema(cassandra_session, asks_two)
    finally:
        cassandra_session.execute("DROP KEYSPACE IF EXISTS player_sessions_drift_rf", timeout=60)


def test_per_write_ttl_is_read_back(cassandra_session, test_settings):
    # Given a row written with a TTL of 1000 s
    session_id = uuid.uuid4()
    insert = cassandra_session.prepare(INSERT_START)
    cassandra_session.execute(insert, (session_id, "p1", "FI", datetime.now(UTC), 1000))
    # When its TTL is read with TTL(col)
    select = cassandra_session.prepare(SELECT_TTL)
    row = cassandra_session.execute(select, (session_id,)).one()
    # Then it is the TTL written, less the moment that passed
    assert row.player_id == "p1"
    assert 990 <= row.ttl_left <= 1000


def test_row_with_two_second_ttl_is_gone_after_it(cassandra_session, test_settings):
    # Given a row written with a TTL of 2 s
    session_id = uuid.uuid4()
    insert = cassandra_session.prepare(INSERT_START)
    select = cassandra_session.prepare(SELECT_TTL)
    cassandra_session.execute(insert, (session_id, "p2", "SE", datetime.now(UTC), 2))
    assert cassandra_session.execute(select, (session_id,)).one() is not None
    # When 2 s have passed
    time.sleep(2.5)
    # Then the row cannot be read any more
    assert cassandra_session.execute(select, (session_id,)).one() is None


def test_writes_are_sent_at_local_quorum(cassandra_session, test_settings):
    # Given a prepared insert on the service's session
    insert = cassandra_session.prepare(INSERT_START)
    # When it is executed without naming a consistency level
    future = cassandra_session.execute_async(insert, (uuid.uuid4(), "p3", "NO", datetime.now(UTC), 60))
    future.result()
    # Then the request went out at LOCAL_QUORUM
    assert future.message.consistency_level == ConsistencyLevel.LOCAL_QUORUM
