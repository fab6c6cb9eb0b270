"""In-memory stand-ins for unit tests of domain logic. Never the proof that storage works: the integration
tests run the same behaviours against the real Cassandra."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from player_sessions.models import CompletedSession, EventType, EventWrite, SessionHalves
from player_sessions.time_buckets import Bucket


class InMemorySessionStore:
    def __init__(self) -> None:
        self.sessions: dict[UUID, dict] = {}
        self.starts: set[tuple[datetime, int, str, datetime, UUID, str]] = set()
        self.completed: dict[tuple[str, datetime, UUID], tuple[CompletedSession, int]] = {}
        self.revisions: dict[Bucket, int] = {}
        self.ttls: dict[tuple[UUID, str], int] = {}

    def write_events(self, writes: Sequence[EventWrite]) -> None:
        for write in writes:
            event = write.event
            row = self.sessions.setdefault(event.session_id, {})
            row["player_id"] = event.player_id
            if event.event is EventType.START:
                row.update(country=event.country, start_ts=event.ts)
                self.starts.add((write.hour, write.shard, event.country, event.ts, event.session_id, event.player_id))
            else:
                row["end_ts"] = event.ts
            self.ttls[(event.session_id, event.event.value)] = write.ttl_seconds

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, SessionHalves]:
        return {
            session_id: SessionHalves(
                session_id, row.get("player_id"), row.get("country"), row.get("start_ts"), row.get("end_ts")
            )
            for session_id in session_ids
            if (row := self.sessions.get(session_id)) is not None
        }

    def write_completed_sessions(self, sessions: Sequence[tuple[CompletedSession, int]]) -> None:
        for session, ttl in sessions:
            self.completed[(session.player_id, session.end_ts, session.session_id)] = (session, ttl)

    def touch_rollup_revisions(self, buckets: Sequence[tuple[Bucket, int]]) -> None:
        for bucket, _ttl in buckets:
            self.revisions[bucket] = self.revisions.get(bucket, 0) + 1

    def last_completed_sessions(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        mine = sorted(
            (s for (player, _, _), (s, _) in self.completed.items() if player == player_id),
            key=lambda s: (s.end_ts, s.session_id),
            reverse=True,
        )
        return [s for s in mine if s.end_ts >= since and s.start_ts >= since][:limit]

    def ping(self) -> float:
        return 0.1
