"""The read cache on the real Redis and Cassandra while a live game writes: a start in the recent tail keeps the
cached sums of older hours and other countries' pages; an acknowledged start is never hidden; a late start
folded into an old hour is seen at once."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import CompactionTracker, RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.redis_connection import RedisConnection
from player_sessions.repositories.cache_protocol import CacheToken
from player_sessions.repositories.redis_cache import RedisReadCache

pytestmark = pytest.mark.integration


class CountingCache:
    """The real cache, with each lookup's hit or miss counted by the kind of key."""

    def __init__(self, inner: RedisReadCache) -> None:
        self.inner = inner
        self.lookups: Counter[tuple[str, bool]] = Counter()

    def lookup(self, scopes: Sequence[str], key: str) -> tuple[CacheToken | None, bytes | None]:
        token, value = self.inner.lookup(scopes, key)
        self.lookups[(key.split(":", maxsplit=1)[0], value is not None)] += 1
        return token, value

    def store(self, token: CacheToken | None, key: str, value: bytes, ttl_seconds: int) -> None:
        self.inner.store(token, key, value, ttl_seconds)

    def invalidate(self, scopes: Sequence[str]) -> None:
        self.inner.invalidate(scopes)

    def bump_epoch(self) -> bool:
        return self.inner.bump_epoch()

    def hits(self, kind: str) -> int:
        return self.lookups[(kind, True)]

    def misses(self, kind: str) -> int:
        return self.lookups[(kind, False)]


@pytest.fixture
def cache(test_settings) -> CountingCache:
    connection = RedisConnection(test_settings)
    yield CountingCache(RedisReadCache(connection, namespace=f"live{uuid.uuid4().hex[:8]}"))
    connection.close()


def start(ts: datetime, country: str) -> dict:
    return {
        "event": "start",
        "player_id": "p",
        "session_id": str(uuid.uuid4()),
        "ts": ts.isoformat(),
        "country": country,
    }


@pytest.fixture
def week(counts_stores, counts_settings, cache):
    """A week of starts, folded, at the middle of an hour (no hour ends while the test runs)."""
    session_store, starts_store = counts_stores
    clock, rng = FixedClock(datetime(2026, 9, 9, 14, 25, 3, tzinfo=UTC)), random.Random(4)
    events = [
        start(clock.now() - timedelta(seconds=rng.randrange(7 * 86400)), rng.choice(["US", "FI", "BR"]))
        for _ in range(300)
    ]
    ingest_batch(events, store=session_store, clock=clock, settings=counts_settings, cache=cache)
    tracker = CompactionTracker()

    def fold() -> None:
        RollupBuilder(starts_store, clock, counts_settings, cache=cache, tracker=tracker).fold_every_part(
            max_slots=10_000
        )

    clock.advance(seconds=5)
    fold()
    return session_store, starts_store, clock, fold, events


def count(hours, starts_store, clock, settings, cache) -> dict[str, int]:
    return dict(CountryStarts(starts_store, clock, settings, cache).counts(hours).counts)


def expected(events: list[dict], hours: int, now: datetime) -> dict[str, int]:
    since = now - timedelta(hours=hours)
    return dict(Counter(e["country"] for e in events if since <= datetime.fromisoformat(e["ts"]) <= now))


def test_live_starts_keep_the_cached_sum_of_older_hours_and_are_counted_at_once(week, counts_settings, cache):
    # Given a count over a week, its whole hours and days cached
    session_store, starts_store, clock, fold, events = week
    assert count(168, starts_store, clock, counts_settings, cache) == expected(events, 168, clock.now())
    assert cache.misses("coarse") == 1
    # When live starts arrive, a second apart, the builder folding them, and the count is asked after each
    for _ in range(30):
        live = [start(clock.now() - timedelta(seconds=2), "FI"), start(clock.now(), "JP")]
        ingest_batch(live, store=session_store, clock=clock, settings=counts_settings, cache=cache)
        events += live
        # Then each answer holds every acknowledged start, the newest from the tail
        assert count(168, starts_store, clock, counts_settings, cache) == expected(events, 168, clock.now())
        clock.advance(seconds=1)
        fold()
    # And the cached sum of the older hours answered every time but the first (the window slid within its hour)
    assert (cache.hits("coarse"), cache.misses("coarse")) == (30, 1)


def test_a_late_start_folded_into_an_old_hour_is_counted_at_once(week, counts_settings, cache):
    # Given a cached count over a week
    session_store, starts_store, clock, fold, events = week
    count(168, starts_store, clock, counts_settings, cache)
    # When a start of three days ago arrives: counted from the tail, then folded into its (cached) hour
    late = [start(clock.now() - timedelta(days=3), "PK")]
    ingest_batch(late, store=session_store, clock=clock, settings=counts_settings, cache=cache)
    events += late
    assert count(168, starts_store, clock, counts_settings, cache) == expected(events, 168, clock.now())
    clock.advance(seconds=4)
    fold()
    # Then the count holds it once, the cached sum being recomputed
    assert count(168, starts_store, clock, counts_settings, cache) == expected(events, 168, clock.now())
    assert cache.misses("coarse") == 2


def first_page_ids(country, store, clock, settings, cache) -> list[str]:
    """The session ids of the country's first page of five over the last 24 hours."""
    page = CountryStarts(store, clock, settings, cache).page(country, 24, limit=5)
    return [str(row.session_id) for row in page.starts]


def test_a_countrys_cached_page_survives_other_countries_starts_and_not_its_own(week, counts_settings, cache):
    # Given BR's first page, cached
    session_store, starts_store, clock, _fold, _events = week

    def page(country: str) -> list[str]:
        return first_page_ids(country, starts_store, clock, counts_settings, cache)

    first = page("BR")
    # When a US start arrives, a moment later
    clock.advance(seconds=1)
    ingest_batch(
        [start(clock.now(), "US")], store=session_store, clock=clock, settings=counts_settings, cache=cache
    )
    # Then BR's page is answered from the cache, unchanged, for its later window
    assert page("BR") == first
    assert cache.hits("first") == 1
    # And a BR start makes the next BR page miss, with the start on top
    newest = start(clock.now(), "BR")
    ingest_batch([newest], store=session_store, clock=clock, settings=counts_settings, cache=cache)
    assert page("BR")[0] == newest["session_id"]
    assert cache.hits("first") == 1


def test_a_cached_page_does_not_hide_a_start_stamped_ahead_of_the_clock(week, counts_settings, cache):
    # Given a start stamped two seconds ahead of the server (a client clock running fast), then FI's page cached
    session_store, starts_store, clock, _fold, _events = week
    ahead = start(clock.now() + timedelta(seconds=2), "FI")
    ingest_batch([ahead], store=session_store, clock=clock, settings=counts_settings, cache=cache)

    def first_id() -> str:
        return first_page_ids("FI", starts_store, clock, counts_settings, cache)[0]

    assert first_id() != ahead["session_id"]
    # When the clock reaches its stamp
    clock.advance(seconds=3)
    # Then the next page shows it, though no start was stored in between
    assert first_id() == ahead["session_id"]
