"""Ingest a batch: validate each event on its own, store the valid ones, complete the sessions they finish."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from player_sessions.clock import Clock
from player_sessions.models import (
    CompletedSession,
    EventType,
    EventWrite,
    InvalidEventError,
    SessionEvent,
    SessionHalves,
    parse_event,
)
from player_sessions.repositories.cache_protocol import NoCache, ReadCache
from player_sessions.repositories.protocols import SessionStore
from player_sessions.settings import Settings
from player_sessions.time_buckets import Bucket, bucket_end, buckets_containing, hour_of, is_late_start, start_shard


@dataclass(frozen=True)
class EventProblem:
    index: int
    status: str
    field: str
    reason: str


@dataclass
class BatchOutcome:
    stored: int = 0
    discarded: int = 0
    rejected: int = 0
    problems: list[EventProblem] = field(default_factory=list)
    completed_sessions: int = 0

    def reject(self, index: int, field_name: str, reason: str) -> None:
        self.rejected += 1
        self.problems.append(EventProblem(index, "rejected", field_name, reason))

    def discard(self, index: int, field_name: str, reason: str) -> None:
        self.discarded += 1
        self.problems.append(EventProblem(index, "discarded", field_name, reason))


def ingest_batch(items: Sequence[Any], store: SessionStore, clock: Clock, settings: Settings,
                 cache: ReadCache | None = None) -> BatchOutcome:
    """Stores every valid, retained event of the batch; returns what happened to each one.

    Returns only after every write is acknowledged; a storage failure raises before anything is reported
    stored, and re-sending the whole batch is safe (all writes are idempotent).
    """
    now = clock.now()
    outcome = BatchOutcome()
    writes: list[EventWrite] = []
    for index, item in enumerate(items):
        try:
            event = parse_event(item)
        except InvalidEventError as error:
            outcome.reject(index, error.field, error.reason)
            continue
        if event.ts > now + settings.clock_skew:
            outcome.reject(
                index, "ts", f"ts: more than {settings.clock_skew_seconds} s in the future (server time is "
                f"{now.isoformat()})"
            )
            continue
        ttl = ttl_seconds(event.ts, now, settings.retention)
        if ttl <= 0:
            outcome.discard(index, "ts", f"ts: older than the {settings.retention_days}-day retention")
            continue
        writes.append(EventWrite(event, ttl, hour_of(event.ts), start_shard(event.session_id, settings.start_shards)))

    if writes:
        store.write_events(writes)
        sessions = halves_in_batch(writes)
        unknown = [session_id for session_id in dict.fromkeys(w.event.session_id for w in writes)
                   if session_id not in sessions]
        # A session whose start and end are both in this batch needs no read: its halves were just written.
        sessions.update(store.read_sessions(unknown) if unknown else {})
        completed = [
            (session, ttl_seconds(session.start_ts, now, settings.retention))
            for halves in sessions.values()
            if (session := completed_session(halves, now, settings.retention)) is not None
        ]
        late = late_buckets([w.event for w in writes], now, settings.retention)
        # Both only need the events acknowledged first: a revision touched before its start row was written
        # could let a reader store a rollup without that start under the new revision.
        store.write_completed_and_touch_revisions(completed, late)
        # Only now, with every write acknowledged, may cached answers be invalidated (see cache_protocol).
        (cache or NoCache()).invalidate(changed_cache_scopes(writes, late, [s for s, _ in completed]))
        outcome.stored = len(writes)
        outcome.completed_sessions = len(completed)
    return outcome


def changed_cache_scopes(writes: Sequence[EventWrite], late: Sequence[tuple[Bucket, int]],
                         completed: Sequence[CompletedSession]) -> list[str]:
    scopes = ["starts"] if any(w.event.event is EventType.START for w in writes) else []
    if late:
        scopes.append("late")
    scopes += sorted({f"player:{session.player_id}" for session in completed})
    return scopes


def halves_in_batch(writes: Sequence[EventWrite]) -> dict:
    """Sessions whose start and end are both in the batch, as the batch's own events describe them."""
    starts = {w.event.session_id: w.event for w in writes if w.event.event is EventType.START}
    ends = {w.event.session_id: w.event for w in writes if w.event.event is EventType.END}
    return {
        session_id: SessionHalves(session_id, start.player_id, start.country, start.ts, ends[session_id].ts)
        for session_id, start in starts.items()
        if session_id in ends
    }


def ttl_seconds(ts: datetime, now: datetime, retention: timedelta) -> int:
    """Seconds until an event at ``ts`` leaves the retention: ``ts + retention - now``, rounded down."""
    return math.floor((ts + retention - now).total_seconds())


def completed_session(halves: SessionHalves, now: datetime, retention: timedelta) -> CompletedSession | None:
    """The completed session, when both halves are stored, in order, and both still retained."""
    if halves.start_ts is None or halves.end_ts is None or halves.player_id is None or halves.country is None:
        return None
    if halves.end_ts < halves.start_ts:
        return None
    if ttl_seconds(halves.start_ts, now, retention) <= 0:
        return None
    return CompletedSession(halves.player_id, halves.session_id, halves.country, halves.start_ts, halves.end_ts)


def late_buckets(events: Sequence[SessionEvent], now: datetime, retention: timedelta) -> list[tuple[Bucket, int]]:
    """The rollup buckets that late starts of this batch change, each once, with the TTL of its revision."""
    # Per distinct hour, not per start: lateness and the three buckets depend on the hour only (a loader's
    # chunk has many starts per hour; this was 5% of its CPU).
    hours = {hour_of(event.ts) for event in events if event.event is EventType.START}
    buckets = {bucket for hour in hours if is_late_start(hour, now) for bucket in buckets_containing(hour)}
    return [(bucket, max(1, ttl_seconds(bucket_end(bucket), now, retention))) for bucket in sorted(buckets)]
