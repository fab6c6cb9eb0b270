"""The burst's lag: the age of the oldest start the builders have not folded, apart from the span of slots a
reader's tail reads (which an idle part's watermark lengthens with empty slots)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from player_sessions.models import Arrival, ArrivalWrite, StartKey
from player_sessions.settings import Settings
from player_sessions.time_buckets import Partition, slot_of, slot_start
from player_sessions_local.bench.burst import LagSample, lag_sample
from tests.fakes import InMemorySessionStore, InMemoryStartsStore

SETTINGS = Settings()
PARTITION = Partition(parts=2, shards=4)
NOW_SLOT = 1_800_000_000
NOW = slot_start(NOW_SLOT) + timedelta(milliseconds=400)


def _stores() -> tuple[InMemorySessionStore, InMemoryStartsStore]:
    sessions = InMemorySessionStore()
    return sessions, InMemoryStartsStore(sessions)


def _arrive(sessions: InMemorySessionStore, slot: int, shard: int) -> None:
    key = StartKey(uuid.uuid4(), slot_start(slot), "US")
    sessions.write_arrivals([ArrivalWrite(Arrival(slot, key), shard, 86_400, "p", SETTINGS.player_hash("p"))])


def test_the_lag_is_the_age_of_the_oldest_unfolded_arrival_not_of_an_idle_watermark():
    # Given part 0 (shards 0 and 2) folded to 3 slots ago with an arrival waiting in shard 2 two slots ago,
    # and part 1 (shards 1 and 3) idle: its watermark 9 slots back, nothing after it but an arrival it folded
    sessions, starts = _stores()
    starts.write_progress(0, NOW_SLOT - 3)
    starts.write_progress(1, NOW_SLOT - 9)
    _arrive(sessions, NOW_SLOT - 2, shard=2)
    _arrive(sessions, NOW_SLOT - 12, shard=1)
    # When the lag is sampled
    sample = lag_sample(starts, PARTITION, NOW)
    # Then the lag runs from the waiting arrival's slot, the span from the idle part's watermark
    assert sample == LagSample(unfolded=2.4, span=8.4)


def test_nothing_waiting_is_no_lag_and_the_current_slot_counts():
    sessions, starts = _stores()
    starts.write_progress(0, NOW_SLOT - 5)
    starts.write_progress(1, NOW_SLOT - 5)
    # With nothing after either watermark, nothing waits
    assert lag_sample(starts, PARTITION, NOW) == LagSample(unfolded=0.0, span=4.4)
    # An arrival in the slot being written (not yet foldable) is already waiting; one before a watermark is not
    _arrive(sessions, NOW_SLOT, shard=3)
    _arrive(sessions, NOW_SLOT - 6, shard=0)
    assert lag_sample(starts, PARTITION, NOW) == LagSample(unfolded=0.4, span=4.4)


def test_no_sample_until_every_part_has_a_watermark():
    sessions, starts = _stores()
    starts.write_progress(0, NOW_SLOT - 1)
    _arrive(sessions, NOW_SLOT, shard=1)
    assert lag_sample(starts, PARTITION, NOW) is None
    assert slot_of(NOW) == NOW_SLOT
