"""The session store on Cassandra / Amazon Keyspaces.

Every statement is a constant, prepared once per environment and bound with parameters. Writes of a batch go
out concurrently through the driver's ``execute_concurrent``; the only batch statements are unlogged ones of one
partition: a session's two halves, and a player's index rows (up to 30; Keyspaces: at most 30 statements, one
partition).

Every step is idempotent, so a step that found no host up runs once more after the connection saw a host come
back (``_once_more_after_reconnect``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence, Set
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from cassandra import RequestExecutionException
from cassandra.cluster import NoHostAvailable, Session

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import (
    ArrivalWrite,
    CompletedSession,
    EventWrite,
    RecordWrite,
    SessionHalves,
    StoredBefore,
)
from player_sessions.observability import logger
from player_sessions.read_counts import count_read
from player_sessions.repositories.cassandra_helpers import (
    PreparedStatements,
    Statement,
    by_key,
    counted_first_row,
    counted_pages,
    execute_all,
    in_groups,
    in_or_one_each,
    request_of,
    unavailable_on_failure,
    utc,
    utc_or_none,
)
from player_sessions.repositories.cassandra_starts import (
    FAMILY_READS,
    READ_PROGRESS,
    progress_name,
    watermarks_of,
)
from player_sessions.repositories.cql import Cql
from player_sessions.repositories.player_rows import (
    DELETE_COMPLETED,
    FORGET_ARRIVAL_PLAYER,
    FORGET_SESSION_PLAYER,
    FORGET_START_PLAYER,
    READ_ERASED,
    READ_PLAYER_ERASED,
    REMOVE_ARRIVAL,
    REMOVE_END_HALF,
    REMOVE_PLAYER_WRITE,
    REMOVE_START_HALF,
    REMOVE_START_ROW,
    WRITE_PLAYER_WRITE,
    player_write_batches,
    unwrite_statements,
)
from player_sessions.repositories.session_rows import (
    WRITE_ARRIVAL,
    WRITE_END_HALF,
    WRITE_RECORD,
    WRITE_START_HALF,
    WRITE_START_ROW,
    arrival_statements,
    event_statements,
    record_statements,
)
from player_sessions.schema import STARTS
from player_sessions.time_buckets import Level, slot_start

READ_SESSION = Cql(
    "SELECT session_id, player_id, country, start_ts, end_ts FROM sessions WHERE session_id = ?"
)
READ_SESSIONS = Cql(
    "SELECT session_id, player_id, country, start_ts, end_ts FROM sessions WHERE session_id IN ?"
)
WRITE_COMPLETED = Cql(
    "INSERT INTO completed_sessions_by_player (player_id, end_ts, session_id, start_ts, country) "
    "VALUES (?, ?, ?, ?, ?) USING TTL ?"
)
READ_COMPLETED = Cql(
    "SELECT session_id, start_ts, end_ts, country FROM completed_sessions_by_player "
    "WHERE player_id = ? AND end_ts >= ?"
)
WRITE_ARRIVAL_MINUTE = Cql("INSERT INTO arrival_minutes (scope, minute) VALUES (?, ?) USING TTL ?")
PING = Cql("SELECT player_id FROM completed_sessions_by_player WHERE player_id = ? LIMIT 1")
"""/health's read: a partition of the keyspace at LOCAL_QUORUM, so "up" means requests can be served (a node
answers system.local on its own, with its replicas gone). It reads the table its function reads anyway, under
a key no player has (player ids hold no whitespace), so the health check needs no grant of its own."""
PING_KEY = "health check"

INGEST_STATEMENTS = (
    READ_PROGRESS,
    FAMILY_READS[STARTS].marks,
    FAMILY_READS[STARTS].session_marks,
    WRITE_START_HALF,
    WRITE_END_HALF,
    WRITE_START_ROW,
    READ_SESSION,
    READ_SESSIONS,
    WRITE_COMPLETED,
    WRITE_ARRIVAL,
    WRITE_ARRIVAL_MINUTE,
    *WRITE_RECORD.values(),
    WRITE_PLAYER_WRITE,
    READ_ERASED,
    READ_PLAYER_ERASED,
    REMOVE_START_HALF,
    REMOVE_END_HALF,
    REMOVE_START_ROW,
    REMOVE_ARRIVAL,
    FORGET_SESSION_PLAYER,
    FORGET_START_PLAYER,
    FORGET_ARRIVAL_PLAYER,
    REMOVE_PLAYER_WRITE,
    DELETE_COMPLETED,
)
"""What storing a batch of events sends (``read_before_writing``, with the builders' watermarks, ``write_events``,
``read_sessions``, ``write_completed``, ``write_arrivals``, ``write_records``, ``erasures``, ``unwrite``,
``forget_completed``), and the starts' marks read before the arrivals (domain.country_starts.seen)."""
HISTORY_STATEMENTS = (READ_COMPLETED,)
"""What reading a player's completed sessions sends."""
HEALTH_STATEMENTS = (PING,)

MINUTE_RECORD_EXTRA_SECONDS = 86_400
"""A minute's record outlives the arrival it was written for by a day, so that later arrivals of the minute,
stamped up to a day later, need no record of their own."""
# Requests in flight at once per batch: enough for a 10-event batch's writes to go out together.
WRITE_CONCURRENCY = 32
# Rows read past the limit in one page, to absorb the rare duplicate end of a re-sent conflicting event.
PAGE_SLACK = 4

T = TypeVar("T")


class CassandraSessionStore:
    def __init__(self, connection: CassandraConnection) -> None:
        self._connection = connection
        self._statement = PreparedStatements(connection)
        # Minutes this environment already recorded in arrival_minutes (per scope), with when that record expires
        # (the first arrival of a minute costs one round trip more; later ones none, unless they outlive it).
        self._recorded_minutes: dict[tuple[str, datetime], float] = {}

    def _session(self) -> Session:
        return self._connection.session()

    def _once_more_after_reconnect(self, step: Callable[[], T]) -> T:
        """Runs ``step``; if it found no host up, runs it once more as soon as the driver has reopened one.

        The first request after connections died unseen (a frozen environment, a restarted Cassandra) is the
        one that finds them dead: the driver fails it with NoHostAvailable and reconnects within milliseconds.
        During a real outage the connection's grace is soon spent, and the error goes through (503).
        """
        try:
            return step()
        except NoHostAvailable:
            if not self._connection.await_reconnection():
                raise
            return step()

    def _run_concurrently(self, statements: Iterable[Statement | list[Statement]]) -> list[Any]:
        """Runs the statements concurrently; a list of statements (all of one partition) goes as one unlogged
        batch."""
        pairs = [request_of(self._statement, statement) for statement in statements]
        if not pairs:
            return []
        return execute_all(self._session(), pairs, concurrency=WRITE_CONCURRENCY)

    def write_events(self, writes: Sequence[EventWrite], arrivals: Sequence[ArrivalWrite]) -> None:
        with unavailable_on_failure("store the events"):
            self._record_minutes(arrivals)
            self._once_more_after_reconnect(
                lambda: self._run_concurrently(
                    [
                        *event_statements(writes),
                        *arrival_statements(arrivals),
                        *player_write_batches(writes, arrivals),
                    ]
                )
            )

    def _read_partitions(
        self, in_cql: Cql, one_cql: Cql, keys: Sequence[Any], *, per_partition: bool
    ) -> list[Any]:
        """The rows of the partitions of ``keys`` (one key column): up to a hundred to an ``IN`` request, or one
        partition per request when asked or when an ``IN`` failed (cassandra_helpers.in_or_one_each); counted."""
        keys = list(dict.fromkeys(keys))

        def run(cql: Cql, parameters: list[tuple[Any, ...]], _: bool) -> list[Any]:
            return self._run_concurrently((cql, values) for values in parameters)

        rows, requests = self._once_more_after_reconnect(
            lambda: in_or_one_each(run, *by_key(in_cql, one_cql, keys), per_partition=per_partition)
        )
        count_read(rows=len(rows), partitions=len(keys), requests=requests)
        return rows

    def erasures(
        self, player_hashes: Sequence[bytes], *, per_partition: bool = False
    ) -> dict[bytes, datetime]:
        with unavailable_on_failure("store the events (reading the erasure records)"):
            rows = self._read_partitions(
                READ_ERASED, READ_PLAYER_ERASED, player_hashes, per_partition=per_partition
            )
        return _erased_of(rows)

    def read_before_writing(
        self, player_hashes: Sequence[bytes], session_ids: Sequence[UUID], parts: Sequence[int]
    ) -> StoredBefore:
        keys = list(dict.fromkeys(player_hashes))
        names = {progress_name(part): part for part in parts}
        erasure_reads = [(READ_ERASED, parameters) for parameters in in_groups(keys)]
        sessions_wanted = list(dict.fromkeys(session_ids))
        session_reads = [(READ_SESSIONS, parameters) for parameters in in_groups(sessions_wanted)]
        progress_reads = [(READ_PROGRESS, (list(names),))] if names else []
        try:
            with unavailable_on_failure("store the events (reading what the batch meets)"):
                results = self._once_more_after_reconnect(
                    lambda: self._run_concurrently([*erasure_reads, *session_reads, *progress_reads])
                )
        except DatabaseUnavailableError as error:
            # An IN fails whole when one of its partitions does: its coordinator answers that its replicas
            # timed out or are unavailable (cassandra_helpers.in_or_one_each). No host, no connection, or no
            # answer at all within the request timeout (a node or a connection gone silent) is no reason to
            # read again: the batch is refused at once, 503, safe to re-send.
            if not isinstance(error.__cause__, RequestExecutionException):
                raise
            logger.warning(
                "the reads before a batch's writes failed; reading them again, one partition per request",
                extra={"driver_error": repr(error.__cause__)[:300]},
            )
            return StoredBefore(
                self.erasures(keys, per_partition=True),
                self.read_sessions(session_ids, per_partition=True),
                self._watermarks_if_readable(names),
            )
        # The round's results in the order sent: the erasure records, the sessions, the watermarks.
        bounds = (0, len(erasure_reads), len(erasure_reads) + len(session_reads), len(results))
        erased, session_rows, progress = [
            [row for result in results[start:end] for row in result] for start, end in pairwise(bounds)
        ]
        count_read(rows=len(erased), partitions=len(keys), requests=len(erasure_reads))
        count_read(rows=len(session_rows), partitions=len(sessions_wanted), requests=len(session_reads))
        count_read(rows=len(progress), partitions=len(names), requests=len(progress_reads))
        return StoredBefore(_erased_of(erased), _halves_of(session_rows), watermarks_of(progress, names))

    def _watermarks_if_readable(self, names: dict[str, int]) -> dict[int, int]:
        """The watermarks, or none when their read fails too: an arrival stored without what was seen is
        only costlier to read (readers then read its start's mark: domain.country_starts.seen)."""
        if not names:
            return {}
        try:
            with unavailable_on_failure("read the rollup watermarks"):
                results = self._run_concurrently([(READ_PROGRESS, (list(names),))])
        except DatabaseUnavailableError:
            return {}
        rows = [row for result in results for row in result]
        count_read(rows=len(rows), partitions=len(names))
        return watermarks_of(rows, names)

    def unwrite(
        self, writes: Sequence[EventWrite], arrivals: Sequence[ArrivalWrite], keep_starts: Set[UUID]
    ) -> None:
        with unavailable_on_failure("remove the events of an erased player"):
            self._once_more_after_reconnect(
                lambda: self._run_concurrently(unwrite_statements(writes, arrivals, keep_starts))
            )

    def read_sessions(
        self, session_ids: Sequence[UUID], *, per_partition: bool = False
    ) -> dict[UUID, SessionHalves]:
        """Up to a hundred sessions a request, or one per request when asked or when an ``IN`` failed."""
        with unavailable_on_failure("read the sessions back"):
            rows = self._read_partitions(
                READ_SESSIONS, READ_SESSION, session_ids, per_partition=per_partition
            )
        return _halves_of(rows)

    def write_completed(
        self, sessions: Sequence[tuple[CompletedSession, int]], records: Sequence[RecordWrite] = ()
    ) -> None:
        completed = [
            (WRITE_COMPLETED, (s.player_id, s.end_ts, s.session_id, s.start_ts, s.country, ttl))
            for s, ttl in sessions
        ]
        with unavailable_on_failure("store the completed sessions"):
            self._record_minutes(records)
            self._once_more_after_reconnect(
                lambda: self._run_concurrently([*completed, *record_statements(records)])
            )

    def forget_completed(self, sessions: Sequence[CompletedSession]) -> None:
        with unavailable_on_failure("remove the history rows of an erased player"):
            self._once_more_after_reconnect(
                lambda: self._run_concurrently(
                    (DELETE_COMPLETED, (s.player_id, s.end_ts, s.session_id)) for s in sessions
                )
            )

    def write_arrivals(self, arrivals: Sequence[ArrivalWrite]) -> None:
        with unavailable_on_failure("store the arrivals"):
            self._record_minutes(arrivals)
            self._once_more_after_reconnect(
                lambda: self._run_concurrently(
                    [*arrival_statements(arrivals), *player_write_batches((), arrivals)]
                )
            )

    def write_records(self, records: Sequence[RecordWrite]) -> None:
        with unavailable_on_failure("store the session records"):
            self._record_minutes(records)
            self._once_more_after_reconnect(lambda: self._run_concurrently(record_statements(records)))

    def _record_minutes(self, arrivals: Sequence[ArrivalWrite | RecordWrite]) -> None:
        """Records the arrivals' minutes (in their family's scope) before the arrivals: the builder passes over
        unrecorded minutes."""
        now = time.time()
        ttls: dict[tuple[str, datetime], int] = {}
        for write in arrivals:
            family = write.family if isinstance(write, RecordWrite) else STARTS
            minute = (family.arrival_scope, Level.MINUTE.floor(slot_start(write.arrival.slot)))
            if now + write.ttl_seconds > self._recorded_minutes.get(minute, 0.0):
                ttls[minute] = max(ttls.get(minute, 0), write.ttl_seconds + MINUTE_RECORD_EXTRA_SECONDS)
        if not ttls:
            return
        self._once_more_after_reconnect(
            lambda: self._run_concurrently(
                (WRITE_ARRIVAL_MINUTE, (scope, minute, ttl)) for (scope, minute), ttl in ttls.items()
            )
        )
        if len(self._recorded_minutes) > 10_000:
            self._recorded_minutes.clear()
        self._recorded_minutes.update({minute: now + ttl for minute, ttl in ttls.items()})

    def last_completed_sessions(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        with unavailable_on_failure("read the player's sessions"):
            return self._once_more_after_reconnect(lambda: self._read_completed(player_id, since, limit))

    def _read_completed(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        sessions: list[CompletedSession] = []
        seen: set[uuid.UUID] = set()
        statement = self._statement(READ_COMPLETED).bind((player_id, since))
        statement.fetch_size = limit + PAGE_SLACK
        for row in counted_pages(self._session().execute(statement), partitions=1):
            start_ts = utc(row.start_ts)
            if row.session_id in seen or start_ts < since:
                continue
            seen.add(row.session_id)
            sessions.append(
                CompletedSession(player_id, row.session_id, row.country, start_ts, utc(row.end_ts))
            )
            if len(sessions) == limit:
                break
        return sessions

    def ping(self) -> float:
        started = time.perf_counter()
        with unavailable_on_failure("answer the health check's read (a partition at LOCAL_QUORUM)"):
            self._once_more_after_reconnect(
                lambda: counted_first_row(self._session().execute(self._statement(PING), (PING_KEY,)))
            )
        return (time.perf_counter() - started) * 1000


def _erased_of(rows: Iterable[Any]) -> dict[bytes, datetime]:
    return {row.player_hash: utc(row.erased_at) for row in rows if row.erased_at is not None}


def _halves_of(rows: Iterable[Any]) -> dict[UUID, SessionHalves]:
    return {
        row.session_id: SessionHalves(
            row.session_id, row.player_id, row.country, utc_or_none(row.start_ts), utc_or_none(row.end_ts)
        )
        for row in rows
    }


if TYPE_CHECKING:
    from player_sessions.repositories.protocols import SessionStore

    # mypy holds the store to the Protocol the domain takes it as (nothing runs).
    _conforms: type[SessionStore] = CassandraSessionStore
