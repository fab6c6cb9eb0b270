"""Sessions online and session lengths on the real Cassandra: exact under re-sent and out-of-order halves with
the builders folding in between, and reads bounded by the window's structure, not by how many sessions opened
and closed in the last minutes."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions import histograms
from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import CompactionTracker, RollupBuilder
from player_sessions.domain.country_starts.records import RELATIVE_ERROR
from player_sessions.domain.country_starts.rollups import bucket_state
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.live_ops import LiveOps
from player_sessions.read_counts import metered
from player_sessions.repositories.cassandra_rollups import CassandraRollupStore
from player_sessions.schema import COMPLETIONS, LENGTHS
from player_sessions.time_buckets import Level, buckets_of

pytestmark = pytest.mark.integration

COUNTRIES = ["US", "FI", "PK", "BR"]


@pytest.fixture
def family_stores(counts_stores, counts_connection, counts_settings):
    """The session store, and the starts, completions and lengths stores, on emptied tables."""
    session_store, starts_store = counts_stores
    shards = counts_settings.start_shards
    return (
        session_store,
        starts_store,
        CassandraRollupStore(counts_connection, shards, COMPLETIONS),
        CassandraRollupStore(counts_connection, shards, LENGTHS),
    )


def halves(session_id: uuid.UUID, start: datetime, end: datetime, country: str) -> tuple[dict, dict]:
    common = {"player_id": "p" + session_id.hex[:8], "session_id": str(session_id)}
    return (
        {**common, "event": "start", "ts": start.isoformat(), "country": country},
        {**common, "event": "end", "ts": end.isoformat()},
    )


def fold_all(stores, clock, settings, trackers) -> None:
    for store, tracker in zip(stores, trackers, strict=True):
        RollupBuilder(store, clock, settings, tracker=tracker).fold_every_part(max_slots=10_000)


def test_online_and_lengths_stay_exact_through_resent_and_out_of_order_halves(family_stores, counts_settings):
    # Given sessions whose halves arrive in any order, some re-sent, some ends only, with the builders folding
    # between the batches
    sessions, *stores = family_stores
    clock, rng = FixedClock(datetime(2026, 6, 15, 12, 30, 15, 500_000, tzinfo=UTC)), random.Random(11)
    trackers = [CompactionTracker(compact_after=2) for _ in stores]
    model = {}
    for _ in range(120):
        # (whole milliseconds, as events are stored)
        ms = rng.choice([rng.randrange(1000, 1_800_000), rng.randrange(-60_000, 0), 13 * 3_600_000])
        length = timedelta(milliseconds=ms)
        start = clock.now() - length - timedelta(milliseconds=rng.randrange(6 * 3_600_000))
        model[uuid.UUID(int=rng.getrandbits(128))] = (start, start + length, rng.choice(COUNTRIES))
    events = []
    for sid, (start, end, country) in model.items():
        begin, finish = halves(sid, start, end, country)
        kept = rng.random()
        chosen = [begin, finish] if kept < 0.6 else [begin] if kept < 0.8 else [finish]
        rng.shuffle(chosen)
        events += chosen + ([rng.choice(chosen)] if rng.random() < 0.3 else [])
    rng.shuffle(events)
    for index in range(0, len(events), 10):
        ingest_batch(events[index : index + 10], store=sessions, clock=clock, settings=counts_settings)
        clock.advance(seconds=2)
        if index % 50 == 0:
            fold_all(stores, clock, counts_settings, trackers)
    stored = {(e["session_id"], e["event"]) for e in events}
    live_ops = LiveOps(*stores, clock, counts_settings)
    for moment in ("tail", "folded"):
        if moment == "folded":
            clock.advance(seconds=5)
            fold_all(stores, clock, counts_settings, trackers)
        # When the figures are asked for
        online = live_ops.online()
        lengths = live_ops.session_lengths(24)
        # Then they equal the sessions' own: open = started and not ended; lengths of the completed ones
        expected_open = Counter(
            country
            for sid, (start, _, country) in model.items()
            if (str(sid), "start") in stored
            and (str(sid), "end") not in stored
            and start >= online.window.start
        )
        assert dict(online.counts) == dict(expected_open), moment
        completed = [
            (round((end - start).total_seconds() * 1000), country)
            for sid, (start, end, country) in model.items()
            if {(str(sid), "start"), (str(sid), "end")} <= stored
        ]
        inside = sorted(ms for ms, _ in completed if 0 <= ms <= 12 * 3_600_000)
        assert lengths.total.sessions == len(inside) > 20
        assert lengths.total.milliseconds == sum(inside)
        assert lengths.total.outside == len(completed) - len(inside) > 0
        for q in (0.5, 0.9, 0.99):
            exact = inside[max(1, math.ceil(q * len(inside))) - 1]
            assert abs(lengths.total.quantile_ms(q) - exact) <= RELATIVE_ERROR * exact, (moment, q)
        assert online.settled.folded_through is not None


def live_sessions(count: int, rng: random.Random, *, sessions, clock, settings) -> None:
    """``count`` sessions opened and closed within the last ten minutes, 250 a batch, a second apart."""
    for _ in range(0, count, 250):
        events = []
        for _ in range(250):
            start = clock.now() - timedelta(seconds=rng.uniform(60, 600))
            end = start + timedelta(seconds=rng.uniform(0, 59))
            events += halves(uuid.UUID(int=rng.getrandbits(128)), start, end, rng.choice(COUNTRIES))
        ingest_batch(events, store=sessions, clock=clock, settings=settings)
        clock.advance(seconds=1)


ONLINE_ROWS_BOUND = 2 * 250
"""Two counts' worth (the starts' and the completions'): tests/integration/test_country_starts_on_cassandra.py
holds one count to 250 rows."""
LENGTHS_ROWS_BOUND = 250


@pytest.mark.timeout(900)  # 10,000 sessions ingested and folded: minutes on a slow host
def test_reads_stay_within_a_fixed_bound_however_many_sessions_the_last_minutes_hold(
    family_stores, counts_settings
):
    # Given the builders on their schedule while 0, then 10,000 sessions are opened and closed in the last
    # minutes
    sessions, *stores = family_stores
    clock, rng = FixedClock(datetime(2026, 7, 1, 18, 42, 7, 250_000, tzinfo=UTC)), random.Random(5)
    trackers = [CompactionTracker() for _ in stores]
    live_ops = LiveOps(*stores, clock, counts_settings)
    measured = {}
    for total, more in ((0, 0), (10_000, 10_000)):
        live_sessions(more, rng, sessions=sessions, clock=clock, settings=counts_settings)
        clock.advance(seconds=3)
        fold_all(stores, clock, counts_settings, trackers)
        # When each figure is asked for
        for name, ask in (
            ("online", live_ops.online),
            ("lengths 1h", lambda: live_ops.session_lengths(1)),
            ("lengths 8760h", lambda: live_ops.session_lengths(8760)),
        ):
            with metered() as reads:
                ask()
            measured[(total, name)] = reads.rows
    # Then each reads no more than the fixed bound, with 10,000 sessions in the last minutes as with none
    for (total, name), rows in measured.items():
        assert rows <= (ONLINE_ROWS_BOUND if name == "online" else LENGTHS_ROWS_BOUND), (total, name, rows)
    assert live_ops.online().total == 0
    assert live_ops.session_lengths(1).total.sessions == 10_000
    assert CountryStarts(stores[0], clock, counts_settings).counts(1).total == 10_000
    # And a lengths rollup row holds each country's histogram as one figure: at most three per country and the
    # late count, however varied the durations (a row's cost to read grows with the countries, not the bins)
    rows = stores[2].read_rollups(buckets_of(clock.now() - timedelta(minutes=5)))
    hour = next(rows[bucket] for bucket in rows if bucket.level is Level.HOUR)
    assert (
        max(len(row.counts) for bucket_rows in rows.values() for row in bucket_rows) <= 3 * len(COUNTRIES) + 1
    )
    counts = bucket_state(hour).counts
    assert all(sum(histograms.bin_counts(counts[f"{c}/bins"])) == counts[c] for c in COUNTRIES)


def test_a_window_whose_two_ends_share_a_partition_reads_only_its_buckets(family_stores, counts_settings):
    # Given a session every two minutes over the last 13 hours, all folded: rollup rows in every minute and
    # ten-minute bucket of the day, on both sides of the online window's start and end
    sessions, *stores = family_stores
    clock = FixedClock(datetime(2026, 7, 2, 16, 41, 7, 250_000, tzinfo=UTC))
    events = []
    for minutes in range(0, 13 * 60, 2):
        start = clock.now() - timedelta(minutes=minutes, seconds=30)
        events += halves(uuid.uuid4(), start, start + timedelta(seconds=20), "FI")
    ingest_batch(events, store=sessions, clock=clock, settings=counts_settings)
    clock.advance(seconds=3)
    fold_all(stores, clock, counts_settings, [CompactionTracker() for _ in stores])
    live_ops = LiveOps(*stores, clock, counts_settings)
    # When the sessions online are counted over the 12-hour window, whose first and last minutes fall in one
    # day partition
    with metered() as reads:
        online = live_ops.online()
    # Then only the window's own buckets are read (its minutes at both ends, not the 12 hours between them)
    assert online.total == 0
    assert reads.rows <= 200, reads.rows
    assert reads.requests <= 80, reads.requests
