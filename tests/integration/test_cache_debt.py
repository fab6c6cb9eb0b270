"""A cache invalidation lost by one environment (its Redis unreachable while the others' is not) is recorded in
Cassandra, and the rollup builder of part 0 pays it for every environment: on the real Cassandra and Redis."""

from __future__ import annotations

import uuid

import pytest

from player_sessions.domain.cache_debt import DEBT_CHECK_SECONDS, CacheDebtCollector
from player_sessions.redis_connection import RedisConnection
from player_sessions.repositories.cache_debt import CassandraCacheDebt
from player_sessions.repositories.redis_cache import RedisReadCache

pytestmark = pytest.mark.integration


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_invalidation_lost_in_one_environment_is_paid_by_the_builder_for_all(
    counts_stores, counts_connection, counts_settings, redis_connection
):
    namespace = f"debt-test:{uuid.uuid4().hex}"
    debts = CassandraCacheDebt(counts_connection)
    assert debts.unpaid() is None  # (emptied tables: nothing owed)
    # Given an environment that cached a country's page while Redis answered it
    other = RedisReadCache(redis_connection, namespace=namespace)
    token, _ = other.lookup(["starts:FI"], "page")
    other.store(token, "page", b"before the batch", 60)
    # When a batch is stored in an environment whose Redis is unreachable: its invalidation is lost
    unreachable = RedisConnection(counts_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    lost = RedisReadCache(unreachable, namespace=namespace, on_lost_invalidation=debts.owe)
    lost.invalidate(["starts:FI"])
    # Then the other environment would still serve its page, and the loss is recorded in Cassandra
    assert other.lookup(["starts:FI"], "page")[1] == b"before the batch"
    owed = debts.unpaid()
    assert owed is not None
    # And when the builder of part 0 next looks, it bumps the epoch: no environment finds the page any more
    ticks = Ticks()
    collector = CacheDebtCollector(debts, RedisReadCache(redis_connection, namespace=namespace), clock=ticks)
    assert collector.collect() is True
    assert other.lookup(["starts:FI"], "page")[1] is None
    assert debts.unpaid() is None
    # And a debt is paid once: the next look, a period later, finds nothing owed
    ticks.now += DEBT_CHECK_SECONDS
    assert collector.collect() is False
    # And a new loss is a new debt, whatever the clocks of the environments
    lost.invalidate(["starts:FI"])
    assert debts.unpaid() not in (None, owed)
    unreachable.close()


def test_the_debt_waits_while_the_builder_cannot_reach_redis_either(
    counts_stores, counts_connection, counts_settings
):
    debts = CassandraCacheDebt(counts_connection)
    debts.owe()
    owed = debts.unpaid()
    # Given a builder whose Redis is unreachable too
    unreachable = RedisConnection(counts_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    collector = CacheDebtCollector(debts, RedisReadCache(unreachable, namespace="debt-test"))
    # When it looks / Then it pays nothing, and the debt stays for its next look
    assert collector.collect() is False
    assert debts.unpaid() == owed
    unreachable.close()


class Unplugged:
    """A process's Redis connection that can be cut (its calls then fail as an unreachable Redis's do)."""

    def __init__(self, plugged: RedisConnection, unreachable: RedisConnection) -> None:
        self._plugged, self._unreachable = plugged, unreachable
        self.cut = False

    def client(self):
        return (self._unreachable if self.cut else self._plugged).client()


def test_a_reader_that_saw_redis_fail_pays_a_debt_recorded_meanwhile_before_its_next_lookup(
    counts_stores, counts_connection, counts_settings, redis_connection
):
    namespace = f"debt-test:{uuid.uuid4().hex}"
    debts = CassandraCacheDebt(counts_connection)
    unreachable = RedisConnection(counts_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    # Given a reader that cached a country's page, as the composition root builds it
    connection, ticks = Unplugged(redis_connection, unreachable), Ticks()
    reader = RedisReadCache(connection, namespace=namespace, clock=ticks, unpaid_debt=debts.unpaid)
    token, _ = reader.lookup(["starts:FI"], "page")
    reader.store(token, "page", b"before the batch", 60)
    # When its Redis fails it, and meanwhile another environment loses the page's invalidation
    connection.cut = True
    assert reader.lookup(["starts:FI"], "page") == (None, None)
    RedisReadCache(unreachable, namespace=namespace, on_lost_invalidation=debts.owe).invalidate(["starts:FI"])
    assert debts.unpaid() is not None
    # And its Redis answers again, before the builder has paid the debt
    connection.cut = False
    ticks.now += 2.0
    # Then its next lookup does not serve the page cached before the loss: it bumped the epoch first
    assert reader.lookup(["starts:FI"], "page")[1] is None
    assert int(redis_connection.client().get(f"{namespace}:epoch")) == 1
    # And an environment that never saw Redis fail finds nothing from before the bump either
    assert RedisReadCache(redis_connection, namespace=namespace).lookup(["starts:FI"], "page")[1] is None
    unreachable.close()


class Blips(Unplugged):
    """A connection whose next ``blips`` calls fail (a timeout on a loaded host), then all answer."""

    def __init__(self, plugged: RedisConnection, unreachable: RedisConnection) -> None:
        super().__init__(plugged, unreachable)
        self.blips = 0

    def client(self):
        if self.blips:
            self.blips -= 1
            return self._unreachable.client()
        return super().client()


def test_an_invalidation_whose_redis_fails_for_a_moment_reaches_it_before_the_write_is_acknowledged(
    counts_stores, counts_connection, counts_settings, redis_connection
):
    namespace = f"debt-test:{uuid.uuid4().hex}"
    debts = CassandraCacheDebt(counts_connection)
    unreachable = RedisConnection(counts_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    # Given an environment that never saw Redis fail, with a country's page cached
    reader = RedisReadCache(redis_connection, namespace=namespace, unpaid_debt=debts.unpaid)
    token, _ = reader.lookup(["starts:FI"], "page")
    reader.store(token, "page", b"before the batch", 60)
    # When a writer's Redis fails the first try of its invalidation, and answers the next
    connection, ticks = Blips(redis_connection, unreachable), Ticks()
    writer = RedisReadCache(connection, namespace=namespace, clock=ticks, on_lost_invalidation=debts.owe)
    connection.blips = 1
    writer.invalidate(["starts:FI"])
    # Then the invalidation was retried at once and reached Redis: the page is not served, and nothing is owed
    assert reader.lookup(["starts:FI"], "page")[1] is None
    assert debts.unpaid() is None
    # When the writer's Redis then fails for longer: both tries fail, the breaker opens, a debt is recorded
    reader.store(reader.lookup(["starts:FI"], "page")[0], "page", b"before the second batch", 60)
    connection.cut = True
    writer.invalidate(["starts:FI"])
    assert debts.unpaid() is not None
    # And Redis answers the writer again within its breaker period, as the next batch is acknowledged
    connection.cut = False
    ticks.now += 0.5
    writer.invalidate(["starts:FI"])
    # Then that invalidation was not skipped: it bumped the epoch owed and its scope, so the reader, which never
    # saw Redis fail and reads no debt, finds nothing cached before either batch
    assert int(redis_connection.client().get(f"{namespace}:epoch")) == 1
    assert reader.lookup(["starts:FI"], "page")[1] is None
    unreachable.close()
