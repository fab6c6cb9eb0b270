"""The Redis read cache's breaker and lost-invalidation logic, against an in-memory stand-in for redis-py.

The key schema, TTLs and real failures (timeouts, a frozen or killed Redis) are proven against the real Redis
in tests/integration/test_redis_cache.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from player_sessions.errors import DatabaseUnavailableError
from player_sessions.observability import metrics
from player_sessions.repositories.cache_protocol import CacheToken, NoCache
from player_sessions.repositories.redis_cache import RedisReadCache

BREAKER_SECONDS = 2.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRedis:
    """The few redis-py calls the cache makes, on a dict; ``down`` makes every round trip fail, and
    ``failing_round_trips`` the next so many time out."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.expiries: dict[str, int] = {}
        self.round_trips: list[list[tuple[str, str]]] = []
        self.down = False
        self.failing_round_trips = 0

    def _round_trip(self, commands: list[tuple[str, str]]) -> None:
        self.round_trips.append(commands)
        if self.failing_round_trips:
            self.failing_round_trips -= 1
            raise redis.TimeoutError("Timeout reading from 127.0.0.1:6379")
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def _apply(self, command: str, key: str, *args):
        if command == "get":
            return self.data.get(key)
        if command == "incr":
            self.data[key] = str(int(self.data.get(key, b"0")) + 1).encode()
            return int(self.data[key])
        if command == "expire":
            self.expiries[key] = args[0]
            return True
        raise AssertionError(command)

    def get(self, key: str) -> bytes | None:
        self._round_trip([("get", key)])
        return self._apply("get", key)

    def incr(self, key: str) -> int:
        self._round_trip([("incr", key)])
        return self._apply("incr", key)

    def ping(self) -> bool:
        self._round_trip([("ping", "")])
        return True

    def set(self, key: str, value: bytes, ex: int) -> bool:
        self._round_trip([("set", key)])
        self.data[key] = value
        self.expiries[key] = ex
        return True

    def pipeline(self, transaction: bool) -> FakePipeline:
        assert transaction is False
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, fake: FakeRedis) -> None:
        self._fake = fake
        self._queued: list[tuple] = []

    def get(self, key: str) -> None:
        self._queued.append(("get", key))

    def incr(self, key: str) -> None:
        self._queued.append(("incr", key))

    def expire(self, key: str, seconds: int) -> None:
        self._queued.append(("expire", key, seconds))

    def execute(self) -> list:
        self._fake._round_trip([(command[0], command[1]) for command in self._queued])
        return [self._fake._apply(*command) for command in self._queued]


class FakeConnection:
    def __init__(self, client: FakeRedis) -> None:
        self._client = client

    def client(self) -> FakeRedis:
        return self._client


@pytest.fixture(autouse=True)
def no_leaked_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def fake_redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def cache_on(fake_redis: FakeRedis, clock: FakeClock, **hooks) -> RedisReadCache:
    return RedisReadCache(
        FakeConnection(fake_redis),
        namespace="ps",
        entry_ttl_cap_seconds=300,
        breaker_seconds=BREAKER_SECONDS,
        clock=clock,
        **hooks,
    )


@pytest.fixture
def cache(fake_redis: FakeRedis, clock: FakeClock) -> RedisReadCache:
    return cache_on(fake_redis, clock)


@pytest.fixture
def lost() -> list[str]:
    return []


def metric_count(name: str) -> int:
    return len(metrics.metric_set.get(name, {}).get("Value", []))


def test_lookup_reads_epoch_and_generations_in_one_round_trip_then_the_value(cache, fake_redis):
    # Given the scope "starts" bumped twice
    fake_redis.data["ps:gen:starts"] = b"2"
    # When a lookup is made under "starts" and "player:p1"
    token, value = cache.lookup(["starts", "player:p1"], "metric:DE")
    # Then the first round trip reads the epoch and both generations, the second the value under that prefix
    assert fake_redis.round_trips == [
        [("get", "ps:epoch"), ("get", "ps:gen:starts"), ("get", "ps:gen:player:p1")],
        [("get", "ps:e0:starts=2:player:p1=0|metric:DE")],
    ]
    assert token == CacheToken("ps:e0:starts=2:player:p1=0")
    assert value is None


def test_store_caps_the_ttl_and_invalidate_gives_generations_three_caps(cache, fake_redis):
    # Given a token for "starts"
    token, _ = cache.lookup(["starts"], "k")
    # When a value is stored for an hour and "starts" is invalidated
    cache.store(token, "k", b"v", 3600)
    cache.invalidate(["starts"])
    # Then the value lives at most the 300 s cap and the generation three caps
    assert fake_redis.expiries == {"ps:e0:starts=0|k": 300, "ps:gen:starts": 900}
    assert fake_redis.round_trips[-1] == [("incr", "ps:gen:starts"), ("expire", "ps:gen:starts")]


def test_store_without_a_token_or_with_no_ttl_does_nothing(cache, fake_redis):
    # Given no round trip so far
    # When a store is made without a token, then with a zero TTL
    cache.store(None, "k", b"v", 60)
    cache.store(CacheToken("ps:e0:starts=0"), "k", b"v", 0)
    # Then Redis was not contacted
    assert fake_redis.round_trips == []


def test_breaker_opens_after_a_failure_and_skips_redis_until_its_period_is_over(cache, fake_redis, clock):
    # Given a Redis that fails
    fake_redis.down = True
    # When a lookup fails
    first = cache.lookup(["starts"], "k")
    # Then it misses without raising, and the following calls skip Redis entirely
    assert first == (None, None)
    assert len(fake_redis.round_trips) == 1
    assert cache.lookup(["starts"], "k") == (None, None)
    cache.store(CacheToken("ps:e0:starts=0"), "k", b"v", 60)
    clock.advance(BREAKER_SECONDS - 0.01)
    assert cache.lookup(["starts"], "k") == (None, None)
    assert len(fake_redis.round_trips) == 1
    assert metric_count("CacheErrors") == 1
    assert metric_count("CacheMisses") == 3
    # When the period is over and Redis answers again
    fake_redis.down = False
    clock.advance(0.02)
    token, value = cache.lookup(["starts"], "k")
    # Then Redis is used again
    assert token is not None
    assert value is None
    assert len(fake_redis.round_trips) > 1


def test_after_the_breaker_period_a_single_call_probes_a_still_failing_redis(cache, fake_redis, clock):
    # Given an open breaker whose period is over, and a Redis still failing
    fake_redis.down = True
    cache.lookup(["starts"], "k")
    clock.advance(BREAKER_SECONDS + 0.01)
    # When two lookups follow
    cache.lookup(["starts"], "k")
    cache.lookup(["starts"], "k")
    # Then only the first one tried Redis: one failed round trip per breaker period
    assert len(fake_redis.round_trips) == 2


def test_failures_are_logged_once_per_breaker_opening(cache, fake_redis, clock, caplog):
    # Given a Redis that fails for two breaker periods
    fake_redis.down = True
    caplog.set_level(logging.WARNING)
    # When lookups keep coming, the breaker probing in between
    for _ in range(3):
        cache.lookup(["starts"], "k")
        clock.advance(BREAKER_SECONDS + 0.01)
    # Then the failure is logged once, with its reason
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Connection refused" in warnings[0].reason
    assert metric_count("CacheErrors") == 3


def test_owed_epoch_bump_is_paid_before_the_next_lookup_result(cache, fake_redis, clock):
    # Given a value cached under "starts"
    token, _ = cache.lookup(["starts"], "k")
    cache.store(token, "k", b"stale", 60)
    assert cache.lookup(["starts"], "k")[1] == b"stale"
    # And an invalidation of "starts" lost because Redis failed
    fake_redis.down = True
    cache.invalidate(["starts"])
    assert cache._epoch_bump_owed is True
    # When Redis answers again after the breaker period and a lookup is made
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS + 0.01)
    round_trips_before = len(fake_redis.round_trips)
    token, value = cache.lookup(["starts"], "k")
    # Then the epoch is bumped first, and the value cached before the lost invalidation is not served
    assert fake_redis.round_trips[round_trips_before] == [("incr", "ps:epoch")]
    assert value is None
    assert token == CacheToken("ps:e1:starts=0")
    assert cache._epoch_bump_owed is False


def test_while_the_epoch_bump_is_owed_nothing_cached_is_served(cache, fake_redis, clock):
    # Given a value cached under "starts" and an invalidation lost
    token, _ = cache.lookup(["starts"], "k")
    cache.store(token, "k", b"stale", 60)
    fake_redis.down = True
    cache.invalidate(["starts"])
    # When the breaker period is over but the epoch bump fails again
    clock.advance(BREAKER_SECONDS + 0.01)
    first = cache.lookup(["starts"], "k")
    # Then the lookup misses and the bump is still owed
    assert first == (None, None)
    assert cache._epoch_bump_owed is True
    assert fake_redis.data.get("ps:epoch") is None
    # When Redis finally answers
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS + 0.01)
    token, value = cache.lookup(["starts"], "k")
    # Then the bump is paid and the stale value stays unreachable
    assert (token, value) == (CacheToken("ps:e1:starts=0"), None)
    assert fake_redis.data["ps:epoch"] == b"1"


def test_a_store_under_a_token_older_than_the_owed_bump_is_dropped(cache, fake_redis, clock):
    # Given a token taken before an invalidation was lost
    token, _ = cache.lookup(["starts"], "k")
    fake_redis.down = True
    cache.invalidate(["starts"])
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS + 0.01)
    # When a value is stored under that token
    cache.store(token, "k", b"stale", 60)
    # Then the epoch is bumped and nothing is written
    assert fake_redis.round_trips[-1] == [("incr", "ps:epoch")]
    assert "ps:e0:starts=0|k" not in fake_redis.data


@pytest.fixture
def writer(fake_redis: FakeRedis, clock: FakeClock, lost: list[str]) -> RedisReadCache:
    """A cache that records its lost invalidations in ``lost``, as ingest's and the builder's are built."""
    return cache_on(fake_redis, clock, on_lost_invalidation=lambda: lost.append("lost"))


def test_an_invalidation_whose_first_try_times_out_is_retried_at_once_and_owes_nothing(
    writer, fake_redis, lost
):
    # Given a Redis that times out once (a blip on a loaded host)
    fake_redis.failing_round_trips = 1
    # When a write invalidates "starts"
    writer.invalidate(["starts"])
    # Then the invalidation was sent again at once and landed: nothing owed, nothing recorded, breaker closed
    bump = [("incr", "ps:gen:starts"), ("expire", "ps:gen:starts")]
    assert fake_redis.round_trips == [bump, bump]
    assert fake_redis.data["ps:gen:starts"] == b"1"
    assert (writer._epoch_bump_owed, lost) == (False, [])
    assert metric_count("CacheErrors") == 1
    assert writer.lookup(["starts"], "k") == (CacheToken("ps:e0:starts=1"), None)


def test_an_invalidation_failing_twice_is_owed_and_recorded(writer, fake_redis, lost):
    fake_redis.failing_round_trips = 2
    writer.invalidate(["starts"])
    assert len(fake_redis.round_trips) == 2
    assert (writer._epoch_bump_owed, lost) == (True, ["lost"])


def test_while_the_breaker_is_open_an_invalidation_is_tried_once_and_closes_it_if_redis_answers(
    writer, fake_redis, clock, lost
):
    # Given a breaker opened by a failed lookup, its period far from over
    fake_redis.down = True
    assert writer.lookup(["starts"], "k") == (None, None)
    # When a write invalidates while Redis still fails / Then it is tried once (one timeout), and owed
    writer.invalidate(["starts"])
    assert len(fake_redis.round_trips) == 2
    assert (writer._epoch_bump_owed, lost) == (True, ["lost"])
    # When Redis answers within the period and the next write invalidates
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS / 4)
    writer.invalidate(["player:p1"])
    # Then it is not skipped: the owed epoch bump and the generation reach Redis, and the breaker closes
    assert fake_redis.round_trips[2:] == [
        [("incr", "ps:epoch")],
        [("incr", "ps:gen:player:p1"), ("expire", "ps:gen:player:p1")],
    ]
    assert writer._epoch_bump_owed is False
    assert writer.lookup(["player:p1"], "k") == (CacheToken("ps:e1:player:p1=1"), None)


class RecordedDebt:
    """What repositories.cache_debt holds: the latest unpaid debt (None), read how many times; or unreadable."""

    def __init__(self) -> None:
        self.owed: int | None = None
        self.reads = 0
        self.unreadable = False

    def __call__(self) -> int | None:
        self.reads += 1
        if self.unreadable:
            raise DatabaseUnavailableError("read the cache's debt")
        return self.owed


@pytest.fixture
def debt() -> RecordedDebt:
    return RecordedDebt()


@pytest.fixture
def reader(fake_redis: FakeRedis, clock: FakeClock, debt: RecordedDebt) -> RedisReadCache:
    """A cache that reads the recorded debt, as the composition root builds it."""
    return cache_on(fake_redis, clock, unpaid_debt=debt)


def fail_once_then_recover(reader: RedisReadCache, fake_redis: FakeRedis, clock: FakeClock) -> None:
    fake_redis.down = True
    assert reader.lookup(["starts"], "k") == (None, None)
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS + 0.01)


def test_a_debt_recorded_elsewhere_while_redis_failed_here_is_paid_before_the_next_lookup(
    reader, fake_redis, clock, debt
):
    # Given a value cached under "starts"
    token, _ = reader.lookup(["starts"], "k")
    reader.store(token, "k", b"stale", 60)
    # When Redis fails this process while another environment loses an invalidation and records it
    fake_redis.down = True
    assert reader.lookup(["starts"], "k") == (None, None)
    debt.owed = 7
    # And Redis answers again after the breaker period
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS + 0.01)
    round_trips_before = len(fake_redis.round_trips)
    token, value = reader.lookup(["starts"], "k")
    # Then the debt is read and the epoch bumped before anything is looked up: the stale value is not served
    assert debt.reads == 1
    assert fake_redis.round_trips[round_trips_before] == [("incr", "ps:epoch")]
    assert (token, value) == (CacheToken("ps:e1:starts=0"), None)
    # And the debt is read once per failure: the next lookups neither read it nor bump again
    reader.store(token, "k", b"fresh", 60)
    assert reader.lookup(["starts"], "k")[1] == b"fresh"
    assert debt.reads == 1
    assert fake_redis.data["ps:epoch"] == b"1"


def test_a_debt_already_bumped_for_here_or_paid_costs_no_second_bump(reader, fake_redis, clock, debt):
    # Given a debt this process bumped the epoch for after a failure
    debt.owed = 7
    fail_once_then_recover(reader, fake_redis, clock)
    reader.lookup(["starts"], "k")
    assert fake_redis.data["ps:epoch"] == b"1"
    # When Redis fails it again, the same debt still unpaid, then none owed (the builder paid it)
    fail_once_then_recover(reader, fake_redis, clock)
    reader.lookup(["starts"], "k")
    debt.owed = None
    fail_once_then_recover(reader, fake_redis, clock)
    reader.lookup(["starts"], "k")
    # Then the debt was read after each failure, and the epoch bumped only the once
    assert debt.reads == 3
    assert fake_redis.data["ps:epoch"] == b"1"


def test_a_process_redis_never_failed_reads_no_debt(reader, fake_redis, debt):
    debt.owed = 7
    token, _ = reader.lookup(["starts"], "k")
    reader.store(token, "k", b"value", 60)
    assert reader.lookup(["starts"], "k")[1] == b"value"
    assert debt.reads == 0


def test_an_unreadable_debt_after_a_failure_bumps_the_epoch_to_be_safe(reader, fake_redis, clock, debt):
    # Given a value cached, then Redis failed this process while Cassandra cannot be read either
    token, _ = reader.lookup(["starts"], "k")
    reader.store(token, "k", b"stale", 60)
    debt.unreadable = True
    fail_once_then_recover(reader, fake_redis, clock)
    # When Redis answers and a lookup is made / Then the epoch is bumped and nothing cached before is served
    assert reader.lookup(["starts"], "k") == (CacheToken("ps:e1:starts=0"), None)


def test_a_debt_whose_bump_fails_is_read_again_at_the_next_lookup(reader, fake_redis, clock, debt):
    # Given a debt recorded while Redis failed this process
    debt.owed = 7
    fail_once_then_recover(reader, fake_redis, clock)
    # When Redis fails again at the moment the epoch would be bumped
    fake_redis.down = True
    assert reader.lookup(["starts"], "k") == (None, None)
    # Then the next lookup, Redis back, reads the debt again and bumps
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS + 0.01)
    assert reader.lookup(["starts"], "k") == (CacheToken("ps:e1:starts=0"), None)
    assert debt.reads == 2


def test_a_lookup_during_which_another_thread_saw_redis_fail_serves_nothing(reader, fake_redis, debt):
    # Given a value cached
    token, _ = reader.lookup(["starts"], "k")
    reader.store(token, "k", b"value", 60)
    # When, while a lookup reads it, another thread's call to Redis fails (the health check's ping here)
    real_get = fake_redis.get

    def get_while_another_thread_fails(key: str) -> bytes | None:
        if key.endswith("|k"):
            fake_redis.down = True
            assert reader.ping().status == "down"
            fake_redis.down = False
        return real_get(key)

    fake_redis.get = get_while_another_thread_fails
    # Then the lookup serves nothing: a debt recorded meanwhile is not read yet
    assert reader.lookup(["starts"], "k")[1] is None
    # And the next lookup reads the debt first, then finds the value again (no debt was owed)
    fake_redis.get = real_get
    assert reader.lookup(["starts"], "k")[1] == b"value"
    assert debt.reads == 1


def test_an_epoch_bump_is_tried_while_the_breaker_is_open_and_closes_it_once_redis_answers(
    cache, fake_redis, clock
):
    # Given a breaker opened by a failure, its period not over
    fake_redis.down = True
    assert cache.bump_epoch() is False
    assert cache.lookup(["starts"], "k") == (None, None)
    skipped = len(fake_redis.round_trips)
    assert skipped == 1
    # When Redis answers again within the period and the epoch is bumped (the builder paying a debt)
    fake_redis.down = False
    clock.advance(BREAKER_SECONDS / 2)
    assert cache.bump_epoch() is True
    # Then the bump reached Redis, and the breaker is closed: the next lookup uses Redis at once
    assert fake_redis.data["ps:epoch"] == b"1"
    assert cache.lookup(["starts"], "k") == (CacheToken("ps:e1:starts=0"), None)
    assert len(fake_redis.round_trips) == skipped + 3


def test_lookup_metrics_count_hits_and_misses(cache):
    # Given one value cached
    token, _ = cache.lookup(["starts"], "k")
    cache.store(token, "k", b"v", 60)
    # When it is looked up twice and another key once
    cache.lookup(["starts"], "k")
    cache.lookup(["starts"], "k")
    cache.lookup(["starts"], "other")
    # Then two hits and two misses (the first lookup included) are counted
    assert metric_count("CacheHits") == 2
    assert metric_count("CacheMisses") == 2
    assert metric_count("CacheErrors") == 0


def test_no_cache_always_misses_and_stores_nothing():
    # Given the cache switched off
    cache = NoCache()
    # When a value is stored under a token and looked up
    cache.store(CacheToken("ps:e0:starts=0"), "k", b"v", 60)
    cache.invalidate(["starts"])
    # Then every lookup misses, without a token
    assert cache.lookup(["starts"], "k") == (None, None)
