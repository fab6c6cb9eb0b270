"""One definition renders the local schema; its rules are visible in the rendered CQL."""

from __future__ import annotations

from player_sessions.schema import (
    COMPLETED_SESSIONS_BY_PLAYER,
    SESSION_STARTS,
    TABLES,
    render_schema_cql,
)


def test_every_table_carries_the_retention_as_default_ttl():
    # When the schema is rendered for a 30-day retention
    statements = render_schema_cql("ks", 30 * 86_400)
    # Then the keyspace comes first and every table has default_time_to_live = 2,592,000
    assert statements[0].startswith("CREATE KEYSPACE IF NOT EXISTS ks WITH replication")
    assert "'SimpleStrategy', 'replication_factor': 1" in statements[0]
    assert len(statements) == 1 + len(TABLES)
    assert all("default_time_to_live = 2592000" in statement for statement in statements[1:])
    assert all(statement.startswith("CREATE TABLE IF NOT EXISTS ks.") for statement in statements[1:])


def test_player_sessions_are_clustered_newest_end_first():
    # When the completed sessions table is rendered
    cql = COMPLETED_SESSIONS_BY_PLAYER.create_cql("ks", 60)
    # Then a player's partition is ordered by end time, newest first
    assert "PRIMARY KEY ((player_id), end_ts, session_id)" in cql
    assert "CLUSTERING ORDER BY (end_ts DESC, session_id ASC)" in cql


def test_starts_are_bucketed_by_hour_and_shard():
    # When the session starts table is rendered
    cql = SESSION_STARTS.create_cql("ks", 60)
    # Then a partition holds one hour of one shard, ordered by country, then newest start first
    assert "PRIMARY KEY ((hour, shard), country, ts, session_id)" in cql
    assert "CLUSTERING ORDER BY (country ASC, ts DESC, session_id ASC)" in cql


def test_column_names_are_unique_within_each_table():
    # Given every table definition / Then none names a column twice
    for table in TABLES:
        names = [column.name for column in table.columns]
        assert len(names) == len(set(names)), table.name
