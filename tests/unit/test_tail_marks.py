"""Which late starts of the tail a reader looks up the marks of: only those that their own part has not yet folded,
every arrival of them (domain.country_starts.window.Tail.folded_by_their_parts), and, of those, only the ones
stored without what ingest read first (domain.country_starts.seen); the counts stay exact."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.models import Seen, StartKey, StoredBefore
from player_sessions.settings import Settings
from player_sessions.time_buckets import fold_id, slot_of, start_shard
from tests.fakes import InMemorySessionStore, InMemoryStartsStore

T0 = datetime(2026, 3, 30, 7, 13, 0, tzinfo=UTC)
COUNTRIES = ["US", "FI", "PK"]


class MarksAskedStore(InMemoryStartsStore):
    """The in-memory store, remembering every key whose mark a reader asked for."""

    def __init__(self, sessions: InMemorySessionStore) -> None:
        super().__init__(sessions)
        self.asked: list[StartKey] = []

    def read_marks(self, keys: Sequence[StartKey], *, per_partition: bool = False) -> dict[StartKey, int]:
        self.asked += keys
        return super().read_marks(keys, per_partition=per_partition)


def late_starts(
    count: int,
    clock: FixedClock,
    sessions: InMemorySessionStore,
    settings: Settings,
    *,
    counted: InMemoryStartsStore | None = None,
    again: Sequence[dict] = (),
) -> list[dict]:
    """``again`` and ``count`` new starts stamped a minute before the clock's now, stored now (each in its own
    shard by id), with what ingest read first when ``counted`` is given."""
    batch = [*again] + [
        {
            "event": "start",
            "player_id": "p",
            "session_id": str(uuid.uuid4()),
            "ts": (clock.moment - timedelta(minutes=1)).isoformat(),
            "country": COUNTRIES[n % len(COUNTRIES)],
        }
        for n in range(count)
    ]
    outcome = ingest_batch(batch, store=sessions, clock=clock, settings=settings, counted=counted)
    assert outcome.stored == len(batch)
    return batch


def test_a_late_start_its_part_folded_is_not_looked_up_and_one_a_slot_later_is():
    # Given two parts (one shard each); late starts stored in slot s0, then more in slot s0 + 1
    settings = Settings(rollup_parts=2, start_shards=2)
    sessions = InMemorySessionStore()
    store = MarksAskedStore(sessions)
    clock = FixedClock(T0)
    first = late_starts(30, clock, sessions, settings)
    clock.moment = T0 + timedelta(seconds=1)
    second = late_starts(30, clock, sessions, settings)
    # And part 0 folded what had settled by T0 + 3 s: slot s0 and nothing after it; part 1 folded nothing
    clock.moment = T0 + timedelta(seconds=3)
    RollupBuilder(store, clock, settings).fold(part=0)
    assert store.read_progress([0, 1]) == {0: slot_of(T0)}
    store.asked = []  # the builder's own look-ups

    # When the last hour is counted
    counts = CountryStarts(store, clock, settings).counts(1)

    # Then every start is counted once: part 0's first ones from the rollups, the rest from the tail
    assert dict(counts.counts) == dict(Counter(event["country"] for event in first + second))

    # And marks were asked for every late start but part 0's folded ones; its starts of slot s0 + 1, just past
    # its watermark, were asked for
    def part(event: dict) -> int:
        return settings.partition.part_of(start_shard(uuid.UUID(event["session_id"]), settings.start_shards))

    folded = {uuid.UUID(e["session_id"]) for e in first if part(e) == 0}
    assert folded and any(part(e) == 0 for e in second)
    assert {key.session_id for key in store.asked} == {
        uuid.UUID(e["session_id"]) for e in first + second
    } - folded


class FoldsAskedStore(MarksAskedStore):
    """The in-memory store, remembering every fold whose record a reader asked for too."""

    def __init__(self, sessions: InMemorySessionStore) -> None:
        super().__init__(sessions)
        self.folds_asked: list[int] = []

    def read_fold_records(
        self, folds: Sequence[int], *, per_partition: bool = False
    ) -> dict[int, frozenset[StartKey]]:
        self.folds_asked += folds
        return super().read_fold_records(folds, per_partition=per_partition)


def test_late_starts_stored_with_what_ingest_saw_need_no_marks_and_a_resent_one_is_counted_once():
    # Given two parts; late starts stored in slot s0 with what ingest read first (every part had folded up to
    # s0 - 1), part 0 then folding s0
    settings = Settings(rollup_parts=2, start_shards=2)
    sessions = InMemorySessionStore()
    store = FoldsAskedStore(sessions)
    clock = FixedClock(T0 - timedelta(seconds=1))
    store.write_progress(0, slot_of(clock.moment))
    store.write_progress(1, slot_of(clock.moment))
    clock.moment = T0
    first = late_starts(30, clock, sessions, settings, counted=store)
    clock.moment = T0 + timedelta(seconds=3)
    RollupBuilder(store, clock, settings).fold(part=0)
    # And, a second later, the same starts sent again with 30 new ones (ingest sees the marks of part 0's)
    clock.moment = T0 + timedelta(seconds=4)
    second = late_starts(30, clock, sessions, settings, counted=store, again=first)
    store.asked, store.folds_asked = [], []

    # When the last hour is counted, while part 1 has still folded nothing
    counts = CountryStarts(store, clock, settings).counts(1)

    # Then every start is counted once
    assert dict(counts.counts) == dict(Counter(event["country"] for event in first + second[len(first) :]))
    # And no mark was read: the re-sent ones carry the mark ingest saw, the rest the watermark, and the reader
    # asked for the records of the folds after it that its rollups include: part 0's of slot s0
    assert store.asked == []
    assert set(store.folds_asked) == {fold_id(slot_of(T0), 0)}


def test_ingest_reads_the_watermarks_before_the_marks_and_both_before_the_arrivals():
    # Given a store that logs the calls made of it
    settings = Settings(rollup_parts=2, start_shards=2)
    calls: list[str] = []

    class Logged(InMemorySessionStore):
        def read_before_writing(self, player_hashes, session_ids, parts) -> StoredBefore:
            calls.append(f"read_before_writing parts={list(parts)}")
            return super().read_before_writing(player_hashes, session_ids, parts)

        def write_events(self, writes, arrivals) -> None:
            calls.append("write_events")
            super().write_events(writes, arrivals)

    sessions = Logged()

    class LoggedStarts(InMemoryStartsStore):
        def read_progress(self, parts: Sequence[int]) -> dict[int, int]:
            calls.append("read_progress")
            return super().read_progress(parts)

        def read_marks(self, keys: Sequence[StartKey], *, per_partition: bool = False) -> dict[StartKey, int]:
            calls.append("read_marks")
            return super().read_marks(keys, per_partition=per_partition)

    starts = LoggedStarts(sessions)
    starts.write_progress(0, slot_of(T0) - 5)
    starts.write_progress(1, slot_of(T0) - 3)

    # When a batch of starts is stored
    late_starts(3, FixedClock(T0), sessions, settings, counted=starts)

    # Then the watermarks of both parts were read first (with the batch's sessions), then the marks, then the
    # arrivals written, each once
    assert calls == ["read_before_writing parts=[0, 1]", "read_marks", "write_events"]
    # And each arrival holds the oldest watermark, and no fold
    assert {a.seen for a in starts.read_arrivals([slot_of(T0)], [0, 1])} == {Seen(slot_of(T0) - 5, None)}

    # When a batch of ends only is stored
    calls.clear()
    ends = [{"event": "end", "player_id": "p", "session_id": str(uuid.uuid4()), "ts": T0.isoformat()}]
    ingest_batch(ends, store=sessions, clock=FixedClock(T0), settings=settings, counted=starts)
    # Then no watermark and no mark is read: nothing stores what it saw
    assert calls == ["read_before_writing parts=[]", "write_events"]
