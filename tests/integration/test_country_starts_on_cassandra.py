"""Country counts and listings on the real Cassandra: exact under re-sent batches, late starts, and a builder
folding while writers add live, late and re-sent starts and readers count; and reads bounded by the window's
structure, not by how many starts it holds."""

from __future__ import annotations

import math
import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from cassandra import ReadTimeout

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import (
    FOLD_RECORD_TTL_SECONDS,
    CompactionTracker,
    RollupBuilder,
)
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.ingest import ingest_batch
from player_sessions.read_counts import metered
from player_sessions.repositories.cassandra_rollups import CassandraRollupStore
from player_sessions.repositories.cassandra_start_rows import PARTITIONS_PER_REQUEST
from player_sessions.repositories.cassandra_starts import READ_ARRIVALS, READ_FOLD_RECORDS, READ_MARKS
from player_sessions.time_buckets import FOLD_SPACE, fold_id, slot_of
from tests.fakes import FlowingClock

pytestmark = pytest.mark.integration

COUNTRIES = ["US", "FI", "PK", "BR", "JP"]


def start(session_id: uuid.UUID, ts: datetime, country: str) -> dict:
    return {
        "event": "start",
        "player_id": uuid.uuid4().hex,
        "session_id": str(session_id),
        "ts": ts.isoformat(),
        "country": country,
    }


def random_starts(count: int, now: datetime, rng: random.Random, span_seconds: int) -> list[dict]:
    return [
        start(
            uuid.UUID(int=rng.getrandbits(128)),
            now - timedelta(seconds=rng.randrange(span_seconds)),
            rng.choice(COUNTRIES),
        )
        for _ in range(count)
    ]


def truth(events: list[dict], since: datetime, until: datetime) -> Counter:
    unique = {(e["session_id"], e["ts"], e["country"]) for e in events}
    return Counter(country for _, ts, country in unique if since <= datetime.fromisoformat(ts) <= until)


def fold(starts_store, clock, settings, tracker=None) -> None:
    RollupBuilder(starts_store, clock, settings, tracker=tracker or CompactionTracker()).fold_every_part(
        max_slots=10_000
    )


def ingest_all(events: list[dict], session_store, clock, settings, batch: int = 10) -> None:
    for i in range(0, len(events), batch):
        ingest_batch(events[i : i + batch], store=session_store, clock=clock, settings=settings)


def test_a_builder_folding_while_writers_add_live_late_and_resent_starts_keeps_counts_exact(
    counts_stores, counts_settings
):
    # Given a week of starts, on a clock that flows from a moment of its own
    session_store, starts_store = counts_stores
    clock, rng = FlowingClock(datetime(2026, 6, 15, 12, 30, 15, tzinfo=UTC)), random.Random(7)
    written = random_starts(200, clock.now(), rng, span_seconds=7 * 86_400)
    ingest_all(written, session_store, clock, counts_settings)
    late = random_starts(200, clock.now(), rng, span_seconds=7 * 86_400)
    live = random_starts(200, clock.now(), rng, span_seconds=120)
    resent = rng.sample(written, 40) + rng.sample(live, 20)
    errors: list[BaseException] = []
    stop = threading.Event()
    tracker = CompactionTracker()

    def guarded(work) -> None:
        try:
            work()
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    def builder() -> None:
        while not stop.wait(0.05):
            fold(starts_store, clock, counts_settings, tracker)

    def reader() -> None:
        while not stop.wait(0.02):  # a breath between reads, so the writers' threads get the GIL too
            CountryStarts(starts_store, clock, counts_settings).counts(rng.choice([1, 24, 168, 8760]))

    # When a builder folds and readers count while writers add late, live and re-sent starts
    background = [threading.Thread(target=guarded, args=(builder,))]
    background += [threading.Thread(target=guarded, args=(reader,)) for _ in range(2)]
    writers = [
        threading.Thread(
            target=guarded,
            args=(lambda chunk=chunk: ingest_all(chunk, session_store, clock, counts_settings),),
        )
        for chunk in (late[:100], late[100:], live, resent)
    ]
    for thread in background + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in background:
        thread.join()
    assert errors == []
    everything = written + late + live + resent

    def assert_exact() -> None:
        for hours in (1, 24, 72, 168, 8760):
            result = CountryStarts(starts_store, clock, counts_settings).counts(hours)
            expected = truth(everything, result.window.start, result.window.end)
            assert dict(result.counts) == dict(expected), hours

    # Then every window counts exactly the distinct starts in it, with part of them still in the tail
    assert_exact()
    # And once the builder caught up, from the rollups alone
    clock_after = FixedClock(clock.now() + timedelta(seconds=5))
    fold(starts_store, clock_after, counts_settings, tracker)
    assert set(starts_store.read_progress(counts_settings.partition.all_parts)) == {0, 1, 2, 3}
    assert_exact()
    session = starts_store._connection.session()
    assert len(list(session.execute("SELECT bucket FROM start_count_rollups LIMIT 10"))) == 10


def test_listing_follows_cursors_through_every_start_of_the_window_exactly_once(
    counts_stores, counts_settings
):
    # Given 130 starts of FI over three days, some re-sent, starts of other countries, part of them folded
    session_store, starts_store = counts_stores
    now = datetime(2026, 5, 10, 8, 45, 10, 500_000, tzinfo=UTC)
    clock, rng = FixedClock(now), random.Random(11)
    fi = [start(uuid.uuid4(), now - timedelta(seconds=rng.randrange(3 * 86400)), "FI") for _ in range(130)]
    # Starts at the very same millisecond, to cross a page boundary on a tie
    same_instant = now - timedelta(hours=30)
    fi += [start(uuid.uuid4(), same_instant, "FI") for _ in range(3)]
    others = [
        event for event in random_starts(120, now, rng, span_seconds=72 * 3600) if event["country"] != "FI"
    ]
    ingest_all(fi[:70] + others, session_store, clock, counts_settings)
    clock.advance(seconds=5)
    fold(starts_store, clock, counts_settings)
    ingest_all(fi[70:] + fi[:20], session_store, clock, counts_settings)
    # When the pages are followed to the end, 9 at a time
    listed, cursor, pages = [], None, 0
    while True:
        page = CountryStarts(starts_store, clock, counts_settings).page("fi", 72, limit=9, cursor=cursor)
        listed += [(row.ts, row.session_id) for row in page.starts]
        cursor, pages = page.next_cursor, pages + 1
        if cursor is None:
            break
    # Then every FI start appears once, newest first, ties ordered by session id
    expected = sorted(
        {(datetime.fromisoformat(e["ts"]), uuid.UUID(e["session_id"])) for e in fi},
        key=lambda item: (-item[0].timestamp(), item[1]),
    )
    assert listed == expected
    assert pages == -(-len(expected) // 9)


def test_a_start_is_counted_once_however_often_its_batch_is_resent(counts_stores, counts_settings):
    session_store, starts_store = counts_stores
    clock = FixedClock(datetime(2026, 4, 2, 10, 0, 1, tzinfo=UTC))
    batch = [start(uuid.uuid4(), clock.now() - timedelta(minutes=m), "PK") for m in (1, 61, 125)]
    for _ in range(3):
        # Given the batch re-sent, into a new arrival slot each time, folded or not yet
        ingest_batch(batch, store=session_store, clock=clock, settings=counts_settings)
        # Then the count is the same
        assert dict(CountryStarts(starts_store, clock, counts_settings).counts(3).counts) == {"PK": 3}
        clock.advance(seconds=3)
        fold(starts_store, clock, counts_settings)
        assert dict(CountryStarts(starts_store, clock, counts_settings).counts(3).counts) == {"PK": 3}


def test_a_sparse_country_is_listed_exactly_once_across_many_hours_read_together(
    counts_stores, counts_settings
):
    # Given a country with two starts an hour over 150 hours (hours read 25 at a time, all shards in one request,
    # once rollups count them), next to a busy country with 60 starts in some of those hours (read per shard)
    session_store, starts_store = counts_stores
    now = datetime(2026, 6, 20, 15, 30, tzinfo=UTC)
    clock, rng = FixedClock(now), random.Random(23)
    sparse = [
        start(uuid.uuid4(), now - timedelta(hours=h, seconds=rng.randrange(3600)), "NZ")
        for h in range(150)
        for _ in range(2)
    ]
    busy = [
        start(uuid.uuid4(), now - timedelta(hours=h, seconds=rng.randrange(3600)), "US")
        for h in (3, 40, 90)
        for _ in range(60)
    ]
    events = sparse + busy
    rng.shuffle(events)
    ingest_all(events, session_store, clock, counts_settings)
    expected = sorted(
        {(datetime.fromisoformat(e["ts"]), uuid.UUID(e["session_id"])) for e in sparse},
        key=lambda item: (-item[0].timestamp(), item[1]),
    )

    def list_all() -> list[tuple[datetime, uuid.UUID]]:
        listed, cursor = [], None
        while True:
            page = CountryStarts(starts_store, clock, counts_settings).page(
                "NZ", 168, limit=100, cursor=cursor
            )
            listed += [(row.ts, row.session_id) for row in page.starts]
            if (cursor := page.next_cursor) is None:
                return listed

    # When its pages of 100 are followed to the end: first from the tail, then from the rollups
    # Then every start of the country appears once, newest first, both times
    assert list_all() == expected
    clock.advance(seconds=5)
    fold(starts_store, clock, counts_settings)
    assert list_all() == expected


def test_a_page_reads_its_partial_hours_whole_with_the_others_and_lists_only_what_the_window_holds(
    counts_stores, counts_settings
):
    # Given a country with a few starts in each of the 27 hours around a day's window, one of them a
    # millisecond before the window opens and one as it opens, all folded
    session_store, starts_store = counts_stores
    now = datetime(2026, 6, 21, 15, 30, 0, 400_000, tzinfo=UTC)
    clock, rng = FixedClock(now - timedelta(seconds=5)), random.Random(31)
    # (the window opens at 15:30:00.400 a day before: within a second, counted from the start rows)
    opens = now - timedelta(hours=24)
    events = [
        start(uuid.uuid4(), now - timedelta(hours=h, seconds=rng.randrange(3600)), "NZ")
        for h in range(-1, 26)
        for _ in range(3)
    ]
    events = [e for e in events if datetime.fromisoformat(e["ts"]) <= clock.now()]
    events += [
        start(uuid.uuid4(), opens - timedelta(milliseconds=1), "NZ"),
        start(uuid.uuid4(), opens, "NZ"),
    ]
    ingest_all(events, session_store, clock, counts_settings)
    clock.advance(seconds=5)
    fold(starts_store, clock, counts_settings)
    # When the day's page of up to 1,000 is read, the window ending now
    assert clock.now() == now
    with metered() as reads:
        page = CountryStarts(starts_store, clock, counts_settings).page("NZ", 24, limit=1000)
    # Then it lists exactly the starts in the window, newest first, the one at its first millisecond included
    expected = sorted(
        (
            (ts, uuid.UUID(e["session_id"]))
            for e in events
            if opens <= (ts := datetime.fromisoformat(e["ts"])) <= now
        ),
        key=lambda item: (-item[0].timestamp(), item[1]),
    )
    assert [(row.ts, row.session_id) for row in page.starts] == expected
    assert page.next_cursor is None and len(expected) > 70
    # And its 25 hours, the two it holds in part too, were read whole, a few hours (every shard of each) to a
    # request of their start rows: besides them, the watermarks, the arrivals after them, and the hours'
    # rollups (the partial hours with the newest four whole hours, two ranges of one partition; then eight more
    # hours; then the last eleven)
    hours_a_request = PARTITIONS_PER_REQUEST // counts_settings.start_shards
    assert hours_a_request == 6
    assert reads.requests == 1 + 1 + (2 + 1 + 1) + math.ceil(25 / hours_a_request)


COUNT_ROWS_BOUND = 250
"""Rows one count may read once the builder is caught up, whatever the window holds: the watermark, and at most
91 buckets (a year's cover) of at most a base and COMPACT_AFTER_DELTAS - 1 deltas, only those with starts."""
PAGE_ROWS_BOUND = 400
"""Rows a page of 100 may read: the watermark, the rollups of the buckets near its end, and the newest
starts of each of four shards (a quarter of the page and 8 more each, fetched again only when one runs dry)."""


def reads_of_each_request(starts_store, clock, settings) -> dict[str, int]:
    rows = {}
    for hours in (1, 24, 168, 8760):
        with metered() as reads:
            CountryStarts(starts_store, clock, settings).counts(hours)
        rows[f"count {hours}h"] = reads.rows
    with metered() as reads:
        CountryStarts(starts_store, clock, settings).page("US", 24, limit=100)
    rows["US page of 100"] = reads.rows
    return rows


def live_starts(
    count: int, rng: random.Random, *, session_store, clock, settings, tracker, starts_store
) -> None:
    """``count`` starts stamped within the last ten minutes, ingested 500 at a time, each batch a second later,
    the builder folding as it would on its schedule."""
    for _ in range(0, count, 500):
        events = [
            start(
                uuid.UUID(int=rng.getrandbits(128)),
                clock.now() - timedelta(seconds=rng.uniform(0, 600)),
                rng.choices(COUNTRIES, weights=(50, 5, 10, 20, 15))[0],
            )
            for _ in range(500)
        ]
        ingest_batch(events, store=session_store, clock=clock, settings=settings)
        clock.advance(seconds=1)
        fold(starts_store, clock, settings, tracker)


@pytest.mark.timeout(900)  # 50,000 starts ingested and folded: minutes on a slow host
def test_reads_stay_within_a_fixed_bound_however_many_starts_the_open_hour_holds(
    counts_stores, counts_settings
):
    # Given the builder running on its schedule while 0, then 20,000, then 50,000 starts arrive, stamped within
    # the last minutes
    session_store, starts_store = counts_stores
    clock, rng, tracker = (
        FixedClock(datetime(2026, 7, 1, 18, 42, 7, 250_000, tzinfo=UTC)),
        random.Random(3),
        CompactionTracker(),
    )
    measured, loaded = {}, 0
    for total in (0, 20_000, 50_000):
        live_starts(
            total - loaded,
            rng,
            session_store=session_store,
            clock=clock,
            settings=counts_settings,
            tracker=tracker,
            starts_store=starts_store,
        )
        loaded = total
        clock.advance(seconds=3)
        fold(starts_store, clock, counts_settings, tracker)
        # When each question is asked once
        measured[total] = reads_of_each_request(starts_store, clock, counts_settings)
    # Then each reads no more than the fixed bound, with 50,000 starts in the last ten minutes as with none
    for total, rows in measured.items():
        for request, count in rows.items():
            if request.startswith("count"):
                assert count <= COUNT_ROWS_BOUND, (total, request, count)
            elif request.startswith("US page"):
                assert count <= PAGE_ROWS_BOUND, (total, request, count)
    assert CountryStarts(starts_store, clock, counts_settings).counts(1).total == 50_000


@pytest.mark.timeout(900)  # a day of starts, ten minutes at a time: minutes on a slow host
def test_the_first_request_after_a_day_no_reader_saw_meets_the_same_bound(counts_stores, counts_settings):
    # Given a day of live starts, 100 every ten minutes, with the builder on its schedule and no reader at all
    session_store, starts_store = counts_stores
    clock, rng, tracker = (
        FixedClock(datetime(2026, 8, 3, 0, 0, 30, tzinfo=UTC)),
        random.Random(5),
        CompactionTracker(),
    )
    builder_reads, everything = [], []
    for _ in range(144):
        events = [
            start(
                uuid.UUID(int=rng.getrandbits(128)),
                clock.now() - timedelta(seconds=rng.uniform(0, 300)),
                rng.choice(COUNTRIES),
            )
            for _ in range(100)
        ]
        everything += events
        ingest_batch(events, store=session_store, clock=clock, settings=counts_settings)
        clock.advance(minutes=10)
        # The builder's runs over those ten minutes (each at most 120 slots, as it runs every half second)
        while True:
            with metered() as reads:
                report = RollupBuilder(
                    starts_store, clock, counts_settings, tracker=tracker
                ).fold_every_part()
            builder_reads.append((reads.rows, reads.requests, report.starts_counted, report.slots_folded))
            if report.behind_seconds == 0:
                break
    # When the first requests of the day are made
    rows = reads_of_each_request(starts_store, clock, counts_settings)
    # Then they read no more than the bound
    assert all(
        count <= (PAGE_ROWS_BOUND if "page" in request else COUNT_ROWS_BOUND)
        for request, count in rows.items()
    ), rows
    # And each builder run (one per part) read what its slots held, not a day: the watermarks, a read per 25
    # slots, and for each start its arrival, mark and start row, and the buckets compacted
    parts = counts_settings.rollup_parts
    for rows, requests, counted, slots in builder_reads:
        assert slots <= 120 * parts and rows <= 4 * counted + 300, (rows, counted, slots)
        assert requests <= slots // 25 + 3 * parts + 4 * counted + 60, (requests, counted, slots)
    result = CountryStarts(starts_store, clock, counts_settings).counts(24)
    assert dict(result.counts) == dict(truth(everything, result.window.start, result.window.end))


def unfolded_seconds(
    seconds: int, session_store, settings, *, seed: int
) -> tuple[datetime, FixedClock, list]:
    """Two starts a second for ``seconds`` from ten minutes ago, stored and never folded; returns when they began,
    a clock ten seconds past the last, and the events."""
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    clock, rng = FixedClock(t0), random.Random(seed)
    sent = []
    for second in range(seconds):
        clock.moment = t0 + timedelta(seconds=second)
        batch = [
            start(uuid.UUID(int=rng.getrandbits(128)), clock.moment, rng.choice(COUNTRIES)) for _ in range(2)
        ]
        ingest_batch(batch, store=session_store, clock=clock, settings=settings)
        sent += batch
    clock.moment = t0 + timedelta(seconds=seconds + 10)
    return t0, clock, sent


def test_a_tail_longer_than_a_request_may_read_is_cut_and_the_answer_says_from_when(
    counts_stores, counts_settings
):
    # Given 150 seconds of arrivals, two starts a second, that no builder has folded, and readers allowed to
    # read at most 100 unfolded arrivals
    session_store, starts_store = counts_stores
    settings = counts_settings.model_copy(update={"tail_arrivals_read_at_most": 100})
    t0, clock, sent = unfolded_seconds(150, session_store, settings, seed=11)

    # When the counts and one country's page are asked
    with metered() as reads:
        counts = CountryStarts(starts_store, clock, settings).counts(1)
    country = Counter(e["country"] for e in sent).most_common(1)[0][0]
    page = CountryStarts(starts_store, clock, settings).page(country, 1, limit=1000)

    # Then the tail's oldest 50 seconds (100 arrivals, the cap) were kept and no more: the counts are exactly
    # the starts that arrived before t0 + 50 s, and the answer says so. The arrivals read, kept or not: the two
    # requests of 25 seconds that fit, then one row of the next 25 seconds and one of its first second
    cut = t0 + timedelta(seconds=50)
    assert counts.unread_from == cut
    assert dict(counts.counts) == dict(truth(sent[:100], t0 - timedelta(hours=1), clock.moment))
    assert 100 + 2 <= reads.rows <= 100 + 2 + 10
    # and the page, partial too, still lists every start stamped after the rollups' cutoff (all of them here)
    assert page.unread_from == cut
    assert {str(r.session_id) for r in page.starts} == {
        e["session_id"] for e in sent if e["country"] == country
    }

    # When the builder has folded them all, the same questions are exact again
    fold(starts_store, clock, settings)
    counts = CountryStarts(starts_store, clock, settings).counts(1)
    assert counts.unread_from is None
    assert dict(counts.counts) == dict(truth(sent, t0 - timedelta(hours=1), clock.moment))


def test_an_environment_reads_a_settled_slot_of_the_tail_once(counts_stores, counts_settings):
    # Given 150 seconds of arrivals, two starts a second, that no builder has folded, and a reader's
    # environment that keeps the arrivals of settled slots
    session_store, starts_store = counts_stores
    t0, clock, sent = unfolded_seconds(150, session_store, counts_settings, seed=12)
    reader = CountryStarts(starts_store, clock, counts_settings, settled_arrivals=SettledArrivals())
    country = Counter(e["country"] for e in sent).most_common(1)[0][0]

    # When the counts and a country's page are asked twice
    with metered() as first:
        counts_first = reader.counts(1)
        page_first = reader.page(country, 1, limit=1000)
    with metered() as second:
        counts_second = reader.counts(1)
        page_second = reader.page(country, 1, limit=1000)

    # Then both times exactly, every start once
    expected = dict(truth(sent, t0 - timedelta(hours=1), clock.moment))
    listed = {e["session_id"] for e in sent if e["country"] == country}
    for counts, page in ((counts_first, page_first), (counts_second, page_second)):
        assert counts.unread_from is None
        assert dict(counts.counts) == expected
        assert {str(r.session_id) for r in page.starts} == listed
    # and the second time without reading the 300 arrivals again: the first count read them (the page took
    # them from the environment), the second count and page only the newest slots, which hold none
    assert first.rows - second.rows == 300
    assert second.requests < first.requests


def two_slots_of_starts(count: int, counts_stores, settings, *, seed: int) -> tuple[list[int], list[int]]:
    """``count`` random starts, the first half arriving in one slot and folded, the second half in a slot five
    seconds later and not; returns the slots from the first to the second, and every shard."""
    session_store, starts_store = counts_stores
    clock = FixedClock(datetime(2026, 4, 2, 12, 0, 1, tzinfo=UTC) + timedelta(days=seed))
    events = random_starts(count, clock.now(), random.Random(seed), span_seconds=600)
    first_slot = slot_of(clock.now())
    ingest_all(events[: count // 2], session_store, clock, settings)
    clock.advance(seconds=5)
    fold(starts_store, clock, settings)
    ingest_all(events[count // 2 :], session_store, clock, settings)
    return list(range(first_slot, slot_of(clock.now()) + 1)), list(range(settings.start_shards))


def folds_of(slots: list[int], settings) -> list[int]:
    """Every part's fold of each slot (those of the folded slot have a record, the others none)."""
    return [fold_id(slot, part) for slot in slots for part in range(settings.rollup_parts)]


def test_a_reader_reads_the_tail_one_partition_a_request_and_gets_what_an_in_gets(
    counts_stores, counts_settings, counts_connection
):
    # Given starts arriving in two slots, the first slot's folded (so those have marks and fold records)
    slots, shards = two_slots_of_starts(60, counts_stores, counts_settings, seed=7)
    folds = folds_of(slots, counts_settings)
    # When the tail, its marks and the folds' records are read both ways (each by a store that kept no record)
    with metered() as in_reads:
        store = CassandraRollupStore(counts_connection, counts_settings.start_shards)
        arrivals_in = store.read_arrivals(slots, shards)
        marks_in = store.read_marks([a.key for a in arrivals_in])
        records_in = store.read_fold_records(folds)
    with metered() as partition_reads:
        store = CassandraRollupStore(counts_connection, counts_settings.start_shards)
        arrivals = store.read_arrivals(slots, shards, per_partition=True)
        marks = store.read_marks([a.key for a in arrivals], per_partition=True)
        records = store.read_fold_records(folds, per_partition=True)
    # Then the same arrivals, marks and records come back, one request per slot and shard, per session and per
    # fold
    assert len(arrivals_in) == 60 and 0 < len(marks_in) < 60
    assert sorted(arrivals, key=repr) == sorted(arrivals_in, key=repr)
    assert marks == marks_in
    assert records == records_in and set(records) < set(folds)
    assert set().union(*records.values()) == set(marks), "the folded slot's records name the marked starts"
    sessions = len({a.key.session_id for a in arrivals})
    assert in_reads.requests == 1 + 1 + 1
    assert partition_reads.requests == len(slots) * len(shards) + sessions + len(folds)
    assert partition_reads.rows == in_reads.rows


def test_an_in_read_that_fails_is_read_again_one_partition_a_request(
    counts_stores, counts_settings, counts_connection, monkeypatch
):
    # Given starts arriving in two slots, the first slot's folded (so those have marks and fold records)
    slots, shards = two_slots_of_starts(40, counts_stores, counts_settings, seed=8)
    folds = folds_of(slots, counts_settings)
    store = CassandraRollupStore(counts_connection, counts_settings.start_shards)
    arrivals_in = store.read_arrivals(slots, shards)
    marks_in = store.read_marks([a.key for a in arrivals_in])
    records_in = store.read_fold_records(folds)
    # And a cluster whose coordinators time out every IN (as with a replica just lost), single reads served
    starts_store = CassandraRollupStore(counts_connection, counts_settings.start_shards)
    concurrently, failed = starts_store._concurrently, []

    def in_reads_time_out(cql, parameters, bulk=False):
        if cql in (READ_ARRIVALS, READ_MARKS, READ_FOLD_RECORDS):
            failed.append(cql)
            raise ReadTimeout("received only 0 responses", received_responses=0, required_responses=1)
        return concurrently(cql, parameters, bulk)

    monkeypatch.setattr(starts_store, "_concurrently", in_reads_time_out)
    # When the tail, its marks and the folds' records are read
    with metered() as reads:
        arrivals = starts_store.read_arrivals(slots, shards)
        marks = starts_store.read_marks([a.key for a in arrivals])
        records = starts_store.read_fold_records(folds)
    # Then each IN was tried once, then its partitions read one per request, and nothing differs
    assert failed == [READ_ARRIVALS, READ_MARKS, READ_FOLD_RECORDS]
    assert sorted(arrivals, key=repr) == sorted(arrivals_in, key=repr) and len(arrivals) == 40
    assert marks == marks_in and 0 < len(marks) < 40
    assert records == records_in and records
    sessions = len({a.key.session_id for a in arrivals})
    assert reads.requests == (1 + len(slots) * len(shards)) + (1 + sessions) + (1 + len(folds))


def test_a_fold_record_is_kept_no_longer_than_the_newest_start_it_names(
    counts_stores, counts_settings, counts_connection
):
    # Given a start an hour from leaving the retention, folded; then a live start, folded in a later slot
    session_store, starts_store = counts_stores
    clock = FixedClock(datetime(2026, 4, 2, 10, 0, 1, tzinfo=UTC))
    slots = []
    for ts in (clock.now() - counts_settings.retention + timedelta(hours=1), clock.now()):
        slots.append(slot_of(clock.now()))
        ingest_all([start(uuid.uuid4(), ts, "PK")], session_store, clock, counts_settings)
        clock.advance(seconds=5)
        fold(starts_store, clock, counts_settings)
    # When the fold records' TTLs are read from Cassandra
    session = counts_connection.session()
    records = {
        row.slot // FOLD_SPACE: row.ttl
        for row in session.execute(
            session.prepare("SELECT slot, TTL(starts) AS ttl FROM rollup_folds WHERE slot IN ?"),
            (folds_of(slots, counts_settings),),
        )
    }
    # Then the old start's record expires with it (a second after: folded 5 s after it arrived, 3,595 s from its
    # retention's end), the live one's a day after the arrivals' week
    assert set(records) == set(slots)
    assert 3596 - 60 <= records[slots[0]] <= 3596
    assert FOLD_RECORD_TTL_SECONDS - 60 <= records[slots[1]] <= FOLD_RECORD_TTL_SECONDS


@pytest.mark.parametrize("folded", [False, True])
def test_the_window_starts_exactly_x_hours_before_now_to_the_millisecond(
    counts_stores, counts_settings, folded
):
    # Given a count at a moment half a second into its second, and three starts an hour before it: one on the
    # window's first instant, one a millisecond before it, one a millisecond after
    session_store, starts_store = counts_stores
    now = datetime(2026, 6, 20, 10, 0, 0, 500_000, tzinfo=UTC)
    edge = now - timedelta(hours=1)
    stamps = {"AQ": edge, "BV": edge - timedelta(milliseconds=1), "CX": edge + timedelta(milliseconds=1)}
    clock = FixedClock(now - timedelta(seconds=10))
    events = [start(uuid.uuid4(), ts, country) for country, ts in stamps.items()]
    ingest_all(events, session_store, clock, counts_settings)
    if folded:
        clock.moment = now - timedelta(seconds=5)
        fold(starts_store, clock, counts_settings)
    # When the last hour is counted and listed at that moment (from the rollups and the first second's start
    # rows once folded, from the arrivals before)
    clock.moment = now
    starts = CountryStarts(starts_store, clock, counts_settings)
    counted = dict(starts.counts(1).counts)
    listed = {country: [s.ts for s in starts.page(country, 1, limit=10).starts] for country in stamps}
    # Then the start on the window's first instant and the one after it are counted and listed, the one
    # before is not
    assert counted == {"AQ": 1, "CX": 1} == dict(truth(events, edge, now))
    assert listed == {"AQ": [stamps["AQ"]], "BV": [], "CX": [stamps["CX"]]}
