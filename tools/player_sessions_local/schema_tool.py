"""Applies the schema of player_sessions.schema to the local Cassandra, and checks the live tables against it.

python -m player_sessions_local.schema_tool apply   # create what is missing, then verify
python -m player_sessions_local.schema_tool print   # the CQL, for reading
"""

from __future__ import annotations

import argparse
import sys
import time

from cassandra.cluster import NoHostAvailable, Session

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.schema import TABLES, Order, render_schema_cql
from player_sessions.settings import Settings, get_settings

_LIVE_COLUMNS = (
    "SELECT table_name, column_name, kind, position, clustering_order, type "
    "FROM system_schema.columns WHERE keyspace_name = ?"
)
_LIVE_TABLE_TTL = "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?"


class SchemaDriftError(RuntimeError):
    """The live tables differ from the definitions in player_sessions.schema."""


def apply_schema(session: Session, settings: Settings) -> None:
    """Creates the keyspace and tables that are missing (safe to run again), then verifies all of them."""
    for statement in render_schema_cql(settings.keyspace, settings.retention_seconds):
        session.execute(statement, timeout=60)
    verify_schema(session, settings)


def verify_schema(session: Session, settings: Settings) -> None:
    """Raises SchemaDriftError naming every column, key or TTL that differs from the definitions."""
    live: dict[str, dict[str, tuple[str, int, str, str]]] = {}
    for row in session.execute(session.prepare(_LIVE_COLUMNS), (settings.keyspace,)):
        live.setdefault(row.table_name, {})[row.column_name] = (
            row.kind,
            row.position,
            row.clustering_order,
            row.type,
        )
    ttls = {
        row.table_name: row.default_time_to_live
        for row in session.execute(session.prepare(_LIVE_TABLE_TTL), (settings.keyspace,))
    }
    problems: list[str] = []
    for table in TABLES:
        expected = _expected_columns(table)
        actual = live.get(table.name)
        if actual is None:
            problems.append(f"{table.name}: table missing")
            continue
        for name, spec in expected.items():
            if actual.get(name) != spec:
                problems.append(f"{table.name}.{name}: expected {spec}, found {actual.get(name)}")
        for name in actual.keys() - expected.keys():
            problems.append(f"{table.name}.{name}: column not in the definition")
        if ttls.get(table.name) != settings.retention_seconds:
            problems.append(
                f"{table.name}: default_time_to_live {ttls.get(table.name)} != {settings.retention_seconds}"
            )
    if problems:
        raise SchemaDriftError("live schema differs from player_sessions.schema: " + "; ".join(problems))


def _expected_columns(table) -> dict[str, tuple[str, int, str, str]]:
    expected = {
        column.name: ("partition_key", position, "none", column.cql_type)
        for position, column in enumerate(table.partition_key)
    }
    for position, clustering in enumerate(table.clustering):
        order = "desc" if clustering.order is Order.DESC else "asc"
        expected[clustering.column.name] = ("clustering", position, order, clustering.column.cql_type)
    for column in table.regular:
        expected[column.name] = ("regular", -1, "none", column.cql_type)
    return expected


def _connect_with_patience(settings: Settings, wait_seconds: float) -> CassandraConnection:
    # The node may answer on its port a moment before it accepts CQL sessions.
    deadline = time.monotonic() + wait_seconds
    while True:
        connection = CassandraConnection(settings, use_keyspace=False)
        try:
            connection.session()
            return connection
        except (DatabaseUnavailableError, NoHostAvailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["apply", "print"])
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for Cassandra to accept CQL"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "print":
        print(";\n\n".join(render_schema_cql(settings.keyspace, settings.retention_seconds)) + ";")
        return 0
    connection = _connect_with_patience(settings, args.wait)
    try:
        apply_schema(connection.session(), settings)
    finally:
        connection.close()
    print(f"schema applied and verified: keyspace {settings.keyspace}, {len(TABLES)} tables", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
