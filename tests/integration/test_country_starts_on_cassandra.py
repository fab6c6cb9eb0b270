"""Country counts and listings on the real Cassandra: exact under re-sent batches, late events, and readers
building rollups while writers add late starts."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import starts_by_country, starts_of_country
from player_sessions.domain.ingest import ingest_batch
from player_sessions.repositories.cassandra_starts import CassandraStartsStore
from player_sessions.repositories.cassandra_store import CassandraSessionStore

pytestmark = pytest.mark.integration

COUNTRIES = ["US", "FI", "PK", "BR", "JP"]


@pytest.fixture
def stores(cassandra_connection, test_settings):
    return (CassandraSessionStore(cassandra_connection),
            CassandraStartsStore(cassandra_connection, test_settings.start_shards))


def start(session_id: uuid.UUID, ts: datetime, country: str) -> dict:
    return {"event": "start", "player_id": uuid.uuid4().hex, "session_id": str(session_id),
            "ts": ts.isoformat(), "country": country}


def random_starts(count: int, now: datetime, rng: random.Random, span_hours: int) -> list[dict]:
    return [start(uuid.UUID(int=rng.getrandbits(128)), now - timedelta(seconds=rng.randrange(span_hours * 3600)),
                  rng.choice(COUNTRIES)) for _ in range(count)]


def truth(events: list[dict], since: datetime, until: datetime) -> Counter:
    unique = {(e["session_id"], e["ts"], e["country"]) for e in events}
    return Counter(country for _, ts, country in unique if since <= datetime.fromisoformat(ts) <= until)


def test_readers_building_rollups_race_writers_adding_late_starts_and_counts_stay_exact(stores, test_settings):
    # Given a week of starts, in a stretch of time no other test writes to
    session_store, starts_store = stores
    now = datetime(2026, 6, 15, 12, 30, 15, tzinfo=UTC)
    clock, rng = FixedClock(now), random.Random(7)
    written = random_starts(200, now, rng, span_hours=7 * 24)
    for i in range(0, len(written), 10):
        ingest_batch(written[i:i + 10], session_store, clock, test_settings)
    late = random_starts(200, now, rng, span_hours=7 * 24)
    resent = rng.sample(written, 40)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.wait(0.02):  # a breath between reads, so the writers' threads get the GIL too
                starts_by_country(rng.choice([24, 72, 168, 8760]), starts_store, clock, test_settings)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    def writer(events: list[dict]) -> None:
        try:
            for i in range(0, len(events), 10):
                ingest_batch(events[i:i + 10], session_store, clock, test_settings)
        except BaseException as error:
            errors.append(error)

    # When readers build rollups while writers add late starts and re-send old ones
    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(chunk,)) for chunk in (late[:100], late[100:], resent)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    # Then every window counts exactly the distinct starts in it
    everything = written + late + resent
    for hours in (1, 24, 72, 168, 8760):
        result = starts_by_country(hours, starts_store, clock, test_settings)
        expected = truth(everything, result.window.start, result.window.end)
        assert dict(result.counts) == dict(expected), hours
    # And rollups were really built and used (not everything counted from rows)
    rollup_rows = cassandra_rows(starts_store, "SELECT level, period FROM start_rollups WHERE level = ? AND period = ?",
                                 ("day", datetime(2026, 6, 1, tzinfo=UTC)))
    assert rollup_rows > 0


def cassandra_rows(store: CassandraStartsStore, cql: str, parameters: tuple) -> int:
    session = store._connection.session()
    return len(list(session.execute(session.prepare(cql), parameters)))


def test_listing_follows_cursors_through_every_start_of_the_window_exactly_once(stores, test_settings):
    # Given 130 starts of FI over three days, some re-sent, and starts of other countries
    session_store, starts_store = stores
    now = datetime(2026, 5, 10, 8, 45, tzinfo=UTC)
    clock, rng = FixedClock(now), random.Random(11)
    fi = [start(uuid.uuid4(), now - timedelta(seconds=rng.randrange(3 * 86400)), "FI") for _ in range(130)]
    # Two starts at the very same millisecond, to cross a page boundary on a tie
    same_instant = now - timedelta(hours=30)
    fi += [start(uuid.uuid4(), same_instant, "FI") for _ in range(3)]
    others = [event for event in random_starts(120, now, rng, span_hours=72) if event["country"] != "FI"]
    batch = fi + others + fi[:20]
    for i in range(0, len(batch), 10):
        ingest_batch(batch[i:i + 10], session_store, clock, test_settings)
    # When the pages are followed to the end, 9 at a time
    listed, cursor, pages = [], None, 0
    while True:
        page = starts_of_country("fi", 72, 9, cursor, starts_store, clock, test_settings)
        listed += [(row.ts, row.session_id) for row in page.starts]
        cursor, pages = page.next_cursor, pages + 1
        if cursor is None:
            break
    # Then every FI start appears once, newest first, ties ordered by session id
    expected = sorted({(datetime.fromisoformat(e["ts"]), uuid.UUID(e["session_id"])) for e in fi},
                      key=lambda item: (-item[0].timestamp(), item[1]))
    assert listed == expected
    assert pages == -(-len(expected) // 9)


def test_a_start_is_counted_once_however_often_its_batch_is_resent(stores, test_settings):
    session_store, starts_store = stores
    now = datetime(2026, 4, 2, 10, 0, 1, tzinfo=UTC)
    clock = FixedClock(now)
    batch = [start(uuid.uuid4(), now - timedelta(minutes=m), "PK") for m in (1, 61, 125)]
    for _ in range(3):
        ingest_batch(batch, session_store, clock, test_settings)
        result = starts_by_country(3, starts_store, clock, test_settings)
        assert dict(result.counts) == {"PK": 3}


def test_a_sparse_country_is_listed_exactly_once_across_many_hours_read_together(stores, test_settings):
    # Given a country with two starts an hour over 150 hours (hours read 25 at a time, all shards in one request,
    # once rollups count them), next to a busy country with 60 starts in some of those hours (read per shard)
    session_store, starts_store = stores
    now = datetime(2026, 6, 20, 15, 30, tzinfo=UTC)
    clock, rng = FixedClock(now), random.Random(23)
    sparse = [start(uuid.uuid4(), now - timedelta(hours=h, seconds=rng.randrange(3600)), "NZ")
              for h in range(150) for _ in range(2)]
    busy = [start(uuid.uuid4(), now - timedelta(hours=h, seconds=rng.randrange(3600)), "US")
            for h in (3, 40, 90) for _ in range(60)]
    events = sparse + busy
    rng.shuffle(events)
    for i in range(0, len(events), 10):
        ingest_batch(events[i:i + 10], session_store, clock, test_settings)
    expected = sorted({(datetime.fromisoformat(e["ts"]), uuid.UUID(e["session_id"])) for e in sparse},
                      key=lambda item: (-item[0].timestamp(), item[1]))

    def list_all() -> list[tuple[datetime, uuid.UUID]]:
        listed, cursor = [], None
        while True:
            page = starts_of_country("NZ", 168, 100, cursor, starts_store, clock, test_settings)
            listed += [(row.ts, row.session_id) for row in page.starts]
            if (cursor := page.next_cursor) is None:
                return listed

    # When its pages of 100 are followed to the end: first while the rollups are built, then from them
    # Then every start of the country appears once, newest first, both times
    assert list_all() == expected
    assert list_all() == expected
