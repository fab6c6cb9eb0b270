"""The builder's writes as Keyspaces takes them, on the real Cassandra under the local Keyspaces rules: the
watermark moves forward only, after any lag; two folds of one slot agree without a serial consistency level;
a compaction is two acknowledged steps that never lose a count."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.cluster import NoHostAvailable

from player_sessions.domain.country_starts.rollups import bucket_state
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import StartKey
from player_sessions.repositories import cassandra_rollups
from player_sessions.time_buckets import Bucket, Level, slot_of

pytestmark = pytest.mark.integration


def test_the_watermark_moves_after_a_lag_of_more_than_two_days(counts_stores):
    # Given a builder whose watermark is three days behind the real clock (an outage)
    _, starts = counts_stores
    three_days_ago = slot_of(datetime.fromtimestamp(time.time(), UTC) - timedelta(days=3))
    # When it writes the watermark (Keyspaces takes client timestamps only two days back)
    starts.write_progress(0, three_days_ago)
    starts.write_progress(0, three_days_ago + 1)
    # Then it is written, and moves
    assert starts.read_progress([0])[0] == three_days_ago + 1


def test_a_slower_builder_never_moves_the_watermark_back(counts_stores):
    # Given a watermark at slot 1000
    _, starts = counts_stores
    starts.write_progress(0, 1000)
    # When a slower builder writes an older slot, then a faster one a newer one
    starts.write_progress(0, 990)
    assert starts.read_progress([0])[0] == 1000
    starts.write_progress(0, 1005)
    # Then only the newer one moved it
    assert starts.read_progress([0])[0] == 1005


def test_a_second_fold_of_a_slot_gets_the_first_folds_record(counts_stores):
    # Given a fold of slot 42 that recorded two starts
    _, starts = counts_stores
    first = [StartKey(uuid.uuid4(), datetime(2026, 5, 1, tzinfo=UTC), "FI") for _ in range(2)]
    assert starts.claim_fold(42, first, 60) == first
    # When another builder folds the same slot, having seen one more start
    later = [*first, StartKey(uuid.uuid4(), datetime(2026, 5, 1, tzinfo=UTC), "US")]
    # Then it gets the first record, read back (never from the answer of its failed condition)
    assert starts.claim_fold(42, later, 60) == first


BUCKET = Bucket(Level.HOUR, datetime(2026, 5, 1, 10, tzinfo=UTC))


def counts_of(starts) -> Counter[str]:
    return bucket_state(starts.read_rollups([BUCKET]).get(BUCKET, [])).counts


def test_a_compaction_cut_short_before_its_removal_keeps_the_counts(counts_stores, monkeypatch):
    # Given three deltas of a bucket
    _, starts = counts_stores
    for slot, counts in ((1, {"FI": 2}), (2, {"FI": 1, "US": 4}), (3, {"US": 1})):
        starts.write_deltas(slot, [(BUCKET, counts, 3600)])
    before = counts_of(starts)
    # When a compaction up to slot 3 writes its base and then fails to remove the rows before it
    execute = cassandra_rollups.execute_concurrent

    def failing_removal(session, requests, **options):
        if any(
            statement.query_string == cassandra_rollups.DELETE_ROLLUPS_BEFORE.text
            for statement, _ in requests
        ):
            raise NoHostAvailable("the node went away", {})
        return execute(session, requests, **options)

    monkeypatch.setattr(cassandra_rollups, "execute_concurrent", failing_removal)
    with pytest.raises(DatabaseUnavailableError):
        starts.write_bases([(BUCKET, 3, dict(before), 3600)])
    monkeypatch.undo()
    # Then the counts are unchanged (the base covers the deltas still there), and a later compaction finishes
    assert counts_of(starts) == before == Counter({"FI": 3, "US": 5})
    starts.write_bases([(BUCKET, 3, dict(before), 3600)])
    rows = starts.read_rollups([BUCKET])[BUCKET]
    # (the rows before slot 3 are gone; slot 3's own delta stays beside the base, which includes it)
    assert sorted((row.slot, row.base) for row in rows) == [(3, False), (3, True)]
    assert counts_of(starts) == before
