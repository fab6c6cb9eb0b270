"""Applies the schema of player_sessions.schema to the local Cassandra, and checks the live tables against it;
gives each function's role exactly its grants on the keyspace (player_sessions_local.cassandra_roles).

python -m player_sessions_local.schema_tool apply   # create what is missing (tables, new columns), then verify
python -m player_sessions_local.schema_tool print   # the CQL, for reading
"""

from __future__ import annotations

import argparse
import sys
import time

from cassandra.cluster import NoHostAvailable, Session

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.schema import TABLES, Order, Replication, render_added_columns_cql, render_schema_cql
from player_sessions.settings import Settings, get_settings
from player_sessions_local.cassandra_roles import as_admin, grant_function_roles

_LIVE_COLUMNS = (
    "SELECT table_name, column_name, kind, position, clustering_order, type "
    "FROM system_schema.columns WHERE keyspace_name = ?"
)
_LIVE_TABLE_TTL = "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?"
_LIVE_REPLICATION = "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?"


SCHEMA_AGREEMENT_SECONDS = 120
"""How long each statement may wait for every node to hold it: three JVMs on two cores agree in seconds when
settled, far slower on their first boot."""


class SchemaDriftError(RuntimeError):
    """The live tables differ from the definitions in player_sessions.schema."""


def apply_schema(session: Session, settings: Settings) -> None:
    """Creates the keyspace and tables that are missing (safe to run again), verifies all of them, and grants
    each function's role what it may do there. ``session`` is the administrative role's."""
    agreement = session.cluster.control_connection
    for statement in render_schema_cql(
        settings.keyspace, settings.retention_seconds, Replication.of(settings)
    ):
        result = session.execute(statement, timeout=60)
        # On a cluster, the driver waits up to 10 s for every node to hold the change, then goes on regardless;
        # a table one node does not know yet fails every read that node takes part in ("Unknown CF").
        agreed = result.response_future.is_schema_agreed
        if not agreed and not agreement.wait_for_schema_agreement(wait_time=SCHEMA_AGREEMENT_SECONDS):
            raise SchemaDriftError(
                f"nodes disagree on the schema {SCHEMA_AGREEMENT_SECONDS} s after {statement}"
            )
    for statement in _added_columns(session, settings.keyspace):
        session.execute(statement, timeout=60)
        if not agreement.wait_for_schema_agreement(wait_time=SCHEMA_AGREEMENT_SECONDS):
            raise SchemaDriftError(
                f"nodes disagree on the schema {SCHEMA_AGREEMENT_SECONDS} s after {statement}"
            )
    verify_schema(session, settings)
    grant_function_roles(session, settings.keyspace)


def _added_columns(session: Session, keyspace: str) -> list[str]:
    """The regular columns the definitions have and a live table lacks, added; anything else that differs is
    left to verify_schema to name."""
    live: dict[str, set[str]] = {}
    for row in session.execute(session.prepare(_LIVE_COLUMNS), (keyspace,)):
        live.setdefault(row.table_name, set()).add(row.column_name)
    return render_added_columns_cql(keyspace, live)


def verify_schema(session: Session, settings: Settings) -> None:
    """Raises SchemaDriftError naming every column, key, TTL or replication that differs from the
    definitions and the settings."""
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
    keyspace = session.execute(session.prepare(_LIVE_REPLICATION), (settings.keyspace,)).one()
    expected_replication = _expected_replication(Replication.of(settings))
    if keyspace is not None and dict(keyspace.replication) != expected_replication:
        # Replication is only ever set when the keyspace is created: a change asks for a new keyspace (or an
        # ALTER KEYSPACE and a repair, by hand), never a silent mismatch.
        problems.append(
            f"keyspace {settings.keyspace}: replication {dict(keyspace.replication)} != {expected_replication}"
        )
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


def _expected_replication(replication: Replication) -> dict[str, str]:
    """The replication map as system_schema.keyspaces shows it: the full strategy class, numbers as text."""
    shown = {name: str(value) for name, value in replication.options().items()}
    shown["class"] = f"org.apache.cassandra.locator.{replication.strategy}"
    return shown


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
    """A connection once CQL is accepted and as many nodes are up as the keyspace has replicas: a node may
    answer on its port a moment before it accepts sessions, and a cluster's nodes learn of each other by gossip
    a few seconds after they start (a keyspace of three replicas on one known node refuses every write)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        connection = CassandraConnection(as_admin(settings), use_keyspace=False)
        try:
            session = connection.session()
            up = _nodes_up(session)
            if up >= settings.replication_factor:
                return connection
            connection.close()
            if time.monotonic() > deadline:
                raise DatabaseUnavailableError(
                    f"{up} Cassandra node(s) up, fewer than the {settings.replication_factor} replicas asked for"
                )
        except (DatabaseUnavailableError, NoHostAvailable):
            connection.close()
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def _nodes_up(session: Session) -> int:
    """Nodes the driver knows of (the contact point's peers) and has not seen go down."""
    session.cluster.refresh_nodes()
    return sum(1 for host in session.cluster.metadata.all_hosts() if host.is_up)


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
        statements = render_schema_cql(
            settings.keyspace, settings.retention_seconds, Replication.of(settings)
        )
        print(";\n\n".join(statements) + ";")
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
