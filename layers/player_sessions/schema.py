"""The tables, defined once.

The same definitions render the CQL applied to the local Cassandra (``render_schema_cql``) and give the
Amazon Keyspaces tables of the CDK app (``infra_cdk``). Why the tables look like this is in
docs/decisions.md ("Data model").
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum

from player_sessions.settings import DatabaseMode, ReplicationStrategy, Settings


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

    def create_cql(self, keyspace: str, default_ttl_seconds: int, extra_options: tuple[str, ...] = ()) -> str:
        column_lines = ",\n".join(f"    {column.name} {column.cql_type}" for column in self.columns)
        partition = ", ".join(column.name for column in self.partition_key)
        clustering_names = "".join(f", {c.column.name}" for c in self.clustering)
        options = [f"default_time_to_live = {default_ttl_seconds}", *extra_options]
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

SEEN_COLUMNS = (Column("seen_through", "bigint"), Column("seen_fold", "bigint"))
"""An arrival's models.Seen (both null when nothing was read)."""

START_ARRIVALS = Table(
    name="start_arrivals",
    partition_key=(Column("slot", "bigint"), Column("shard", "int")),
    clustering=(
        ClusteringColumn(Column("session_id", "uuid"), Order.ASC),
        ClusteringColumn(Column("ts", "timestamp"), Order.ASC),
        ClusteringColumn(Column("country", "text"), Order.ASC),
    ),
    regular=(Column("player_id", "text"), *SEEN_COLUMNS),
    purpose=(
        "Every stored start once more, by the second of server time it was stored in (its arrival slot): what "
        "the builder folds into the rollups, and the short unfolded tail that readers count themselves; with "
        "what storing it read first (seen_through, seen_fold: models.Seen)."
    ),
)

ARRIVAL_MINUTES = Table(
    name="arrival_minutes",
    partition_key=(Column("scope", "text"),),
    clustering=(ClusteringColumn(Column("minute", "timestamp"), Order.ASC),),
    regular=(),
    purpose=(
        "The minutes of server time that hold arrival slots with records, per family (``scope``): the builder "
        "skips the others."
    ),
)

START_MARKS = Table(
    name="start_marks",
    partition_key=(Column("session_id", "uuid"),),
    clustering=(
        ClusteringColumn(Column("ts", "timestamp"), Order.ASC),
        ClusteringColumn(Column("country", "text"), Order.ASC),
    ),
    regular=(Column("slot", "bigint"),),
    purpose=(
        "The fold that counted each start (``slot`` holds its fold id: arrival slot x 64 + part): a start is "
        "counted once, however often it arrives."
    ),
)

ROLLUP_FOLDS = Table(
    name="rollup_folds",
    partition_key=(Column("slot", "bigint"),),
    clustering=(),
    regular=(Column("starts", "text"),),
    purpose=(
        "The starts one fold counts (``slot`` holds its fold id), decided once (the first fold to write it "
        "wins), as JSON."
    ),
)

START_COUNT_ROLLUPS = Table(
    name="start_count_rollups",
    partition_key=(Column("level", "text"), Column("period", "timestamp")),
    clustering=(
        ClusteringColumn(Column("bucket", "timestamp"), Order.ASC),
        ClusteringColumn(Column("slot", "bigint"), Order.ASC),
        # In the key: a slot's delta, rewritten by a builder that folds it again, never replaces a base.
        ClusteringColumn(Column("base", "boolean"), Order.ASC),
    ),
    regular=(Column("counts", "text"),),
    purpose=(
        "Exact start counts per country of each bucket (second to month): one immutable delta row per folded "
        "fold that changed the bucket (``slot`` holds its fold id), and, after compaction, a base row that sums "
        "every fold up to its own."
    ),
)

ROLLUP_PROGRESS = Table(
    name="rollup_progress",
    partition_key=(Column("name", "text"),),
    clustering=(),
    regular=(Column("slot", "bigint"),),
    purpose=(
        "Per part, the newest arrival slot folded with every slot before it (each builder's watermark); and the "
        "cache's debt, rows ``cache epoch owed`` and ``cache epoch paid`` (repositories.cache_debt)."
    ),
)

PLAYER_WRITES = Table(
    name="player_writes",
    partition_key=(Column("player_hash", "blob"),),
    clustering=(
        ClusteringColumn(Column("session_id", "uuid"), Order.ASC),
        ClusteringColumn(Column("kind", "text"), Order.ASC),
        ClusteringColumn(Column("ts", "timestamp"), Order.ASC),
        ClusteringColumn(Column("country", "text"), Order.ASC),
        ClusteringColumn(Column("slot", "bigint"), Order.ASC),
    ),
    regular=(Column("shard", "int"),),
    purpose=(
        "What was written for each player, under the player id's keyed hash: a start (its row in "
        "session_starts), its arrivals (their slots), an end. An erasure or an export reads one partition "
        "instead of scanning; kept as long as the rows it points at."
    ),
)

ERASED_PLAYERS = Table(
    name="erased_players",
    partition_key=(Column("player_hash", "blob"),),
    clustering=(),
    regular=(Column("erased_at", "timestamp"), Column("erasure_id", "uuid")),
    purpose=(
        "The erased players, by the keyed hash of their id, with the time of the latest erasure: ingest "
        "discards their events stamped before it (a replay cannot bring the data back). Kept for the retention."
    ),
)

ERASURES = Table(
    name="erasures",
    partition_key=(Column("erasure_id", "uuid"),),
    clustering=(),
    regular=(
        Column("player_hash", "blob"),
        Column("asked_at", "timestamp"),
        Column("finished_at", "timestamp"),
        Column("removed", "text"),
        Column("completed_by", "uuid"),
    ),
    purpose="The receipt of each erasure: when it was asked, when it finished, what it removed (as JSON).",
)


@dataclass(frozen=True)
class RollupFamily:
    """An exact count kept the way session starts are: records stored by arrival slot, folded by the builder
    into rollups, each record counted once (its mark), the unfolded tail read raw (docs/how-to-change.md, "Add
    an exact count"). A record is (session id, ts, label): ``ts`` places it in the buckets, the label says what
    it adds (domain.country_starts.records)."""

    name: str
    """Its watermarks are named ``<name>:<part>`` in rollup_progress."""
    arrivals: Table
    marks: Table
    folds: Table
    rollups: Table
    arrival_scope: str
    """Its partition of arrival_minutes."""

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.arrivals, self.marks, self.folds, self.rollups)


STARTS = RollupFamily("starts", START_ARRIVALS, START_MARKS, ROLLUP_FOLDS, START_COUNT_ROLLUPS, "all")


def _family_like_starts(name: str, prefix: str, what: str) -> RollupFamily:
    """A family whose four tables have the starts family's columns (without the arrivals' player id: its records
    name no player, so an erasure has nothing to take out of them)."""

    def like(table: Table, suffix: str, purpose: str, regular: tuple[Column, ...] | None = None) -> Table:
        return Table(
            f"{prefix}_{suffix}",
            table.partition_key,
            table.clustering,
            table.regular if regular is None else regular,
            purpose,
        )

    return RollupFamily(
        name,
        like(
            START_ARRIVALS,
            "arrivals",
            f"Every {what} record by its arrival slot, as start_arrivals.",
            SEEN_COLUMNS,
        ),
        like(START_MARKS, "marks", f"The fold that counted each {what} record, as start_marks."),
        like(ROLLUP_FOLDS, "folds", f"The {what} records each fold counts, as rollup_folds."),
        like(START_COUNT_ROLLUPS, "rollups", f"Exact {what} figures per bucket, as start_count_rollups."),
        name,
    )


COMPLETIONS = _family_like_starts("completions", "completion", "completed session (placed by its start)")
"""A record per session with both halves stored, at its start's ts: subtracted from the starts, it leaves the
sessions still open."""
LENGTHS = _family_like_starts("lengths", "length", "session length (placed by its end)")
"""A record per session with both halves stored, at its end's ts, labelled with its duration."""
FAMILIES: tuple[RollupFamily, ...] = (STARTS, COMPLETIONS, LENGTHS)

TABLES: tuple[Table, ...] = (
    SESSIONS,
    COMPLETED_SESSIONS_BY_PLAYER,
    SESSION_STARTS,
    START_ARRIVALS,
    ARRIVAL_MINUTES,
    START_MARKS,
    ROLLUP_FOLDS,
    START_COUNT_ROLLUPS,
    *COMPLETIONS.tables,
    *LENGTHS.tables,
    ROLLUP_PROGRESS,
    PLAYER_WRITES,
    ERASED_PLAYERS,
    ERASURES,
)


@dataclass(frozen=True)
class Replication:
    """Where the keyspace's replicas go: a local or self-run Cassandra's strategy, or Keyspaces' own."""

    strategy: str
    """SimpleStrategy, NetworkTopologyStrategy, or SingleRegionStrategy (Amazon Keyspaces: three replicas in
    three availability zones of the region, managed by the service; it takes no replication factor)."""
    factor: int = 1
    datacenter: str = "datacenter1"

    @classmethod
    def of(cls, settings: Settings) -> Replication:
        if settings.database_mode is DatabaseMode.KEYSPACES:
            return cls(KEYSPACES_STRATEGY)
        return cls(
            settings.replication_strategy.value, settings.replication_factor, settings.cassandra_datacenter
        )

    def table_options(self) -> tuple[str, ...]:
        """Options of every table for this replication. With replicas to spare, a read waits at most 50 ms (or
        the table's 99th percentile, if lower) for a replica before asking another: a replica that just died is
        still sent reads until the failure detector convicts it, 10 to 20 s later, and every such read would
        otherwise wait for it until the client's timeout (measured: tests/cluster, docs/faults.md)."""
        if self.strategy == KEYSPACES_STRATEGY or self.factor < 3:
            return ()
        return (SPECULATIVE_RETRY,)

    def options(self) -> dict[str, str | int]:
        """The replication map: the strategy's class and, except on Keyspaces, how many replicas go where."""
        if self.strategy == KEYSPACES_STRATEGY:
            return {"class": KEYSPACES_STRATEGY}
        where = (
            self.datacenter if self.strategy == ReplicationStrategy.NETWORK_TOPOLOGY else "replication_factor"
        )
        return {"class": self.strategy, where: self.factor}

    def cql_map(self) -> str:
        return "{" + ", ".join(f"'{name}': {value!r}" for name, value in self.options().items()) + "}"


KEYSPACES_STRATEGY = "SingleRegionStrategy"
SPECULATIVE_RETRY = "speculative_retry = 'MIN(99p,50ms)'"
ONE_NODE = Replication(ReplicationStrategy.SIMPLE.value)


def render_keyspace_cql(keyspace: str, replication: Replication = ONE_NODE) -> str:
    return f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication.cql_map()}"


def render_drop_keyspace_cql(keyspace: str) -> str:
    """Removes a local keyspace and its data (the benchmark starts each of its keyspaces empty)."""
    return f"DROP KEYSPACE IF EXISTS {keyspace}"


def render_schema_cql(
    keyspace: str, default_ttl_seconds: int, replication: Replication = ONE_NODE
) -> list[str]:
    """Every statement that creates the schema, in order; each is safe to apply again."""
    return [render_keyspace_cql(keyspace, replication)] + [
        table.create_cql(keyspace, default_ttl_seconds, replication.table_options()) for table in TABLES
    ]


def render_added_columns_cql(keyspace: str, live: Mapping[str, Set[str]]) -> list[str]:
    """``ALTER TABLE ... ADD`` for each regular column a live table (``live``: its columns, by table) lacks: the
    one change to a live table that is safe (deployed, the stack's update makes it: Keyspaces' UpdateTable
    ``addColumns``)."""
    return [
        f"ALTER TABLE {keyspace}.{table.name} ADD {column.name} {column.cql_type}"
        for table in TABLES
        if table.name in live
        for column in table.regular
        if column.name not in live[table.name]
    ]
