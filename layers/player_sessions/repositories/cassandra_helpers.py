"""What both Cassandra stores share: prepared statements once per connection, results read past empty pages,
requests sent concurrently, and driver failures turned into a 503 naming the step."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cassandra import DriverException, OperationTimedOut, RequestExecutionException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, NoHostAvailable, ResultSet
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.observability import MetricUnit, logger, metrics
from player_sessions.read_counts import count_read
from player_sessions.repositories.cql import Cql

DRIVER_FAILURES = (NoHostAvailable, OperationTimedOut, RequestExecutionException, DriverException, OSError)
MAX_IN_VALUES = 100
"""Keyspaces takes at most 100 values in an IN, and counts the product of two IN lists."""


class PreparedStatements:
    """Each statement prepared once per connection, on first use, then reused by every request."""

    def __init__(self, connection: CassandraConnection) -> None:
        self._connection = connection
        self._prepared: dict[str, PreparedStatement] = {}

    def __call__(self, cql: Cql) -> PreparedStatement:
        statement = self._prepared.get(cql.text)
        if statement is None:
            statement = self._connection.prepare(cql.text, idempotent=cql.is_idempotent)
            self._prepared[cql.text] = statement
        return statement


Statement = tuple[Cql, tuple[Any, ...]]
"""One statement and its parameters."""


def request_of(prepared: PreparedStatements, statement: Statement | list[Statement]) -> tuple[Any, Any]:
    """What ``execute_all`` takes for a statement; a list of statements (all of one partition) goes as one
    unlogged batch, a list of one as that statement alone."""
    if isinstance(statement, list) and len(statement) == 1:
        (statement,) = statement
    if isinstance(statement, tuple):
        cql, params = statement
        return prepared(cql), params
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for cql, params in statement:
        batch.add(prepared(cql), params)
    batch.is_idempotent = all(cql.is_idempotent for cql, _ in statement)
    return batch, None


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


def utc(moment: datetime) -> datetime:
    # The driver returns naive datetimes that are in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def utc_or_none(moment: datetime | None) -> datetime | None:
    """A cell that may be unset (one half of a session stored so far)."""
    return None if moment is None else utc(moment)


def first_row(result: Iterable[Any]) -> Any | None:
    """The result's first row, fetching further pages while they come back empty: Amazon Keyspaces may answer
    a page without rows before one with rows (it pages an ``IN`` query by subquery, and any query by data
    read), so a result's first page says nothing about the next ones. Never ``ResultSet.one()``."""
    return next(iter(result), None)


def counted_first_row(result: Iterable[Any]) -> Any | None:
    """``first_row`` of a read of one partition, counted into the request's reads (read_counts) as one request."""
    row = first_row(result)
    count_read(rows=0 if row is None else 1, partitions=1)
    return row


def counted_first_rows(results: Iterable[Iterable[Any]]) -> list[Any | None]:
    """``first_row`` of each of several reads of one partition each (sent concurrently), in their order, all
    counted into the request's reads: a request and a partition each."""
    rows = [first_row(result) for result in results]
    count_read(rows=sum(row is not None for row in rows), partitions=len(rows), requests=len(rows))
    return rows


def counted_pages(result: ResultSet, *, partitions: int) -> Iterator[Any]:
    """The rows of a paged read, each page counted into the request's reads (read_counts) as it is fetched:
    one request and the rows Cassandra returned, whether or not the caller reads them all. The partitions
    the statement addresses count once, with its first page."""
    count_read(rows=len(result.current_rows), partitions=partitions)
    while True:
        yield from result.current_rows
        if not result.has_more_pages:
            return
        result.fetch_next_page()
        count_read(rows=len(result.current_rows), partitions=0)


def execute_all(
    session: Any,
    pairs: Sequence[tuple[Any, Any]],
    *,
    concurrency: int,
    execution_profile: object = EXEC_PROFILE_DEFAULT,
) -> list[Any]:
    """Runs the statements concurrently and returns their results in order; the first error is raised.

    Statements that time out are all sent once more when every one of them is idempotent (``Cql.is_idempotent``:
    all but the builder's conditional writes): on a cluster that has just lost a replica, a coordinator waits for
    the dead replica until its failure detector convicts it, a second or two, and a read sent again after the
    timeout meets a cluster that knows; a coordinator that paused answers the second time, or another one does
    (measured: tests/cluster, docs/faults.md).
    """

    try:
        return _run_all(session, pairs, concurrency, execution_profile)
    except OperationTimedOut:
        if not _all_idempotent(pairs):
            raise
        return _run_all(session, pairs, concurrency, execution_profile)


def send_all(
    session: Any, pairs: Sequence[tuple[Any, Any]], *, execution_profile: object = EXEC_PROFILE_DEFAULT
) -> Callable[[], list[Any]]:
    """Sends a few statements now, all at once, and returns what waits for their results, in order, as
    ``execute_all`` would have returned them (the first error raised; statements that timed out sent once more,
    together, when every one is idempotent): the caller's thread does other work while Cassandra answers."""
    futures = [
        session.execute_async(statement, params, execution_profile=execution_profile)
        for statement, params in pairs
    ]

    def results() -> list[Any]:
        try:
            return [future.result() for future in futures]
        except OperationTimedOut:
            if not _all_idempotent(pairs):
                raise
            return _run_all(session, pairs, len(pairs), execution_profile)

    return results


def _run_all(
    session: Any, pairs: Sequence[tuple[Any, Any]], concurrency: int, execution_profile: object
) -> list[Any]:
    results = execute_concurrent(
        session,
        pairs,
        concurrency=concurrency,
        raise_on_first_error=True,
        execution_profile=execution_profile,
    )
    return [result for _, result in results]


def _all_idempotent(pairs: Sequence[tuple[Any, Any]]) -> bool:
    return all(getattr(statement, "is_idempotent", False) for statement, _ in pairs)


@contextmanager
def unavailable_on_failure(action: str) -> Iterator[None]:
    """Records the database latency of the step, and turns any driver failure into DatabaseUnavailableError
    (503, retry later) naming what failed."""
    started = time.perf_counter()
    try:
        yield
    except DatabaseUnavailableError:
        raise
    except DRIVER_FAILURES as error:
        # What failed, for the client; which driver error (hosts, what each answered) is the cause, for the log.
        raise DatabaseUnavailableError(f"Cassandra could not {action}") from error
    finally:
        metrics.add_metric(
            name="DatabaseLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )


Reads = tuple[Cql, list[tuple[Any, ...]]]
"""A statement and the parameters of each request that sends it."""


def in_groups(keys: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The parameters of ``IN`` reads of the partitions of ``keys`` (one key column): a hundred to a request."""
    return [(list(group),) for group in chunks(keys, MAX_IN_VALUES)]


def by_key(in_cql: Cql, one_cql: Cql, keys: Sequence[Any]) -> tuple[Reads, Reads]:
    """``in_or_one_each``'s two ways to read the partitions of ``keys`` (one key column, each key once):
    ``IN`` reads of up to a hundred, and one partition per request."""
    return (in_cql, in_groups(keys)), (one_cql, [(key,) for key in keys])


def in_or_one_each(
    run: Callable[[Cql, list[tuple[Any, ...]], bool], list[Any]],
    in_reads: Reads,
    one_each: Reads,
    *,
    per_partition: bool,
) -> tuple[list[Any], int]:
    """The rows of a read of many partitions, and the requests it took: up to a hundred partitions to an
    ``IN``, or, when asked or when an ``IN`` failed, one partition per request (``run`` sends a statement with
    each of the parameters, concurrently, and is told whether they are ``IN`` reads). An ``IN`` fails whole
    when one of its partitions does, and its coordinator waits for every partition's replicas: with a replica
    just lost, the metric's ``IN`` reads timed out for the 10 to 20 s the failure detector needs, where reads
    of one partition, each routed to that partition's live replicas, were served (tests/cluster,
    docs/faults.md). One request per partition costs more requests (and request units: each is billed at
    least one), so it is the fallback, not the rule."""
    requests = 0
    if not per_partition:
        cql, parameters = in_reads
        requests = len(parameters)
        try:
            results = run(cql, parameters, True)
            return [row for result in results for row in result], requests
        except DRIVER_FAILURES as error:
            logger.warning(
                "an IN read failed; reading its partitions one per request",
                extra={"statement": cql.text, "driver_error": repr(error)[:300]},
            )
    cql, parameters = one_each
    results = run(cql, parameters, False)
    return [row for result in results for row in result], requests + len(parameters)
