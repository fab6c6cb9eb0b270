"""The billable work of a request, measured where it happens: every statement the driver sends and every page it
receives, every command the Redis client sends and every reply it reads.

- Cassandra: a request-init listener on the session sees each statement before it is sent. A write's row is
  sized from the values the driver serialized, by the roles of its columns in player_sessions.schema; a read's
  pages are sized when the driver decodes them (a row factory wrapped around the session's, which runs before
  the caller is woken, so a request's tally is complete when its handler reports it).
- Unlogged batches are ``MeteredBatch``: a batch sent by id and values keeps no statements of its own.
- ``execute_concurrent`` sends most statements from the driver's event loop thread, where the request's
  tally is not current: ``metered_session`` hands it a session that carries the tally along.
- Redis: the client's connections are a subclass that counts commands and bytes both ways.

Work done outside a metered request (start-up, health probes of the pool) counts nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from cassandra.cluster import ResponseFuture, Session
from cassandra.query import UNSET_VALUE, BatchStatement, BoundStatement, PreparedStatement, Statement

from player_sessions.keyspaces_units import Cell, Role, python_value_bytes, read_units, row_bytes, value_bytes
from player_sessions.keyspaces_units import write_units as units_for_rows
from player_sessions.read_meter import ReadTally, attributed_to, current_tally
from player_sessions.schema import TABLES, Table

_TABLE_OF_QUERY = re.compile(
    r"^\s*(?:SELECT\s.*?\sFROM|INSERT\s+INTO|UPDATE|DELETE\s.*?FROM|DELETE\s+FROM)\s+(?:\w+\.)?(\w+)",
    re.IGNORECASE | re.DOTALL,
)
_CONDITIONAL = re.compile(r"\sIF\s", re.IGNORECASE)
_RANGE_DELETE = re.compile(r"^\s*DELETE\b.*\sWHERE\s.*[<>]", re.IGNORECASE | re.DOTALL)
_SCHEMA: dict[str, Table] = {table.name: table for table in TABLES}


class MeteredBatch(BatchStatement):  # type: ignore[misc]  # the driver ships no type information
    """A batch that remembers the bound statements added to it, for the meter to size its rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members: list[BoundStatement] = []

    def add(self, statement: Any, parameters: Any = None) -> MeteredBatch:
        if isinstance(statement, PreparedStatement):
            statement, parameters = statement.bind(parameters), None
        if isinstance(statement, BoundStatement):
            self.members.append(statement)
        super().add(statement, parameters)
        return self


class _CarryingSession:
    """A session whose ``execute_async`` runs with a given tally current, from whichever thread calls it."""

    def __init__(self, session: Session, tally: ReadTally) -> None:
        self._session = session
        self._tally = tally

    def execute_async(self, *args: Any, **kwargs: Any) -> ResponseFuture:
        with attributed_to(self._tally):
            return self._session.execute_async(*args, **kwargs)


def metered_session(session: Session) -> Any:
    """The session to hand to ``execute_concurrent``, so what it sends counts in the current request."""
    tally = current_tally()
    return session if tally is None else _CarryingSession(session, tally)


def install_cassandra_meter(session: Session) -> None:
    session.add_request_init_listener(_on_request)


def _query_string(statement: Statement | str) -> str:
    if isinstance(statement, BoundStatement):
        return str(statement.prepared_statement.query_string)
    if isinstance(statement, str):
        return statement
    return str(getattr(statement, "query_string", ""))


def _table_name(query: str) -> str | None:
    match = _TABLE_OF_QUERY.match(query)
    return match.group(1).lower() if match else None


def _on_request(future: ResponseFuture) -> None:
    tally = current_tally()
    if tally is None:
        return
    statement = future.query
    if isinstance(statement, BatchStatement):
        for member in getattr(statement, "members", ()):
            _count_write(tally, member)
        return
    query = _query_string(statement)
    if query.lstrip()[:6].upper() == "SELECT":
        table = _table_name(query)
        if table in _SCHEMA:
            future.row_factory = _sizing_rows(future.row_factory, tally, table)
        return
    if isinstance(statement, BoundStatement):
        _count_write(tally, statement)


def _count_write(tally: ReadTally, statement: BoundStatement) -> None:
    query = _query_string(statement)
    name = _table_name(query)
    if name not in _SCHEMA:
        return
    table = _SCHEMA[name]
    work = tally.table(name)
    if _RANGE_DELETE.match(query):
        work.range_deletes += 1
        work.write_units += 1
        return
    roles = _ROLES[name]
    cells = [
        Cell(roles[column.name], value_bytes(column.type.typename, value))
        for column, value in zip(statement.prepared_statement.column_metadata, statement.values, strict=True)
        if column.name in roles and value is not UNSET_VALUE
    ]
    size = row_bytes(cells, columns_in_table=len(table.columns))
    work.rows_written += 1
    work.bytes_written += size
    work.write_units += units_for_rows([size])
    if _CONDITIONAL.search(query):
        work.conditional_writes += 1


def _roles(table: Table) -> dict[str, str]:
    roles = {column.name: Role.PARTITION for column in table.partition_key}
    roles.update({c.column.name: Role.CLUSTERING for c in table.clustering})
    roles.update({column.name: Role.REGULAR for column in table.regular})
    return roles


_ROLES = {table.name: _roles(table) for table in TABLES}
"""Each table's columns by their role in its primary key, which decides how Keyspaces sizes them."""


RowFactory = Callable[[Sequence[str], Sequence[Sequence[Any]]], Any]


def _sizing_rows(row_factory: RowFactory, tally: ReadTally, table_name: str) -> RowFactory:
    """Wraps the future's row factory: each page it decodes is one read request of the sized rows."""
    roles = _ROLES[table_name]
    columns_in_table = len(_SCHEMA[table_name].columns)

    def size_then_build(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
        column_roles = [roles.get(name, Role.REGULAR) for name in names]
        page_bytes = sum(
            row_bytes(
                (
                    Cell(role, python_value_bytes(value))
                    for role, value in zip(column_roles, row, strict=True)
                ),
                columns_in_table=columns_in_table,
            )
            for row in rows
        )
        work = tally.table(table_name)
        work.read_requests += 1
        work.rows_read += len(rows)
        work.bytes_read += page_bytes
        work.read_units += read_units(page_bytes)
        return row_factory(names, rows)

    return size_then_build


# --- Redis ------------------------------------------------------------------------------------------------


def _reply_bytes(reply: object) -> int:
    if reply is None:
        return 0
    if isinstance(reply, bytes | bytearray):
        return len(reply)
    if isinstance(reply, str):
        return len(reply.encode())
    if isinstance(reply, list | tuple):
        return sum(_reply_bytes(item) for item in reply)
    return len(str(reply))


if TYPE_CHECKING:
    _ConnectionBase = redis.connection.Connection
else:
    _ConnectionBase = object


class _MeteredConnection(_ConnectionBase):
    """Mixed in ahead of redis-py's Connection (or SSLConnection): counts what the current request sends and
    reads."""

    def pack_command(self, *args: Any) -> list[bytes]:
        tally = current_tally()
        if tally is not None:
            tally.cache.commands += 1
        return super().pack_command(*args)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        commands = list(commands)
        tally = current_tally()
        if tally is not None:
            tally.cache.commands += len(commands)
        return super().pack_commands(commands)

    def send_packed_command(self, command: str | Iterable[str], check_health: bool = True) -> None:
        tally = current_tally()
        if tally is not None:
            # redis-py packs bytes (its stubs say str): either way, the length is what goes on the wire.
            chunks = [command] if isinstance(command, str | bytes) else list(command)
            command = chunks
            tally.cache.bytes_sent += sum(len(chunk) for chunk in chunks)
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        tally = current_tally()
        if tally is not None:
            tally.cache.bytes_received += _reply_bytes(reply)
        return reply


def install_redis_meter(client: redis.Redis[bytes]) -> None:
    """The client's pool opens metered connections from now on (it opens them lazily: all of them)."""
    pool = client.connection_pool
    base = pool.connection_class
    if not issubclass(base, _MeteredConnection):
        pool.connection_class = type(f"Metered{base.__name__}", (_MeteredConnection, base), {})


# --- The report -------------------------------------------------------------------------------------------


def work_record(tally: ReadTally) -> dict[str, Any]:
    """The request's work as one JSON-able record: per table, then the cache, then the billed totals."""
    tables = {
        name: {key: value for key, value in vars(work).items() if value}
        for name, work in sorted(tally.tables.items())
    }
    return {
        "cassandra": tables,
        "write_units": sum(work.write_units for work in tally.tables.values()),
        "read_units": sum(work.read_units for work in tally.tables.values()),
        "cache": vars(tally.cache).copy(),
        "rows_read": tally.rows,
        "partitions_read": tally.partitions,
    }
