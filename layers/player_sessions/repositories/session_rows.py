"""The statements that store a batch's events (repositories.cassandra_store): each event's half of its session,
each start's row in session_starts and its arrival, and the records of the other rollup families."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

from cassandra.query import UNSET_VALUE

from player_sessions.models import ArrivalWrite, EventType, EventWrite, RecordWrite, Seen
from player_sessions.repositories.cassandra_helpers import Statement
from player_sessions.repositories.cql import Cql
from player_sessions.schema import COMPLETIONS, LENGTHS

WRITE_START_HALF = Cql(
    "UPDATE sessions USING TTL ? SET player_id = ?, country = ?, start_ts = ? WHERE session_id = ?"
)
# The end half leaves player_id alone: a session belongs to the player who started it.
WRITE_END_HALF = Cql("UPDATE sessions USING TTL ? SET end_ts = ? WHERE session_id = ?")
WRITE_START_ROW = Cql(
    "INSERT INTO session_starts (hour, shard, country, ts, session_id, player_id) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)
WRITE_ARRIVAL = Cql(
    "INSERT INTO start_arrivals (slot, shard, session_id, ts, country, player_id, seen_through, seen_fold) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
)
WRITE_RECORD = {
    COMPLETIONS: Cql(
        "INSERT INTO completion_arrivals (slot, shard, session_id, ts, country) VALUES (?, ?, ?, ?, ?) USING TTL ?"
    ),
    LENGTHS: Cql(
        "INSERT INTO length_arrivals (slot, shard, session_id, ts, country) VALUES (?, ?, ?, ?, ?) USING TTL ?"
    ),
}
"""The records of the families other than the starts (whose arrivals name their player: WRITE_ARRIVAL)."""


def event_statements(writes: Sequence[EventWrite]) -> Iterable[Statement | list[Statement]]:
    """The statements that store the events: each event's half of its session row, and each start's row in
    session_starts. A session whose start and end are both in the batch, once each, has its two halves (distinct
    cells of one partition) written as one single-partition batch: one request instead of two. Several starts
    or ends of one session (re-sent events) stay separate writes, so the last one still wins."""
    halves: dict[UUID, list[tuple[EventType, Statement]]] = {}
    for write in writes:
        event = write.event
        half: Statement
        if event.event is EventType.START:
            half = (
                WRITE_START_HALF,
                (write.ttl_seconds, event.player_id, event.country, event.ts, event.session_id),
            )
            yield (
                WRITE_START_ROW,
                (
                    write.hour,
                    write.shard,
                    event.country,
                    event.ts,
                    event.session_id,
                    event.player_id,
                    write.ttl_seconds,
                ),
            )
        else:
            half = (WRITE_END_HALF, (write.ttl_seconds, event.ts, event.session_id))
        halves.setdefault(event.session_id, []).append((event.event, half))
    for session_halves in halves.values():
        if len(session_halves) == 2 and {kind for kind, _ in session_halves} == {
            EventType.START,
            EventType.END,
        }:
            yield [half for _, half in session_halves]
        else:
            yield from (half for _, half in session_halves)


def arrival_statements(arrivals: Sequence[ArrivalWrite]) -> Iterator[Statement]:
    for write in arrivals:
        key = write.arrival.key
        yield (
            WRITE_ARRIVAL,
            (
                write.arrival.slot,
                write.shard,
                key.session_id,
                key.ts,
                key.country,
                write.player_id,
                *seen_values(write.arrival.seen),
                write.ttl_seconds,
            ),
        )


def seen_values(seen: Seen | None) -> tuple[Any, Any]:
    """An arrival's ``seen``: unset (neither null nor a tombstone) where nothing was read."""
    if seen is None:
        return UNSET_VALUE, UNSET_VALUE
    return seen.through, UNSET_VALUE if seen.fold is None else seen.fold


def record_statements(records: Sequence[RecordWrite]) -> list[Statement]:
    return [
        (WRITE_RECORD[r.family], (r.arrival.slot, r.shard, k.session_id, k.ts, k.country, r.ttl_seconds))
        for r in records
        for k in (r.arrival.key,)
    ]
