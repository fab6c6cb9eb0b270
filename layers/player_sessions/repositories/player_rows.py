"""The rows that name a player, beyond their sessions' own: the index of what was written for each player
(``player_writes``), and the statements that take a player's rows out again, used by ingest (a replay of an
erased player's events) and by the erasure (repositories.cassandra_player_data)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Set
from typing import Any
from uuid import UUID

from player_sessions.models import ArrivalWrite, EventType, EventWrite, PlayerWrite, player_writes_of
from player_sessions.repositories.cassandra_helpers import Statement
from player_sessions.repositories.cql import Cql

WRITE_PLAYER_WRITE = Cql(
    "INSERT INTO player_writes (player_hash, session_id, kind, ts, country, slot, shard) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?"
)
READ_ERASED = Cql("SELECT player_hash, erased_at FROM erased_players WHERE player_hash IN ?")
"""A batch's players' erasure records, up to a hundred in one request."""
READ_PLAYER_ERASED = Cql("SELECT player_hash, erased_at FROM erased_players WHERE player_hash = ?")
"""One player's erasure record: the reads of READ_ERASED one per request, when an IN read failed."""
DELETE_COMPLETED = Cql(
    "DELETE FROM completed_sessions_by_player WHERE player_id = ? AND end_ts = ? AND session_id = ?"
)
"""A player's history row: taken out by an erasure, or by ingest when the player was erased meanwhile."""
REMOVE_START_HALF = Cql("DELETE player_id, country, start_ts FROM sessions WHERE session_id = ?")
REMOVE_END_HALF = Cql("DELETE end_ts FROM sessions WHERE session_id = ?")
FORGET_SESSION_PLAYER = Cql("DELETE player_id FROM sessions WHERE session_id = ?")
"""A session kept for the counts (its start stays counted) and not ended yet keeps its start half without the
player, so that an end arriving later still closes it (its completion and length records need the start)."""
REMOVE_START_ROW = Cql(
    "DELETE FROM session_starts WHERE hour = ? AND shard = ? AND country = ? AND ts = ? AND session_id = ?"
)
REMOVE_ARRIVAL = Cql(
    "DELETE FROM start_arrivals WHERE slot = ? AND shard = ? AND session_id = ? AND ts = ? AND country = ?"
)
FORGET_START_PLAYER = Cql(
    "DELETE player_id FROM session_starts "
    "WHERE hour = ? AND shard = ? AND country = ? AND ts = ? AND session_id = ?"
)
"""A start whose player is erased keeps its row, for the counts, without the player (the listing skips it)."""
FORGET_ARRIVAL_PLAYER = Cql(
    "DELETE player_id FROM start_arrivals WHERE slot = ? AND shard = ? AND session_id = ? AND ts = ? AND country = ?"
)
REMOVE_PLAYER_WRITE = Cql(
    "DELETE FROM player_writes "
    "WHERE player_hash = ? AND session_id = ? AND kind = ? AND ts = ? AND country = ? AND slot = ?"
)

PLAYER_WRITES_PER_BATCH = 30
"""Keyspaces' limit of statements in one (single-partition) unlogged batch."""


def player_write_key(player_hash: bytes, entry: PlayerWrite) -> tuple[Any, ...]:
    """The entry's primary key, in REMOVE_PLAYER_WRITE's order."""
    return (player_hash, entry.session_id, entry.kind.value, entry.ts, entry.country, entry.slot)


def by_partition(statements: Iterable[tuple[bytes, Statement]]) -> Iterator[list[Statement]]:
    """Statements on one table grouped by partition key into unlogged batches of at most 30."""
    groups: dict[bytes, list[Statement]] = {}
    for partition, statement in statements:
        groups.setdefault(partition, []).append(statement)
    for group in groups.values():
        for first in range(0, len(group), PLAYER_WRITES_PER_BATCH):
            yield group[first : first + PLAYER_WRITES_PER_BATCH]


def player_write_batches(
    writes: Iterable[EventWrite], arrivals: Iterable[ArrivalWrite]
) -> Iterator[list[Statement]]:
    return by_partition(
        (
            player_hash,
            (
                WRITE_PLAYER_WRITE,
                (*player_write_key(player_hash, entry), entry.shard, entry.ttl_seconds),
            ),
        )
        for player_hash, entry in dict.fromkeys(player_writes_of(writes, arrivals))
    )


def start_row_key(write: EventWrite) -> tuple[Any, ...]:
    event = write.event
    return (write.hour, write.shard, event.country, event.ts, event.session_id)


def arrival_row_key(arrival: ArrivalWrite) -> tuple[Any, ...]:
    key = arrival.arrival.key
    return (arrival.arrival.slot, arrival.shard, key.session_id, key.ts, key.country)


def unwrite_statements(
    writes: Sequence[EventWrite], arrivals: Sequence[ArrivalWrite], keep_starts: Set[UUID]
) -> Iterator[Statement | list[Statement]]:
    """What removes the rows the events wrote: each half of its session, each start row and arrival (or, for
    a start a builder may have counted already, ``keep_starts``, only their player id), and the index entries."""
    for write in writes:
        session_id = write.event.session_id
        if write.event.event is EventType.END:
            yield (REMOVE_END_HALF, (session_id,))
            continue
        kept = session_id in keep_starts
        yield (FORGET_SESSION_PLAYER if kept else REMOVE_START_HALF, (session_id,))
        yield (FORGET_START_PLAYER if kept else REMOVE_START_ROW, start_row_key(write))
    for arrival in arrivals:
        kept = arrival.arrival.key.session_id in keep_starts
        yield (FORGET_ARRIVAL_PLAYER if kept else REMOVE_ARRIVAL, arrival_row_key(arrival))
    yield from by_partition(
        (player_hash, (REMOVE_PLAYER_WRITE, player_write_key(player_hash, entry)))
        for player_hash, entry in dict.fromkeys(player_writes_of(writes, arrivals))
    )
