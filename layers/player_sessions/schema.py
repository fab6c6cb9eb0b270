"""The tables, defined once.

The same definitions render the CQL applied to the local Cassandra (``render_schema_cql``) and give the
Amazon Keyspaces tables of the CDK app (``infra_cdk``). Why the tables look like this is in
docs/decisions.md ("Data model").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Order(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True)
class Column:
    name: str
    cql_type: str


@dataclass(frozen=True)
class ClusteringColumn:
    column: Column
    order: Order = Order.ASC


@dataclass(frozen=True)
class Table:
    name: str
    partition_key: tuple[Column, ...]
    clustering: tuple[ClusteringColumn, ...]
    regular: tuple[Column, ...]
    purpose: str

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*self.partition_key, *(c.column for c in self.clustering), *self.regular)

    def create_cql(self, keyspace: str, default_ttl_seconds: int) -> str:
        column_lines = ",\n".join(f"    {column.name} {column.cql_type}" for column in self.columns)
        partition = ", ".join(column.name for column in self.partition_key)
        clustering_names = "".join(f", {c.column.name}" for c in self.clustering)
        options = [f"default_time_to_live = {default_ttl_seconds}"]
        if self.clustering:
            order = ", ".join(f"{c.column.name} {c.order.value}" for c in self.clustering)
            options.insert(0, f"CLUSTERING ORDER BY ({order})")
        return (
            f"CREATE TABLE IF NOT EXISTS {keyspace}.{self.name} (\n{column_lines},\n"
            f"    PRIMARY KEY (({partition}){clustering_names})\n"
            f") WITH {' AND '.join(options)}"
        )


SESSIONS = Table(
    name="sessions",
    partition_key=(Column("session_id", "uuid"),),
    clustering=(),
    regular=(
        Column("player_id", "text"),
        Column("country", "text"),
        Column("start_ts", "timestamp"),
        Column("end_ts", "timestamp"),
    ),
    purpose="One row per session; its start and end halves meet here, in whatever order they arrive.",
)

COMPLETED_SESSIONS_BY_PLAYER = Table(
    name="completed_sessions_by_player",
    partition_key=(Column("player_id", "text"),),
    clustering=(
        ClusteringColumn(Column("end_ts", "timestamp"), Order.DESC),
        ClusteringColumn(Column("session_id", "uuid"), Order.ASC),
    ),
    regular=(
        Column("start_ts", "timestamp"),
        Column("country", "text"),
    ),
    purpose="A player's completed sessions, newest end first: the last N are the first N rows.",
)

SESSION_STARTS = Table(
    name="session_starts",
    partition_key=(Column("hour", "timestamp"), Column("shard", "int")),
    clustering=(
        ClusteringColumn(Column("country", "text"), Order.ASC),
        ClusteringColumn(Column("ts", "timestamp"), Order.DESC),
        ClusteringColumn(Column("session_id", "uuid"), Order.ASC),
    ),
    regular=(Column("player_id", "text"),),
    purpose="Every session start, bucketed by hour and spread over a few shards; newest first per country.",
)

START_ROLLUPS = Table(
    name="start_rollups",
    partition_key=(Column("level", "text"), Column("period", "timestamp")),
    clustering=(
        ClusteringColumn(Column("bucket", "timestamp"), Order.ASC),
        ClusteringColumn(Column("country", "text"), Order.ASC),
    ),
    regular=(
        Column("starts", "bigint"),
        Column("revision", "timeuuid"),
    ),
    purpose=(
        "Exact start counts per country of closed hours, days and months, built by readers; "
        "the row with country '*' holds the bucket's total and proves the bucket was built."
    ),
)

ROLLUP_REVISIONS = Table(
    name="rollup_revisions",
    partition_key=(Column("level", "text"), Column("period", "timestamp")),
    clustering=(ClusteringColumn(Column("bucket", "timestamp"), Order.ASC),),
    regular=(Column("revision", "timeuuid"),),
    purpose="Changed by every late start written into a closed bucket; a rollup is valid while it matches.",
)

TABLES: tuple[Table, ...] = (
    SESSIONS,
    COMPLETED_SESSIONS_BY_PLAYER,
    SESSION_STARTS,
    START_ROLLUPS,
    ROLLUP_REVISIONS,
)


def render_keyspace_cql(keyspace: str) -> str:
    # Local only: one node, so SimpleStrategy with one replica. Keyspaces manages replication itself.
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )


def render_drop_keyspace_cql(keyspace: str) -> str:
    """Removes a local keyspace and its data (the benchmark starts each of its keyspaces empty)."""
    return f"DROP KEYSPACE IF EXISTS {keyspace}"


def render_schema_cql(keyspace: str, default_ttl_seconds: int) -> list[str]:
    """Every statement that creates the local schema, in order; each is safe to apply again."""
    return [render_keyspace_cql(keyspace)] + [
        table.create_cql(keyspace, default_ttl_seconds) for table in TABLES
    ]
