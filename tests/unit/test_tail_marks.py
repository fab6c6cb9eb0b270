"""Which late starts of the tail a reader looks up the marks of: only those that their own part has not yet folded,
every arrival of them (domain.country_starts.window.Tail.folded_by_their_parts); the counts stay exact."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.models import StartKey
from player_sessions.settings import Settings
from player_sessions.time_buckets import slot_of, start_shard
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
    count: int, clock: FixedClock, sessions: InMemorySessionStore, settings: Settings
) -> list[dict]:
    """``count`` starts stamped a minute before the clock's now, stored now (each in its own shard by id)."""
    batch = [
        {
            "event": "start",
            "player_id": "p",
            "session_id": str(uuid.uuid4()),
            "ts": (clock.moment - timedelta(minutes=1)).isoformat(),
            "country": COUNTRIES[n % len(COUNTRIES)],
        }
        for n in range(count)
    ]
    assert ingest_batch(batch, store=sessions, clock=clock, settings=settings).stored == count
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
