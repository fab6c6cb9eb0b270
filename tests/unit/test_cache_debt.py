"""The builder of part 0, and no other, pays a lost cache invalidation recorded by any environment; it looks at
most once a period, and a debt it cannot pay yet waits (domain.cache_debt)."""

from __future__ import annotations

from datetime import UTC, datetime

from player_sessions.bootstrap import Services
from player_sessions.clock import FixedClock
from player_sessions.domain.cache_debt import DEBT_CHECK_SECONDS, CacheDebtCollector
from player_sessions.settings import Settings
from tests.fakes import InMemoryCacheDebt, InMemoryReadCache, InMemorySessionStore, InMemoryStartsStore

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def services_with(cache: InMemoryReadCache, debt: InMemoryCacheDebt) -> Services:
    sessions = InMemorySessionStore()
    return Services(
        Settings(), FixedClock(NOW), sessions, InMemoryStartsStore(sessions), cache, None, cache_debt=debt
    )


def cached_page(cache: InMemoryReadCache) -> bytes | None:
    return cache.lookup(["starts:FI"], "page")[1]


def test_only_the_builder_of_part_0_pays_the_debt():
    # Given a page cached, and an invalidation lost elsewhere
    cache, debt = InMemoryReadCache(), InMemoryCacheDebt()
    cache.store(cache.lookup(["starts:FI"], "page")[0], "page", b"old", 60)
    debt.owe()
    builders = services_with(cache, debt).rollup_builder()
    # When the builder of part 1 runs / Then the debt stays and the page is still found
    builders.fold(part=1)
    assert (debt.unpaid(), cached_page(cache)) == (1, b"old")
    # When the builder of part 0 runs / Then the epoch is bumped (the page is gone) and the debt paid
    builders.fold(part=0)
    assert (debt.unpaid(), cached_page(cache)) == (None, None)


class Unreachable(InMemoryReadCache):
    def bump_epoch(self) -> bool:
        return False


def test_a_debt_is_read_once_a_period_and_waits_while_the_cache_is_unreachable():
    debt, ticks = InMemoryCacheDebt(), [0.0]
    debt.owe()
    collector = CacheDebtCollector(debt, Unreachable(), clock=lambda: ticks[0])
    # When the cache cannot be reached / Then nothing is paid
    assert collector.collect() is False
    assert debt.unpaid() == 1
    # When the cache answers again within the period / Then the debt waits for the next look
    collector.cache = InMemoryReadCache()
    ticks[0] += DEBT_CHECK_SECONDS / 2
    assert collector.collect() is False
    ticks[0] += DEBT_CHECK_SECONDS / 2
    assert collector.collect() is True
    assert debt.unpaid() is None
