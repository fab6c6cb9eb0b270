"""A player's data on Cassandra / Amazon Keyspaces: their index, erasure records and receipts, and the
statements that erase their rows (domain.privacy).

Every read is of the player's own partitions (the index, the completed sessions) or of single rows by key;
deletions go out concurrently, the index's and the completed sessions' as single-partition unlogged batches of
at most 30.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.models import CompletedSession, ErasureReceipt, PlayerWrite, SessionHalves, WriteKind
from player_sessions.repositories.cassandra_helpers import (
    PreparedStatements,
    Statement,
    counted_first_row,
    counted_first_rows,
    counted_pages,
    execute_all,
    request_of,
    unavailable_on_failure,
    utc,
    utc_or_none,
)
from player_sessions.repositories.cassandra_store import READ_SESSION, READ_SESSIONS, CassandraSessionStore
from player_sessions.repositories.cql import Cql
from player_sessions.repositories.player_rows import (
    DELETE_COMPLETED,
    FORGET_ARRIVAL_PLAYER,
    FORGET_SESSION_PLAYER,
    FORGET_START_PLAYER,
    REMOVE_PLAYER_WRITE,
    by_partition,
    player_write_key,
)
from player_sessions.time_buckets import hour_of

READ_PLAYER_WRITES = Cql(
    "SELECT session_id, kind, ts, country, slot, shard FROM player_writes WHERE player_hash = ?"
)
READ_PLAYER_WRITES_AFTER = Cql(
    "SELECT session_id, kind, ts, country, slot, shard FROM player_writes WHERE player_hash = ? AND session_id > ?"
)
DELETE_SESSION = Cql("DELETE FROM sessions WHERE session_id = ?")
READ_ALL_COMPLETED = Cql(
    "SELECT session_id, start_ts, end_ts, country FROM completed_sessions_by_player WHERE player_id = ?"
)
READ_ONE_COMPLETED = Cql(
    "SELECT session_id FROM completed_sessions_by_player WHERE player_id = ? AND end_ts = ? AND session_id = ?"
)
READ_ERASURE_RECORD = Cql("SELECT erased_at, erasure_id FROM erased_players WHERE player_hash = ?")
WRITE_ERASURE_RECORD = Cql(
    "INSERT INTO erased_players (player_hash, erased_at, erasure_id) VALUES (?, ?, ?) USING TTL ?"
)
WRITE_RECEIPT = Cql(
    "INSERT INTO erasures (erasure_id, player_hash, asked_at, finished_at, removed, completed_by) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)
READ_RECEIPT = Cql(
    "SELECT erasure_id, player_hash, asked_at, finished_at, removed, completed_by FROM erasures "
    "WHERE erasure_id = ?"
)

PLAYER_DATA_STATEMENTS = (
    READ_PLAYER_WRITES,
    READ_PLAYER_WRITES_AFTER,
    READ_SESSION,
    READ_SESSIONS,
    DELETE_SESSION,
    FORGET_START_PLAYER,
    FORGET_ARRIVAL_PLAYER,
    FORGET_SESSION_PLAYER,
    REMOVE_PLAYER_WRITE,
    READ_ALL_COMPLETED,
    READ_ONE_COMPLETED,
    DELETE_COMPLETED,
    READ_ERASURE_RECORD,
    WRITE_ERASURE_RECORD,
    WRITE_RECEIPT,
    READ_RECEIPT,
)
"""What the privacy function sends (erasure, receipts, export)."""

CONCURRENCY = 64
"""Requests in flight at once while erasing: a heavy player's thousands of deletions go out in a few rounds."""
INDEX_PAGE_ROWS = 5_000
"""Rows per page when the index or the completed sessions are read whole (the driver fetches page by page)."""
INDEX_ROWS_PER_SESSION = 4
"""A page of an export reads the index a session's worth at a time: its start, its end and its arrivals (one, a
second after a slow write), so ``sessions`` sessions ask for this many rows each; the driver fetches more when
a session has more. A page is a read billed by the rows it returns: the whole partition's first 5,000 rows for
a page of 100 sessions would cost a heavy player's export about 16 times its read units."""


class CassandraPlayerDataStore:
    def __init__(self, connection: CassandraConnection) -> None:
        self._connection = connection
        self._statement = PreparedStatements(connection)
        self._sessions = CassandraSessionStore(connection)

    def _run(self, statements: Sequence[Statement | list[Statement]]) -> list[Any]:
        pairs = [request_of(self._statement, statement) for statement in statements]
        if not pairs:
            return []
        return execute_all(self._connection.session(), pairs, concurrency=CONCURRENCY)

    def _rows(self, cql: Cql, params: tuple[Any, ...], fetch_size: int = INDEX_PAGE_ROWS) -> Iterator[Any]:
        statement = self._statement(cql).bind(params)
        statement.fetch_size = fetch_size
        return counted_pages(self._connection.session().execute(statement), partitions=1)

    def player_writes(
        self, player_hash: bytes, *, after: UUID | None = None, sessions: int | None = None
    ) -> list[PlayerWrite]:
        entries: list[PlayerWrite] = []
        seen: set[UUID] = set()
        with unavailable_on_failure("read the player's index"):
            fetch_size = INDEX_PAGE_ROWS if sessions is None else sessions * INDEX_ROWS_PER_SESSION + 1
            rows = (
                self._rows(READ_PLAYER_WRITES, (player_hash,), fetch_size)
                if after is None
                else self._rows(READ_PLAYER_WRITES_AFTER, (player_hash, after), fetch_size)
            )
            for row in rows:
                if sessions is not None and row.session_id not in seen and len(seen) == sessions:
                    break
                seen.add(row.session_id)
                entries.append(
                    PlayerWrite(
                        row.session_id, WriteKind(row.kind), utc(row.ts), row.country, row.slot, row.shard
                    )
                )
        return entries

    def read_sessions(
        self, session_ids: Sequence[UUID], *, per_partition: bool = False
    ) -> dict[UUID, SessionHalves]:
        """The session store's own read (the same statements, the same grant)."""
        return self._sessions.read_sessions(session_ids, per_partition=per_partition)

    def completed_of(self, player_id: str) -> list[CompletedSession]:
        with unavailable_on_failure("read the player's completed sessions"):
            return [
                CompletedSession(player_id, row.session_id, row.country, utc(row.start_ts), utc(row.end_ts))
                for row in self._rows(READ_ALL_COMPLETED, (player_id,))
            ]

    def completed_among(self, player_id: str, sessions: Sequence[tuple[UUID, datetime]]) -> set[UUID]:
        with unavailable_on_failure("read the player's completed sessions"):
            results = self._run(
                [(READ_ONE_COMPLETED, (player_id, end_ts, session_id)) for session_id, end_ts in sessions]
            )
        return {row.session_id for row in counted_first_rows(results) if row is not None}

    def erase_sessions(
        self,
        player_hash: bytes,
        entries: Sequence[PlayerWrite],
        owned: Sequence[UUID],
        still_open: Sequence[UUID] = (),
    ) -> None:
        data: list[Statement | list[Statement]] = [(DELETE_SESSION, (session_id,)) for session_id in owned]
        data += [(FORGET_SESSION_PLAYER, (session_id,)) for session_id in still_open]
        for entry in entries:
            if entry.kind is WriteKind.START:
                data.append(
                    (
                        FORGET_START_PLAYER,
                        (hour_of(entry.ts), entry.shard, entry.country, entry.ts, entry.session_id),
                    )
                )
            elif entry.kind is WriteKind.ARRIVAL:
                data.append(
                    (
                        FORGET_ARRIVAL_PLAYER,
                        (entry.slot, entry.shard, entry.session_id, entry.ts, entry.country),
                    )
                )
        index = list(
            by_partition(
                (player_hash, (REMOVE_PLAYER_WRITE, player_write_key(player_hash, entry)))
                for entry in entries
                if entry.ttl_seconds >= 0
            )
        )
        with unavailable_on_failure("erase the player's sessions"):
            # The rows first, the entries pointing at them after: a crash between leaves them findable.
            self._run(data)
            self._run(index)

    def erase_completed(self, player_id: str, sessions: Sequence[CompletedSession]) -> None:
        key = player_id.encode()
        with unavailable_on_failure("erase the player's completed sessions"):
            self._run(
                list(
                    by_partition(
                        (key, (DELETE_COMPLETED, (player_id, session.end_ts, session.session_id)))
                        for session in sessions
                    )
                )
            )

    def erasure_record(self, player_hash: bytes) -> tuple[datetime, UUID] | None:
        with unavailable_on_failure("read the player's erasure"):
            row = counted_first_row(
                self._connection.session().execute(self._statement(READ_ERASURE_RECORD), (player_hash,))
            )
        if row is None or row.erased_at is None:
            return None
        return utc(row.erased_at), row.erasure_id

    def write_erasure_record(
        self, player_hash: bytes, erased_at: datetime, erasure_id: UUID, ttl: int
    ) -> None:
        with unavailable_on_failure("record the erasure"):
            self._run([(WRITE_ERASURE_RECORD, (player_hash, erased_at, erasure_id, ttl))])

    def save_receipt(self, receipt: ErasureReceipt, ttl: int) -> None:
        removed = json.dumps(
            {
                "deleted_rows": dict(sorted(receipt.deleted_rows.items())),
                "player_id_removed": dict(sorted(receipt.player_id_removed.items())),
                "cache_keys_deleted": receipt.cache_keys_deleted,
            }
        )
        params = (
            receipt.erasure_id,
            receipt.player_hash,
            receipt.asked_at,
            receipt.finished_at,
            removed,
            receipt.completed_by,
            ttl,
        )
        with unavailable_on_failure("save the erasure's receipt"):
            self._run([(WRITE_RECEIPT, params)])

    def read_receipt(self, erasure_id: UUID) -> ErasureReceipt | None:
        with unavailable_on_failure("read the erasure's receipt"):
            row = counted_first_row(
                self._connection.session().execute(self._statement(READ_RECEIPT), (erasure_id,))
            )
        if row is None or row.asked_at is None:
            return None
        removed = json.loads(row.removed or "{}")
        return ErasureReceipt(
            erasure_id=row.erasure_id,
            player_hash=row.player_hash,
            asked_at=utc(row.asked_at),
            finished_at=utc_or_none(row.finished_at),
            deleted_rows=Counter(removed.get("deleted_rows", {})),
            player_id_removed=Counter(removed.get("player_id_removed", {})),
            cache_keys_deleted=removed.get("cache_keys_deleted"),
            completed_by=row.completed_by,
        )


if TYPE_CHECKING:
    from player_sessions.repositories.protocols import PlayerDataStore

    # mypy holds the store to the Protocol the domain takes it as (nothing runs).
    _conforms: type[PlayerDataStore] = CassandraPlayerDataStore
