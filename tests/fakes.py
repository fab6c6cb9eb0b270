"""In-memory stand-ins for unit tests of domain logic. Never the proof that storage works: the integration
tests run the same behaviours against the real Cassandra."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
import uuid
from uuid import UUID

from player_sessions.models import (
    CompletedSession,
    EventType,
    EventWrite,
    RollupRow,
    SessionHalves,
    StartRow,
)
from player_sessions.time_buckets import Bucket, Level


class InMemorySessionStore:
    def __init__(self) -> None:
        self.sessions: dict[UUID, dict] = {}
        self.starts: set[tuple[datetime, int, str, datetime, UUID, str]] = set()
        self.completed: dict[tuple[str, datetime, UUID], tuple[CompletedSession, int]] = {}
        self.revisions: dict[Bucket, int] = {}
        self.revision_ids: dict[Bucket, UUID] = {}
        self.ttls: dict[tuple[UUID, str], int] = {}

    def write_events(self, writes: Sequence[EventWrite]) -> None:
        for write in writes:
            event = write.event
            row = self.sessions.setdefault(event.session_id, {})
            if event.event is EventType.START:
                row.update(player_id=event.player_id, country=event.country, start_ts=event.ts)
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

    def write_completed_and_touch_revisions(self, sessions: Sequence[tuple[CompletedSession, int]],
                                            buckets: Sequence[tuple[Bucket, int]]) -> None:
        for session, ttl in sessions:
            self.completed[(session.player_id, session.end_ts, session.session_id)] = (session, ttl)
        for bucket, _ttl in buckets:
            self.revisions[bucket] = self.revisions.get(bucket, 0) + 1
            self.revision_ids[bucket] = uuid.uuid1()

    def last_completed_sessions(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        mine = sorted(
            (s for (player, _, _), (s, _) in self.completed.items() if player == player_id),
            key=lambda s: (s.end_ts, s.session_id),
            reverse=True,
        )
        return [s for s in mine if s.end_ts >= since and s.start_ts >= since][:limit]

    def ping(self) -> float:
        return 0.1


class InMemoryStartsStore:
    """The starts and rollup tables as dictionaries, with the same keys and orderings as the real ones."""

    def __init__(self, sessions: InMemorySessionStore) -> None:
        self._sessions = sessions
        self.rollup_rows: dict[tuple[Level, datetime, datetime], dict[str, RollupRow]] = {}
        self.partition_reads = 0

    @property
    def _revisions(self) -> dict[Bucket, UUID]:
        return self._sessions.revision_ids

    def country_counts_between(self, hours: Sequence[datetime], since: datetime, until: datetime) -> Counter:
        self.partition_reads += len(hours)
        wanted = set(hours)
        return Counter(country for (h, _shard, country, ts, _sid, _player) in self._sessions.starts
                       if h in wanted and since <= ts <= until)

    def hour_country_counts(self, hours: Sequence[datetime]) -> dict[datetime, Counter]:
        self.partition_reads += len(hours)
        counts = {hour: Counter() for hour in hours}
        for (h, _shard, country, _ts, _sid, _player) in self._sessions.starts:
            if h in counts:
                counts[h][country] += 1
        return counts

    def country_hour_starts(self, hours, country, not_after, not_before, page_size):
        self.partition_reads += len(hours)
        streams = []
        for hour, _known in hours:
            rows = [StartRow(ts, sid, player, c) for (h, _s, c, ts, sid, player) in self._sessions.starts
                    if h == hour and c == country and not_before <= ts <= not_after]
            # Reversed ids within an instant: the domain must order ties itself, as with Cassandra's UUID order.
            streams.append(iter(sorted(rows, key=lambda r: (-r.ts.timestamp(), -r.session_id.int))))
        return streams

    def rollups_and_revisions(self, ranges):
        self.partition_reads += 2 * len(ranges)
        return self._rollups(ranges), self._revisions_in(ranges)

    def country_rollups_and_revisions(self, country, buckets):
        self.partition_reads += 2 * len(buckets)
        wanted = {(level, period, start) for level, period, starts in buckets for start in starts}
        rollups = {}
        for (level, period, start), rows in self.rollup_rows.items():
            if (level, period, start) in wanted:
                rollups.setdefault((level, period), {})[start] = {c: r for c, r in rows.items() if c in (country, "*")}
        ranges = [(level, period, min(starts), max(starts)) for level, period, starts in buckets]
        return rollups, self._revisions_in(ranges)

    def _rollups(self, ranges):
        return {(level, period): {bucket: dict(rows) for (lvl, per, bucket), rows in self.rollup_rows.items()
                                  if lvl is level and per == period and first <= bucket <= last}
                for level, period, first, last in ranges}

    def _revisions_in(self, ranges):
        return {(level, period): {b.start: rev for b, rev in self._revisions.items()
                                  if b.level is level and b.period == period and first <= b.start <= last}
                for level, period, first, last in ranges}

    def write_rollups(self, rollups) -> None:
        for bucket, counts, revision, _ttl in rollups:
            rows = self.rollup_rows.setdefault((bucket.level, bucket.period, bucket.start), {})
            for country, starts in counts.items():
                rows[country] = RollupRow(starts, revision)
            rows["*"] = RollupRow(sum(counts.values()), revision)
