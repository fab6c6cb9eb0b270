"""Who may touch what: the one statement of access.

Each function is given the statements it sends (the groups are defined beside the statements, in the
repositories); its table grants follow from them. The CDK app turns the grants into IAM policies on the
Keyspaces tables (infra_cdk.data), and the local schema tool into Cassandra roles holding exactly the same
``SELECT`` and ``MODIFY`` grants (player_sessions_local.cassandra_roles), so a statement outside its function's
grants fails locally as it would deployed. tests/integration/test_statement_of_access.py records what each
function really sends and holds it to this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from player_sessions.repositories import (
    cache_debt,
    cassandra_player_data,
    cassandra_rollups,
    cassandra_starts,
    cassandra_store,
)
from player_sessions.repositories.cql import Access, Cql
from player_sessions.routes import (
    COUNTRY_STARTS,
    INGEST_EVENTS,
    PLAYER_DATA,
    PLAYER_SESSIONS,
    ROLLUP_BUILDER,
    LambdaFunction,
)
from player_sessions.schema import TABLES, Table

FUNCTION_STATEMENTS: dict[LambdaFunction, tuple[Cql, ...]] = {
    INGEST_EVENTS: cassandra_store.INGEST_STATEMENTS + cache_debt.INVALIDATOR_STATEMENTS,
    PLAYER_SESSIONS: (
        cassandra_store.HISTORY_STATEMENTS + cassandra_store.HEALTH_STATEMENTS + cache_debt.LOOKUP_STATEMENTS
    ),
    COUNTRY_STARTS: cassandra_starts.READER_STATEMENTS + cache_debt.LOOKUP_STATEMENTS,
    ROLLUP_BUILDER: (
        cassandra_rollups.BUILDER_STATEMENTS
        + cache_debt.INVALIDATOR_STATEMENTS
        + cache_debt.COLLECTOR_STATEMENTS
    ),
    PLAYER_DATA: cassandra_player_data.PLAYER_DATA_STATEMENTS,
}
"""Every statement each function can send, and nothing else."""


@dataclass(frozen=True)
class TableAccess:
    select: tuple[Table, ...]
    modify: tuple[Table, ...]

    def of(self, access: Access) -> tuple[Table, ...]:
        return self.select if access is Access.SELECT else self.modify


def table_access(function: LambdaFunction) -> TableAccess:
    """The tables the function's statements read (Select) and write (Modify), in schema order."""
    statements = FUNCTION_STATEMENTS[function]
    return TableAccess(
        select=_tables(statements, Access.SELECT),
        modify=_tables(statements, Access.MODIFY),
    )


def _tables(statements: tuple[Cql, ...], access: Access) -> tuple[Table, ...]:
    names = {statement.table for statement in statements if access in statement.access}
    return tuple(table for table in TABLES if table.name in names)
