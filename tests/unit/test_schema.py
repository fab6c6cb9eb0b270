"""One definition renders the local schema; its rules are visible in the rendered CQL."""

from __future__ import annotations

from player_sessions.schema import (
    COMPLETED_SESSIONS_BY_PLAYER,
    SESSION_STARTS,
    TABLES,
    Replication,
    render_keyspace_cql,
    render_schema_cql,
)
from player_sessions.settings import DatabaseMode, ReplicationStrategy, Settings


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


def test_the_replication_strategy_comes_from_the_settings():
    # Given the settings of a three-node cluster, of the one local node, and of Amazon Keyspaces
    cluster = Settings(replication_strategy=ReplicationStrategy.NETWORK_TOPOLOGY, replication_factor=3)
    one_node = Settings()
    keyspaces = Settings(database_mode=DatabaseMode.KEYSPACES, replication_factor=3)
    # When each keyspace is rendered
    rendered = {
        name: render_keyspace_cql("ks", Replication.of(settings))
        for name, settings in (("cluster", cluster), ("one node", one_node), ("keyspaces", keyspaces))
    }
    # Then the cluster places three replicas in its datacenter, the one node keeps one, and Keyspaces is left
    # to manage its own (no replication factor in its CQL)
    assert rendered == {
        "cluster": "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}",
        "one node": "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        "keyspaces": "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'SingleRegionStrategy'}",
    }


def test_the_cluster_schema_is_the_same_tables_replicated_and_reading_around_a_slow_replica():
    # Given the schema rendered for one node and for a three-node cluster
    cluster = Replication(ReplicationStrategy.NETWORK_TOPOLOGY.value, 3, "dc-west")
    one_node, three = render_schema_cql("ks", 60), render_schema_cql("ks", 60, cluster)
    # Then the keyspace statement names the datacenter from the settings, and each table of the cluster waits
    # at most 50 ms for a replica before reading from another
    assert three[0].endswith("{'class': 'NetworkTopologyStrategy', 'dc-west': 3}")
    assert [cql.replace(" AND speculative_retry = 'MIN(99p,50ms)'", "") for cql in three[1:]] == one_node[1:]
    assert all(cql.endswith("speculative_retry = 'MIN(99p,50ms)'") for cql in three[1:])
    assert not any("speculative_retry" in cql for cql in one_node)
