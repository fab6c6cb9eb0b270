"""The billable work of a request, measured where it happens: every statement the driver sends and every page it
receives, every command the Redis client sends and every reply it reads.

It plugs into the service through its connection hooks (``on_new_session``, ``on_new_client``): each session
and client gets a meter of its own, which counts into a tally while one is set (``measuring``). A Lambda
environment runs one invocation at a time, so everything its session sends meanwhile, from whichever driver
thread, belongs to that invocation.

- Cassandra: a request-init listener sees each statement before it is sent. A write's row is sized from the
  values the driver serialized, by the roles of its columns in player_sessions.schema; a read's pages are sized
  when the driver decodes them (a row factory wrapped around the session's, which runs before the caller is
  woken, so the tally is complete when the invocation ends). A batch's members are read from what it sends.
- Redis: the client's connections are a subclass that counts commands and bytes both ways.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from cassandra.cluster import ResponseFuture, Session
from cassandra.query import UNSET_VALUE, BatchStatement, BoundStatement, Statement

from player_sessions.schema import TABLES, Table
from player_sessions_local.work.units import (
    Cell,
    Role,
    page_bytes,
    read_units,
    row_bytes,
    value_bytes,
)
from player_sessions_local.work.units import write_units as units_for_rows

_TABLE_OF_QUERY = re.compile(
    r"^\s*(?:SELECT\s.*?\sFROM|INSERT\s+INTO|UPDATE|DELETE\s.*?FROM|DELETE\s+FROM)\s+(?:\w+\.)?(\w+)",
    re.IGNORECASE | re.DOTALL,
)
_CONDITIONAL = re.compile(r"\sIF\s", re.IGNORECASE)
_RANGE_DELETE = re.compile(r"^\s*DELETE\b.*\sWHERE\s.*[<>]", re.IGNORECASE | re.DOTALL)
_SCHEMA: dict[str, Table] = {table.name: table for table in TABLES}


@dataclass
class TableWork:
    """One table's share of a request, in what Keyspaces bills (player_sessions_local.work.units)."""

    rows_written: int = 0
    bytes_written: int = 0
    """Billed (encoded) size of the rows written, without the row and TTL metadata that storage adds."""
    write_units: int = 0
    conditional_writes: int = 0
    """Lightweight transactions: billed as the write, whether the condition held or not."""
    range_deletes: int = 0
    """Deletes of a clustering range: counted as one write unit each (Keyspaces bills the rows they remove,
    which the client does not see)."""
    read_requests: int = 0
    """Pages: each is a read request of its own."""
    rows_read: int = 0
    bytes_read: int = 0
    """Encoded size of the columns returned; Keyspaces bills what it had to read, which may be more."""
    read_units: float = 0.0


@dataclass
class CacheWork:
    """Redis commands and the bytes they moved: what ElastiCache Serverless bills ECPUs on."""

    commands: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class WorkTally:
    tables: dict[str, TableWork] = field(default_factory=dict)
    cache: CacheWork = field(default_factory=CacheWork)

    def table(self, name: str) -> TableWork:
        return self.tables.setdefault(name, TableWork())


class Meter:
    """One session's or client's meter: counts into ``tally`` while it is set."""

    def __init__(self) -> None:
        self.tally: WorkTally | None = None


_meters: weakref.WeakSet[Meter] = weakref.WeakSet()
_measuring_all: list[WorkTally] = []
"""The tallies of the ``measuring()`` blocks open over every meter, innermost last."""


def _new_meter() -> Meter:
    """A meter for a session or client opened now: inside a ``measuring()`` of every meter (a cold start's first
    request opens its connections lazily), it counts into that block's tally from its first request."""
    meter = Meter()
    if _measuring_all:
        meter.tally = _measuring_all[-1]
    _meters.add(meter)
    return meter


@contextmanager
def measuring(meters: Iterable[Meter] | None = None, into: WorkTally | None = None) -> Iterator[WorkTally]:
    """Counts what the meters see (every meter of this process by default, those made during the block
    included) into a fresh tally, or ``into``."""
    chosen = list(_meters if meters is None else meters)
    tally = WorkTally() if into is None else into
    previous = [meter.tally for meter in chosen]
    for meter in chosen:
        meter.tally = tally
    if meters is None:
        _measuring_all.append(tally)
    try:
        yield tally
    finally:
        if meters is None:
            _measuring_all.pop()
            for meter in list(_meters):
                if meter.tally is tally and meter not in chosen:
                    meter.tally = _measuring_all[-1] if _measuring_all else None
        for meter, before in zip(chosen, previous, strict=True):
            meter.tally = before


# --- Cassandra --------------------------------------------------------------------------------------------


def meter_session(session: Session) -> Meter:
    """A session hook (player_sessions.cassandra_connection.on_new_session): sizes what the session sends."""
    meter = _new_meter()
    session.add_request_init_listener(lambda future: _on_request(meter, future))
    session.work_meter = meter
    return meter


def _query_string(statement: Statement | str) -> str:
    if isinstance(statement, BoundStatement):
        return str(statement.prepared_statement.query_string)
    if isinstance(statement, str):
        return statement
    return str(getattr(statement, "query_string", ""))


def _table_name(query: str) -> str | None:
    match = _TABLE_OF_QUERY.match(query)
    return match.group(1).lower() if match else None


def _on_request(meter: Meter, future: ResponseFuture) -> None:
    tally = meter.tally
    if tally is None:
        return
    statement = future.query
    if isinstance(statement, BatchStatement):
        registry = future.session.cluster._prepared_statements
        for is_prepared, query_id, values in statement._statements_and_parameters:
            prepared = registry.get(query_id) if is_prepared else None
            if prepared is not None:
                _count_write(tally, str(prepared.query_string), prepared.column_metadata, values)
        return
    query = _query_string(statement)
    if query.lstrip()[:6].upper() == "SELECT":
        table = _table_name(query)
        if table in _SCHEMA:
            future.row_factory = _sizing_rows(future.row_factory, tally, table)
        return
    if isinstance(statement, BoundStatement):
        _count_write(tally, query, statement.prepared_statement.column_metadata, statement.values)


@dataclass(frozen=True)
class _WriteShape:
    """What sizing a write needs of its statement, worked out once per statement text."""

    table: str
    range_delete: bool
    conditional: bool
    columns_in_table: int
    cells: tuple[tuple[int, str, str], ...]
    """Each sized column: its position among the bound values, its role in the key, its CQL type."""


_write_shapes: dict[str, _WriteShape | None] = {}


def _write_shape(query: str, columns: Sequence[Any]) -> _WriteShape | None:
    """The write's shape (None: not one of the service's tables), worked out from the statement text and its
    bound columns the first time the text is seen (a prepared text always binds the same columns)."""
    if query not in _write_shapes:
        name = _table_name(query)
        _write_shapes[query] = (
            _WriteShape(
                name,
                bool(_RANGE_DELETE.match(query)),
                bool(_CONDITIONAL.search(query)),
                len(_SCHEMA[name].columns),
                tuple(
                    (index, _ROLES[name][column.name], column.type.typename)
                    for index, column in enumerate(columns)
                    if column.name in _ROLES[name]
                ),
            )
            if name in _SCHEMA
            else None
        )
    return _write_shapes[query]


def _count_write(tally: WorkTally, query: str, columns: Sequence[Any], values: Sequence[Any]) -> None:
    shape = _write_shape(query, columns)
    if shape is None:
        return
    work = tally.table(shape.table)
    if shape.range_delete:
        work.range_deletes += 1
        work.write_units += 1
        return
    cells = [
        Cell(role, value_bytes(cql_type, values[index]))
        for index, role, cql_type in shape.cells
        if values[index] is not UNSET_VALUE
    ]
    size = row_bytes(cells, columns_in_table=shape.columns_in_table)
    work.rows_written += 1
    work.bytes_written += size
    work.write_units += units_for_rows([size])
    if shape.conditional:
        work.conditional_writes += 1


def _roles(table: Table) -> dict[str, str]:
    roles = {column.name: Role.PARTITION for column in table.partition_key}
    roles.update({c.column.name: Role.CLUSTERING for c in table.clustering})
    roles.update({column.name: Role.REGULAR for column in table.regular})
    return roles


_ROLES = {table.name: _roles(table) for table in TABLES}
"""Each table's columns by their role in its primary key, which decides how Keyspaces sizes them."""


RowFactory = Callable[[Sequence[str], Sequence[Sequence[Any]]], Any]


def _sizing_rows(row_factory: RowFactory, tally: WorkTally, table_name: str) -> RowFactory:
    """Wraps the future's row factory: each page it decodes is one read request of the sized rows."""
    roles = _ROLES[table_name]
    columns_in_table = len(_SCHEMA[table_name].columns)

    def size_then_build(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
        column_roles = [roles.get(name, Role.REGULAR) for name in names]
        size = page_bytes(column_roles, rows, columns_in_table=columns_in_table)
        work = tally.table(table_name)
        work.read_requests += 1
        work.rows_read += len(rows)
        work.bytes_read += size
        work.read_units += read_units(size)
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
    """Mixed in ahead of redis-py's Connection (or SSLConnection): counts what its client's meter is told to."""

    work_meter: Meter

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        # One command (redis-py packs it itself here, without pack_command); a pipeline goes through
        # pack_commands and send_packed_command instead.
        tally = self.work_meter.tally
        if tally is not None:
            tally.cache.commands += 1
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        commands = list(commands)
        tally = self.work_meter.tally
        if tally is not None:
            tally.cache.commands += len(commands)
        return super().pack_commands(commands)

    def send_packed_command(self, command: str | Iterable[str], check_health: bool = True) -> None:
        tally = self.work_meter.tally
        if tally is not None:
            # redis-py packs bytes (its stubs say str): either way, the length is what goes on the wire.
            chunks = [command] if isinstance(command, str | bytes) else list(command)
            command = chunks
            tally.cache.bytes_sent += sum(len(chunk) for chunk in chunks)
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = super().read_response(*args, **kwargs)
        tally = self.work_meter.tally
        if tally is not None:
            tally.cache.bytes_received += _reply_bytes(reply)
        return reply


def meter_client(client: redis.Redis[bytes]) -> Meter:
    """A client hook (player_sessions.redis_connection.on_new_client): its pool opens metered connections from
    now on (it opens them lazily: all of them)."""
    meter = _new_meter()
    pool = client.connection_pool
    base = pool.connection_class
    pool.connection_class = type(f"Metered{base.__name__}", (_MeteredConnection, base), {"work_meter": meter})
    return meter


def meters_of(session: Session | None, client: redis.Redis[bytes] | None) -> list[Meter]:
    """The meters installed on a session and a client (none where nothing was installed)."""
    found = [getattr(session, "work_meter", None)]
    if client is not None:
        found.append(getattr(client.connection_pool.connection_class, "work_meter", None))
    return [meter for meter in found if meter is not None]


# --- The report -------------------------------------------------------------------------------------------


def work_record(tally: WorkTally) -> dict[str, Any]:
    """The work as one JSON-able record: per table, then the cache, then the billed totals."""
    tables = {
        name: {key: value for key, value in vars(work).items() if value}
        for name, work in sorted(tally.tables.items())
    }
    return {
        "cassandra": tables,
        "write_units": sum(work.write_units for work in tally.tables.values()),
        "read_units": sum(work.read_units for work in tally.tables.values()),
        "cache": vars(tally.cache).copy(),
    }
