"""Counts and listings compared with a brute-force model, over random event streams: duplicates, late events,
readers building rollups at random moments, and random windows. In-memory storage; the integration tests run
the same machinery on the real Cassandra."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import starts_by_country, starts_of_country, window_for
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.start_counts import Window, cover_with_buckets, plan_window
from player_sessions.settings import Settings
from player_sessions.time_buckets import bucket_end, hour_of
from tests.fakes import InMemorySessionStore, InMemoryStartsStore

SETTINGS = Settings(retention_days=365)
EPOCH = datetime(2026, 3, 30, 7, 13, tzinfo=UTC)
COUNTRIES = ["US", "FI", "PK", "BR"]

start_event = st.builds(
    lambda minutes_before, seconds, country, session: {
        "minutes_before": minutes_before, "seconds": seconds, "country": country, "session": session},
    minutes_before=st.integers(min_value=0, max_value=24 * 90 * 60),
    seconds=st.integers(min_value=0, max_value=59),
    country=st.sampled_from(COUNTRIES),
    session=st.integers(min_value=0, max_value=400),
)
# A step either advances time, ingests a batch of starts (some re-sent, some late), or runs a reader.
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=1, max_value=72 * 60)),
    st.tuples(st.just("ingest"), st.lists(start_event, min_size=1, max_size=10)),
    st.tuples(st.just("count"), st.integers(min_value=1, max_value=8760)),
    st.tuples(st.just("list"), st.tuples(st.sampled_from(COUNTRIES), st.integers(min_value=1, max_value=8760))),
)


def session_uuid(number: int) -> uuid.UUID:
    return uuid.UUID(int=number + 1)


def run(steps):
    sessions = InMemorySessionStore()
    starts = InMemoryStartsStore(sessions)
    clock = FixedClock(EPOCH)
    truth: dict[uuid.UUID, tuple[datetime, str]] = {}
    checks = 0
    for kind, argument in steps:
        now = clock.now()
        if kind == "advance":
            clock.advance(minutes=argument)
        elif kind == "ingest":
            batch = []
            for item in argument:
                ts = (now - timedelta(minutes=item["minutes_before"])).replace(second=item["seconds"], microsecond=0)
                sid = session_uuid(item["session"])
                # A session has one start: a re-sent event repeats it exactly.
                ts, country = truth.setdefault(sid, (ts, item["country"]))
                batch.append({"event": "start", "player_id": "p", "session_id": str(sid),
                              "ts": ts.isoformat(), "country": country})
            ingest_batch(batch, sessions, clock, SETTINGS)
        elif kind == "count":
            result = starts_by_country(argument, starts, clock, SETTINGS)
            expected = Counter(c for ts, c in truth.values() if result.window.start <= ts <= result.window.end)
            assert dict(result.counts) == dict(expected), (argument, now)
            checks += 1
        else:
            country, hours = argument
            listed, cursor = [], None
            while True:
                page = starts_of_country(country, hours, 7, cursor, starts, clock, SETTINGS)
                listed += [(row.ts, row.session_id) for row in page.starts]
                cursor = page.next_cursor
                if cursor is None:
                    break
            window = page.window
            expected = sorted(((ts, sid) for sid, (ts, c) in truth.items()
                               if c == country and window.start <= ts <= window.end),
                              key=lambda item: (-item[0].timestamp(), item[1]))
            assert listed == expected
            checks += 1
    return checks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=3, max_size=25))
def test_counts_and_listings_equal_a_brute_force_model(steps):
    run(steps)


def test_a_late_start_after_rollups_were_built_is_counted():
    # Given rollups built over a week of starts
    steps = [("ingest", [{"minutes_before": 3 * 24 * 60, "seconds": 1, "country": "FI", "session": 1}]),
             ("count", 8760),
             # When a late start lands in an hour that is already rolled up
             ("ingest", [{"minutes_before": 3 * 24 * 60 + 5, "seconds": 2, "country": "FI", "session": 2}]),
             # Then the next count includes it (run() compares with the model)
             ("count", 8760), ("count", 100), ("list", ("FI", 8760))]
    assert run(steps) == 4


def test_window_is_tiled_by_few_buckets_and_reads_few_partitions():
    # Given a full-year window
    now = datetime(2026, 11, 28, 6, 49, 57, tzinfo=UTC)
    window = window_for(8760, now, SETTINGS.retention)
    plan = plan_window(window, now)
    # Then settled buckets tile the whole hours between the partial edges without gaps or overlap
    for earlier, later in zip(plan.buckets, plan.buckets[1:]):
        assert bucket_end(earlier) == later.start
    assert plan.buckets[0].start == hour_of(window.start) + timedelta(hours=1)
    assert len(plan.buckets) < 90
    assert len({(b.level, b.period) for b in plan.buckets}) <= 6
    assert len(plan.row_hours) <= 3


def test_cover_uses_months_days_and_hours():
    start, end = datetime(2026, 1, 30, 22, tzinfo=UTC), datetime(2026, 4, 2, 3, tzinfo=UTC)
    levels = Counter(bucket.level.value for bucket in cover_with_buckets(start, end))
    assert levels == Counter({"hour": 2 + 3, "day": 1 + 1, "month": 2})


def test_window_never_reaches_past_the_retention():
    now = datetime(2026, 11, 28, tzinfo=UTC)
    short = Settings(retention_days=30)
    assert window_for(8760, now, short.retention) == Window(now - timedelta(days=30), now)
