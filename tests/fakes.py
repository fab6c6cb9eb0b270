"""In-memory stand-ins for unit tests of domain logic. Never the proof that storage works: the integration
tests run the same behaviours against the real Cassandra."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence, Set
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID

from player_sessions.bootstrap import Services
from player_sessions.clock import FixedClock
from player_sessions.models import (
    Arrival,
    ArrivalWrite,
    CompletedSession,
    ErasureReceipt,
    EventType,
    EventWrite,
    HourCounts,
    PlayerWrite,
    RecordWrite,
    RollupRow,
    Seen,
    SessionHalves,
    StartKey,
    StartRow,
    StoredBefore,
    WriteKind,
    player_writes_of,
)
from player_sessions.read_counts import count_read
from player_sessions.repositories.cache_protocol import CacheHealth, CacheToken, NoCache
from player_sessions.schema import STARTS, RollupFamily
from player_sessions.settings import Settings
from player_sessions.time_buckets import Bucket, Level, slot_start


class SessionRow(TypedDict, total=False):
    """A row of the sessions table: each half of the session is there once its event is stored."""

    player_id: str
    country: str
    start_ts: datetime
    end_ts: datetime


class FamilyTables:
    """A rollup family's tables (schema.RollupFamily): arrivals, their minutes, marks, folds, rollups and each
    part's watermark."""

    def __init__(self) -> None:
        self.arrivals: dict[int, set[StartKey]] = {}
        self.arrival_shards: dict[StartKey, int] = {}
        self.arrival_seen: dict[tuple[int, StartKey], Seen] = {}
        """What each arrival was stored with, its columns written as Cassandra writes them (a value left unset
        keeps the one before)."""
        self.arrival_minutes: set[datetime] = set()
        self.marks: dict[StartKey, int] = {}
        self.folds: dict[int, list[StartKey]] = {}
        self.rollups: dict[Bucket, dict[tuple[int, bool], RollupRow]] = {}
        self.progress: dict[int, int] = {}
        """Each part's watermark."""


class InMemoryDatabase(FamilyTables):
    """The tables both stores share; its own family tables are the starts'."""

    def __init__(self) -> None:
        super().__init__()
        self.families: dict[str, FamilyTables] = {STARTS.name: self}
        self.sessions: dict[UUID, SessionRow] = {}
        self.starts: set[tuple[datetime, int, str, datetime, UUID, str | None]] = set()
        """session_starts: (hour, shard, country, ts, session_id, player_id or None once erased)."""
        self.completed: dict[tuple[str, datetime, UUID], tuple[CompletedSession, int]] = {}
        self.player_writes: dict[bytes, set[PlayerWrite]] = {}
        """Each player's index, by keyed hash (entries without their TTL)."""
        self.erased: dict[bytes, tuple[datetime, UUID]] = {}
        self.receipts: dict[UUID, ErasureReceipt] = {}

    def of(self, family: RollupFamily) -> FamilyTables:
        return self.families.setdefault(family.name, FamilyTables())


class InMemorySessionStore:
    def __init__(self, database: InMemoryDatabase | None = None) -> None:
        self.db = database or InMemoryDatabase()
        self.ttls: dict[tuple[UUID, str], int] = {}

    @property
    def sessions(self) -> dict[UUID, SessionRow]:
        return self.db.sessions

    @property
    def completed(self) -> dict[tuple[str, datetime, UUID], tuple[CompletedSession, int]]:
        return self.db.completed

    def write_events(self, writes: Sequence[EventWrite], arrivals: Sequence[ArrivalWrite]) -> None:
        self.write_arrivals(arrivals)
        self._index(player_writes_of(writes, ()))
        for write in writes:
            event = write.event
            row = self.db.sessions.setdefault(event.session_id, {})
            if event.event is EventType.START:
                assert event.country is not None
                row["player_id"], row["country"], row["start_ts"] = event.player_id, event.country, event.ts
                self.db.starts.add(
                    (write.hour, write.shard, event.country, event.ts, event.session_id, event.player_id)
                )
            else:
                row["end_ts"] = event.ts
            self.ttls[(event.session_id, event.event.value)] = write.ttl_seconds

    def _index(self, entries: Sequence[tuple[bytes, PlayerWrite]]) -> None:
        for player_hash, entry in entries:
            self.db.player_writes.setdefault(player_hash, set()).add(replace(entry, ttl_seconds=0))

    def erasures(
        self, player_hashes: Sequence[bytes], *, per_partition: bool = False
    ) -> dict[bytes, datetime]:
        return {key: self.db.erased[key][0] for key in player_hashes if key in self.db.erased}

    def read_before_writing(
        self, player_hashes: Sequence[bytes], session_ids: Sequence[UUID], parts: Sequence[int]
    ) -> StoredBefore:
        watermarks = {part: self.db.progress[part] for part in parts if part in self.db.progress}
        return StoredBefore(self.erasures(player_hashes), self.read_sessions(session_ids), watermarks)

    def unwrite(
        self, writes: Sequence[EventWrite], arrivals: Sequence[ArrivalWrite], keep_starts: Set[UUID]
    ) -> None:
        for write in writes:
            event = write.event
            row = self.db.sessions.get(event.session_id, {})
            if event.event is EventType.END:
                row.pop("end_ts", None)
                continue
            row.pop("player_id", None)
            if event.session_id not in keep_starts:
                # (a start a builder may have counted keeps its half without the player: FORGET_SESSION_PLAYER)
                row.pop("country", None)
                row.pop("start_ts", None)
            assert event.country is not None
            start = (write.hour, write.shard, event.country, event.ts, event.session_id)
            if (*start, event.player_id) in self.db.starts:
                self.db.starts.discard((*start, event.player_id))
                if event.session_id in keep_starts:
                    self.db.starts.add((*start, None))
        for arrival in arrivals:
            if arrival.arrival.key.session_id not in keep_starts:
                self.db.arrivals.get(arrival.arrival.slot, set()).discard(arrival.arrival.key)
                self.db.arrival_seen.pop((arrival.arrival.slot, arrival.arrival.key), None)
        for player_hash, entry in player_writes_of(writes, arrivals):
            self.db.player_writes.get(player_hash, set()).discard(replace(entry, ttl_seconds=0))

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, SessionHalves]:
        return {
            session_id: SessionHalves(
                session_id, row.get("player_id"), row.get("country"), row.get("start_ts"), row.get("end_ts")
            )
            for session_id in session_ids
            if (row := self.db.sessions.get(session_id)) is not None
        }

    def write_completed(
        self, sessions: Sequence[tuple[CompletedSession, int]], records: Sequence[RecordWrite] = ()
    ) -> None:
        self.write_records(records)
        for session, ttl in sessions:
            self.db.completed[(session.player_id, session.end_ts, session.session_id)] = (session, ttl)

    def forget_completed(self, sessions: Sequence[CompletedSession]) -> None:
        for session in sessions:
            self.db.completed.pop((session.player_id, session.end_ts, session.session_id), None)

    def write_arrivals(self, arrivals: Sequence[ArrivalWrite]) -> None:
        self._index(player_writes_of((), arrivals))
        for write in arrivals:
            self.db.arrival_minutes.add(Level.MINUTE.floor(slot_start(write.arrival.slot)))
            self.db.arrivals.setdefault(write.arrival.slot, set()).add(write.arrival.key)
            self.db.arrival_shards[write.arrival.key] = write.shard
            seen, place = write.arrival.seen, (write.arrival.slot, write.arrival.key)
            if seen is not None:
                before = self.db.arrival_seen.get(place)
                fold = seen.fold if seen.fold is not None or before is None else before.fold
                self.db.arrival_seen[place] = Seen(seen.through, fold)

    def write_records(self, records: Sequence[RecordWrite]) -> None:
        for write in records:
            tables = self.db.of(write.family)
            tables.arrival_minutes.add(Level.MINUTE.floor(slot_start(write.arrival.slot)))
            tables.arrivals.setdefault(write.arrival.slot, set()).add(write.arrival.key)
            tables.arrival_shards[write.arrival.key] = write.shard

    def last_completed_sessions(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        mine = sorted(
            (s for (player, _, _), (s, _) in self.db.completed.items() if player == player_id),
            key=lambda s: (s.end_ts, s.session_id),
            reverse=True,
        )
        found = [s for s in mine if s.end_ts >= since and s.start_ts >= since][:limit]
        count_read(rows=len(found), partitions=1)
        return found

    def ping(self) -> float:
        return 0.1


class InMemoryStartsStore:
    """The starts, arrivals, marks and rollup tables (of one rollup family) as dictionaries, with the real ones'
    keys and orders; reads are metered as the Cassandra store meters them (rows returned, partitions asked
    for)."""

    def __init__(self, sessions: InMemorySessionStore, family: RollupFamily = STARTS) -> None:
        self.db = sessions.db
        self.family = family
        self.tables = sessions.db.of(family)
        self.rollups_read_first = True
        """Whether ``start_reading_rollups`` reads them when called, before what its caller reads meanwhile,
        or when they are collected, after it: Cassandra may answer in either order."""

    def read_progress(self, parts: Sequence[int]) -> dict[int, int]:
        found = {part: self.tables.progress[part] for part in parts if part in self.tables.progress}
        count_read(rows=len(found), partitions=len(parts))
        return found

    def write_progress(self, part: int, slot: int) -> None:
        self.tables.progress[part] = max(slot, self.tables.progress.get(part, slot))

    def first_arrival_minute(self) -> datetime | None:
        count_read(rows=1 if self.tables.arrival_minutes else 0, partitions=1)
        return min(self.tables.arrival_minutes, default=None)

    def arrival_minutes_between(self, first: datetime, last: datetime, limit: int) -> list[datetime]:
        found = sorted(m for m in self.tables.arrival_minutes if first <= m <= last)[:limit]
        count_read(rows=len(found), partitions=1)
        return found

    def read_arrivals(
        self, slots: Sequence[int], shards: Sequence[int], *, per_partition: bool = False
    ) -> list[Arrival]:
        found = [arrival for slot in slots for arrival in self._slot_arrivals(slot, set(shards))]
        count_read(rows=len(found), partitions=len(slots) * len(set(shards)))
        return found

    def read_arrivals_within(
        self, slots: Sequence[int], shards: Sequence[int], at_most: int, *, per_partition: bool = False
    ) -> tuple[list[Arrival], int | None]:
        """As the Cassandra store keeps them (whole slots, oldest first, while they fit); its reads counted as
        if each slot were one request asking for one row more than the room left."""
        kept: list[Arrival] = []
        for slot in slots:
            arrivals = self._slot_arrivals(slot, set(shards))
            room = at_most - len(kept)
            count_read(rows=min(len(arrivals), room + 1), partitions=len(set(shards)))
            if len(arrivals) > room:
                return kept, slot
            kept += arrivals
        return kept, None

    def _slot_arrivals(self, slot: int, wanted: Set[int]) -> list[Arrival]:
        return [
            Arrival(slot, key, self.tables.arrival_seen.get((slot, key)))
            for key in sorted(self.tables.arrivals.get(slot, ()), key=lambda k: (k.session_id, k.ts))
            if self.tables.arrival_shards[key] in wanted
        ]

    def read_marks(self, keys: Sequence[StartKey], *, per_partition: bool = False) -> dict[StartKey, int]:
        found = {key: self.tables.marks[key] for key in keys if key in self.tables.marks}
        count_read(rows=len(found), partitions=len({key.session_id for key in keys}))
        return found

    def read_fold_records(
        self, folds: Sequence[int], *, per_partition: bool = False
    ) -> dict[int, frozenset[StartKey]]:
        found = {fold: frozenset(self.tables.folds[fold]) for fold in folds if fold in self.tables.folds}
        count_read(rows=len(found), partitions=len(set(folds)))
        return found

    def write_marks(self, marks: Sequence[tuple[StartKey, int, int]]) -> None:
        for key, fold, _ttl in marks:
            self.tables.marks[key] = fold

    def stored_starts(self, keys: Sequence[StartKey]) -> set[StartKey]:
        if self.family is not STARTS:
            return set(keys)
        stored = {StartKey(sid, ts, c) for (_h, _s, c, ts, sid, _p) in self.db.starts}
        return {key for key in keys if key in stored}

    def claim_fold(self, fold: int, keys: Sequence[StartKey], ttl_seconds: int) -> list[StartKey]:
        return list(self.tables.folds.setdefault(fold, list(keys)))

    def start_reading_rollups(self, buckets: Sequence[Bucket]) -> Callable[[], dict[Bucket, list[RollupRow]]]:
        if not self.rollups_read_first:
            return lambda: self.read_rollups(buckets)
        found = self.read_rollups(buckets)
        return lambda: found

    def read_rollups(self, buckets: Sequence[Bucket]) -> dict[Bucket, list[RollupRow]]:
        found = {
            bucket: [self.tables.rollups[bucket][key] for key in sorted(self.tables.rollups[bucket])]
            for bucket in buckets
            if self.tables.rollups.get(bucket)
        }
        count_read(
            rows=sum(len(rows) for rows in found.values()),
            partitions=len({(b.level, b.period) for b in buckets}),
        )
        return found

    def write_deltas(self, fold: int, deltas: Sequence[tuple[Bucket, dict[str, int], int]]) -> None:
        for bucket, counts, _ttl in deltas:
            self.tables.rollups.setdefault(bucket, {})[(fold, False)] = RollupRow(fold, False, dict(counts))

    def write_bases(self, bases: Sequence[tuple[Bucket, int, dict[str, int], int]]) -> None:
        for bucket, fold, counts, _ttl in bases:
            rows = self.tables.rollups.setdefault(bucket, {})
            rows[(fold, True)] = RollupRow(fold, True, dict(counts))
            for older in [key for key in rows if key[0] < fold]:
                del rows[older]

    def edge_country_counts(
        self, hour: datetime, countries: Sequence[str], since: datetime, before: datetime
    ) -> Counter[str]:
        counts = Counter(
            c
            for (h, _s, c, ts, _sid, _p) in self.db.starts
            if h == hour and c in countries and since <= ts < before
        )
        count_read(rows=sum(counts.values()), partitions=1)
        return counts

    def has_country_start_between(self, country: str, after: datetime, until: datetime) -> bool:
        count_read(rows=0, partitions=1)
        return any(c == country and after < ts <= until for (_h, _s, c, ts, _sid, _p) in self.db.starts)

    def country_hour_starts(
        self, hours: HourCounts, country: str, not_after: datetime, not_before: datetime, page_size: int
    ) -> list[Iterator[StartRow]]:
        streams = []
        for hour, _known in hours:
            read = [
                (ts, sid, player)
                for (h, _s, c, ts, sid, player) in self.db.starts
                if h == hour and c == country and not_before <= ts <= not_after
            ]
            count_read(rows=len(read), partitions=1)
            # A start whose player was erased stays for the counts, without its player: never listed.
            rows = [StartRow(ts, sid, player, country) for ts, sid, player in read if player is not None]
            # Reversed ids within an instant: the domain must order ties itself, as with Cassandra's UUID order.
            streams.append(iter(sorted(rows, key=lambda r: (-r.ts.timestamp(), -r.session_id.int))))
        return streams


class InMemoryPlayerDataStore:
    """The player's index, erasure records and receipts, on the shared in-memory tables."""

    def __init__(self, sessions: InMemorySessionStore) -> None:
        self.db = sessions.db
        self._sessions = sessions

    def player_writes(
        self, player_hash: bytes, *, after: UUID | None = None, sessions: int | None = None
    ) -> list[PlayerWrite]:
        entries = sorted(
            (
                e
                for e in self.db.player_writes.get(player_hash, set())
                if after is None or e.session_id > after
            ),
            key=lambda e: (e.session_id, e.kind.value, e.ts, e.country, e.slot),
        )
        if sessions is not None:
            kept = sorted({e.session_id for e in entries})[:sessions]
            entries = [e for e in entries if e.session_id in kept]
        return entries

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, SessionHalves]:
        return self._sessions.read_sessions(session_ids)

    def completed_of(self, player_id: str) -> list[CompletedSession]:
        return [s for (player, _, _), (s, _) in self.db.completed.items() if player == player_id]

    def completed_among(self, player_id: str, sessions: Sequence[tuple[UUID, datetime]]) -> set[UUID]:
        return {sid for sid, end in sessions if (player_id, end, sid) in self.db.completed}

    def erase_sessions(
        self,
        player_hash: bytes,
        entries: Sequence[PlayerWrite],
        owned: Sequence[UUID],
        still_open: Sequence[UUID] = (),
    ) -> None:
        for session_id in owned:
            self.db.sessions.pop(session_id, None)
        for session_id in still_open:
            self.db.sessions.get(session_id, {}).pop("player_id", None)
        for entry in entries:
            if entry.kind is WriteKind.START:
                for row in [r for r in self.db.starts if r[4] == entry.session_id and r[3] == entry.ts]:
                    if row[2] == entry.country:
                        self.db.starts.discard(row)
                        self.db.starts.add((*row[:5], None))
            if entry.ttl_seconds >= 0:
                self.db.player_writes.get(player_hash, set()).discard(replace(entry, ttl_seconds=0))

    def erase_completed(self, player_id: str, sessions: Sequence[CompletedSession]) -> None:
        for session in sessions:
            self.db.completed.pop((player_id, session.end_ts, session.session_id), None)

    def erasure_record(self, player_hash: bytes) -> tuple[datetime, UUID] | None:
        return self.db.erased.get(player_hash)

    def write_erasure_record(
        self, player_hash: bytes, erased_at: datetime, erasure_id: UUID, ttl: int
    ) -> None:
        self.db.erased[player_hash] = (erased_at, erasure_id)

    def save_receipt(self, receipt: ErasureReceipt, ttl: int) -> None:
        self.db.receipts[receipt.erasure_id] = replace(receipt)

    def read_receipt(self, erasure_id: UUID) -> ErasureReceipt | None:
        return self.db.receipts.get(erasure_id)


class InMemoryReadCache:
    """The generation protocol of RedisReadCache (see repositories/cache_protocol.py), in a dictionary."""

    def __init__(self) -> None:
        self.generations: Counter[str] = Counter()
        self.values: dict[str, bytes] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, scopes: Sequence[str], key: str) -> tuple[CacheToken | None, bytes | None]:
        prefix = ":".join(f"{scope}={self.generations[scope]}" for scope in scopes)
        value = self.values.get(f"{prefix}|{key}")
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return CacheToken(prefix), value

    def store(self, token: CacheToken | None, key: str, value: bytes, ttl_seconds: int) -> None:
        if token is not None:
            self.values[f"{token.key_prefix}|{key}"] = value

    def ping(self) -> CacheHealth:
        return CacheHealth(status="up", latency_ms=0.1)

    def invalidate(self, scopes: Sequence[str]) -> None:
        self.generations.update(scopes)

    def bump_epoch(self) -> bool:
        self.values.clear()  # (every value cached so far unreachable, as a new epoch in every key makes them)
        return True

    def forget(self, scopes: Sequence[str]) -> int | None:
        self.invalidate(scopes)
        doomed = [key for key in self.values if any(f"{scope}=" in key.split("|", 1)[0] for scope in scopes)]
        for key in doomed:
            del self.values[key]
        return len(doomed)


class InMemoryCacheDebt:
    """Lost cache invalidations as repositories.cache_debt records them, in two attributes."""

    def __init__(self) -> None:
        self.owed: int | None = None
        self.paid: int | None = None

    def owe(self) -> None:
        self.owed = (self.owed or 0) + 1

    def unpaid(self) -> int | None:
        return self.owed if self.owed is not None and self.owed != self.paid else None

    def mark_paid(self, debt: int) -> None:
        self.paid = debt


class OnceAfter:
    """A store as it is, but ``then`` runs once, right after the first call of its method ``after`` returns:
    another environment's step (a fold, an erasure) landing between two steps of the one under test."""

    def __init__(self, inner: Any, after: str, then: Callable[[], object]) -> None:
        self._inner = inner
        self._after = after
        self._then: Callable[[], object] | None = then

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if name != self._after:
            return method

        def then_once(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if self._then is not None:
                then, self._then = self._then, None
                then()
            return result

        return then_once


class FlowingClock:
    """Time flowing as the real clock does, from a fixed origin: for races on real services at a moment no
    other test uses."""

    def __init__(self, origin: datetime) -> None:
        self._origin = origin
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=time.monotonic() - self._started)


def in_memory_services(now: datetime) -> Services:
    """The services of an environment on the in-memory stores, no cache, the clock stopped at ``now``."""
    sessions = InMemorySessionStore()
    return Services(Settings(), FixedClock(now), sessions, InMemoryStartsStore(sessions), NoCache(), None)


if TYPE_CHECKING:
    from player_sessions.clock import Clock
    from player_sessions.repositories.cache_protocol import ReadCache
    from player_sessions.repositories.protocols import CacheDebtStore, RollupStore, SessionStore

    # mypy holds each fake to the Protocol the domain takes it as, as it holds the real stores (nothing runs).
    # RollupStore extends StartsStore: the starts fake stands in for both.
    _session_store: type[SessionStore] = InMemorySessionStore
    _starts_store: type[RollupStore] = InMemoryStartsStore
    _read_cache: type[ReadCache] = InMemoryReadCache
    _cache_debt: type[CacheDebtStore] = InMemoryCacheDebt
    _clock: type[Clock] = FlowingClock
