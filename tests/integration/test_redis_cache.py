"""The Redis read cache against the real local Redis: key schema, invalidation, TTLs, and failing open when
Redis freezes (SIGSTOP) or dies (SIGKILL, then restarted by tools/local_services.sh)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from player_sessions.observability import metrics
from player_sessions.redis_connection import RedisConnection
from player_sessions.repositories.redis_cache import RedisReadCache
from tests.sockets import port_open

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_PID_FILE = Path(os.environ.get("LOCAL_DIR", REPO_ROOT / ".local")) / "redis" / "redis.pid"
BREAKER_SECONDS = 0.5


@pytest.fixture(autouse=True)
def no_leaked_metrics() -> Iterator[None]:
    yield
    metrics.clear_metrics()


@pytest.fixture
def connection(test_settings, redis_connection) -> Iterator[RedisConnection]:
    """A connection of the test's own (the shared one must not inherit sockets broken by a frozen Redis)."""
    own = RedisConnection(test_settings)
    yield own
    own.close()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid4().hex[:8]}"


@pytest.fixture
def cache(connection, namespace) -> RedisReadCache:
    return RedisReadCache(
        connection, namespace=namespace, entry_ttl_cap_seconds=300, breaker_seconds=BREAKER_SECONDS
    )


def count_commands_sent(monkeypatch) -> list[object]:
    """Each command (or pipeline) any connection writes to Redis from now on, appended as it is sent."""
    sent: list[object] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        sent.append(command)
        return send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


def redis_pid() -> int:
    if not REDIS_PID_FILE.is_file():
        pytest.fail(f"no {REDIS_PID_FILE}: start the tests' Redis with `make test`", pytrace=False)
    return int(REDIS_PID_FILE.read_text().strip())


def redis_port(test_settings) -> int:
    return redis.Redis.from_url(test_settings.redis_url).connection_pool.connection_kwargs["port"]


@dataclass
class RedisWaits:
    """What the connections waited on Redis for, from the moment ``watch_redis_waits`` was called: a request's
    time is bounded by these counts and timeouts, where a stopwatch would be a test that fails on a busy day."""

    read_timeouts: list[float] = field(default_factory=list)
    """Each read that ended in its timeout, with the timeout it waited, in seconds."""
    connects: list[str] = field(default_factory=list)
    """Each socket connection attempt, with how it ended: ``connected`` or the error's name."""


def watch_redis_waits(monkeypatch) -> RedisWaits:
    waits = RedisWaits()
    read, connect = redis.connection.AbstractConnection.read_response, redis.connection.Connection._connect

    def reading(self, *args, **kwargs):
        try:
            return read(self, *args, **kwargs)
        except redis.exceptions.TimeoutError:
            timeout = kwargs.get("timeout")
            waits.read_timeouts.append(timeout if isinstance(timeout, int | float) else self.socket_timeout)
            raise

    def connecting(self):
        # redis-py's one socket connection attempt (private: the public connect() may retry around it)
        try:
            sock = connect(self)
        except OSError as error:
            waits.connects.append(type(error).__name__)
            raise
        waits.connects.append("connected")
        return sock

    monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", reading)
    monkeypatch.setattr(redis.connection.Connection, "_connect", connecting)
    return waits


def test_a_stored_value_is_found_under_the_same_scopes_and_key_only(cache):
    # Given nothing cached
    token, value = cache.lookup(["starts", "late"], "metric:DE:24")
    assert token is not None
    assert value is None
    # When a value is stored under the token of that lookup
    cache.store(token, "metric:DE:24", b'{"starts": 3}', 60)
    # Then the same lookup hits, and another key misses
    assert cache.lookup(["starts", "late"], "metric:DE:24") == (token, b'{"starts": 3}')
    assert cache.lookup(["starts", "late"], "metric:FR:24")[1] is None


def test_invalidating_a_scope_hides_its_values_and_not_other_scopes(cache):
    # Given a value cached under "starts" and another under "player:p1"
    starts_token, _ = cache.lookup(["starts"], "metric:DE:24")
    cache.store(starts_token, "metric:DE:24", b"3", 60)
    player_token, _ = cache.lookup(["player:p1"], "history")
    cache.store(player_token, "history", b"[s1]", 60)
    # When "starts" is invalidated
    cache.invalidate(["starts"])
    # Then the value under "starts" is no longer found, the one under "player:p1" still is
    token, value = cache.lookup(["starts"], "metric:DE:24")
    assert value is None
    assert token != starts_token
    assert cache.lookup(["player:p1"], "history") == (player_token, b"[s1]")


def test_forgetting_a_scope_deletes_its_entries_and_generation_one_key_per_command(cache, connection):
    # Given three values cached under a player's scope (invalidated once), and the server's count of DELs
    player = f"player:p-{uuid4().hex}"
    cache.invalidate([player])  # the scope has a generation key
    for key in ("history", "export", "sessions"):
        token, _ = cache.lookup([player], key)
        cache.store(token, key, b"[s1]", 60)
    client = connection.client()
    dels_before = client.info("commandstats").get("cmdstat_del", {}).get("calls", 0)

    # When the player's scope is forgotten (an erasure)
    deleted = cache.forget([player])

    # Then its three entries and its generation key are gone, each by a DEL of its own (deployed, ElastiCache
    # Serverless is a cluster: one DEL naming keys of several hash slots fails with CROSSSLOT)
    assert deleted == 4
    assert client.info("commandstats")["cmdstat_del"]["calls"] - dels_before == 4
    assert cache.lookup([player], "history")[1] is None


def test_generation_keys_expire_after_three_entry_ttl_caps(connection, namespace):
    # Given a cache whose entries live at most 10 s
    cache = RedisReadCache(connection, namespace=namespace, entry_ttl_cap_seconds=10)
    # When a player's scope is invalidated
    cache.invalidate(["player:p1"])
    # Then its generation key expires within 30 s, and the epoch key is not created
    client = connection.client()
    assert client.get(f"{namespace}:gen:player:p1") == b"1"
    assert 29_000 < client.pttl(f"{namespace}:gen:player:p1") <= 30_000
    assert client.exists(f"{namespace}:epoch") == 0


def test_a_value_computed_before_an_invalidation_and_stored_after_it_is_never_served(cache):
    # Given a reader that took its token before reading the database
    stale_token, _ = cache.lookup(["starts"], "metric:DE:24")
    # When a writer's acknowledged write invalidates "starts", and only then the reader stores its result
    cache.invalidate(["starts"])
    cache.store(stale_token, "metric:DE:24", b"stale", 60)
    # Then the next lookup does not find the stale value
    token, value = cache.lookup(["starts"], "metric:DE:24")
    assert value is None
    assert token != stale_token


def test_values_expire_with_their_ttl_capped_by_the_entry_ttl_cap(connection, namespace):
    # Given a cache whose entries live at most 5 s
    cache = RedisReadCache(connection, namespace=namespace, entry_ttl_cap_seconds=5)
    token, _ = cache.lookup(["starts"], "short")
    # When one value is stored for 1 s and another for an hour
    cache.store(token, "short", b"1", 1)
    cache.store(token, "long", b"2", 3600)
    # Then the second lives at most 5 s
    assert 4_000 < connection.client().pttl(f"{token.key_prefix}|long") <= 5_000
    # And the first is gone after its second
    assert cache.lookup(["starts"], "short")[1] == b"1"
    time.sleep(1.5)
    assert cache.lookup(["starts"], "short")[1] is None
    assert cache.lookup(["starts"], "long")[1] == b"2"


def test_a_frozen_redis_costs_reads_one_timeout_a_write_one_each_and_hides_what_a_lost_invalidation_hid(
    connection, namespace, monkeypatch, test_settings
):
    # Given a cache whose breaker keeps the time the test sets, a value cached under "starts", and every command
    # sent to Redis and every wait for it counted
    now = [0.0]
    cache = RedisReadCache(
        connection, namespace=namespace, breaker_seconds=BREAKER_SECONDS, clock=lambda: now[0]
    )
    token, _ = cache.lookup(["starts"], "metric:DE:24")
    cache.store(token, "metric:DE:24", b"before the freeze", 60)
    assert cache.lookup(["starts"], "metric:DE:24")[1] == b"before the freeze"
    sent = count_commands_sent(monkeypatch)
    waits = watch_redis_waits(monkeypatch)
    pid = redis_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        # When Redis is frozen
        first = cache.lookup(["starts"], "metric:DE:24")
        sent_by_first = len(sent)
        timeouts_by_first = list(waits.read_timeouts)
        second = cache.lookup(["starts"], "metric:DE:24")
        sent_by_second = len(sent)
        cache.invalidate(["starts"])
    finally:
        os.kill(pid, signal.SIGCONT)
    # Then the first lookup misses after one short timeout (one read waited the setting's 0.1 s, over the
    # connection it had); the second skips Redis (the breaker is open: nothing more is sent, nothing waited)
    assert first == (None, None)
    assert timeouts_by_first == [test_settings.redis_timeout_seconds]
    assert sent_by_first >= 1
    assert second == (None, None)
    assert sent_by_second == sent_by_first
    # And the invalidation, a write's correctness, is not skipped but tried once: one more short timeout, and it
    # is owed
    assert waits.read_timeouts == [test_settings.redis_timeout_seconds] * 2
    assert len(sent) > sent_by_second
    assert cache._epoch_bump_owed is True
    # When Redis answers again and the breaker period is over
    now[0] += BREAKER_SECONDS
    token, value = cache.lookup(["starts"], "metric:DE:24")
    # Then the value cached before the lost invalidation is not served, and the cache works again
    assert value is None
    assert token is not None
    assert cache._epoch_bump_owed is False
    cache.store(token, "metric:DE:24", b"after the freeze", 60)
    assert cache.lookup(["starts"], "metric:DE:24") == (token, b"after the freeze")


def test_invalidations_sent_to_a_frozen_redis_land_as_it_thaws_before_a_reader_that_never_saw_it_fail(
    test_settings, namespace
):
    # Given environments on database 0, as deployed (ElastiCache Serverless has no other; another costs a new
    # socket a SELECT before its first command)
    as_deployed = test_settings.model_copy(
        update={"redis_url": test_settings.redis_url.rsplit("/", 1)[0] + "/0"}
    )
    reader_connection, writer_connection = RedisConnection(as_deployed), RedisConnection(as_deployed)
    # And a reader environment that cached two players' histories, then has nothing to do while Redis is frozen
    reader = RedisReadCache(reader_connection, namespace=namespace, breaker_seconds=BREAKER_SECONDS)
    for player in ("player:p1", "player:p2"):
        token, _ = reader.lookup([player], "history")
        reader.store(token, "history", b"before the writes", 60)
    writer = RedisReadCache(writer_connection, namespace=namespace, breaker_seconds=60.0)
    pid = redis_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        # When a writer environment acknowledges two players' batches while Redis is frozen: the first's
        # invalidation times out twice (each try on a socket opened during the freeze) and opens the writer's
        # breaker; the second's is still tried, once, and sends the epoch bump the first left owed
        writer.invalidate(["player:p1"])
        writer.invalidate(["player:p2"])
    finally:
        os.kill(pid, signal.SIGCONT)
    # And Redis has taken up again (a new connection's ping is answered after what waited in its sockets)
    assert connection_answers(test_settings)
    # Then every command the writer sent waited in the frozen Redis's sockets and ran as it thawed (new sockets
    # send nothing before them), before the reader's lookups: the reader, which never saw Redis fail and reads
    # no debt, serves neither history
    client = reader_connection.client()
    assert client.get(f"{namespace}:gen:player:p1") == b"2"
    assert client.get(f"{namespace}:epoch") == b"1"
    assert reader.lookup(["player:p1"], "history")[1] is None
    assert reader.lookup(["player:p2"], "history")[1] is None
    assert writer._epoch_bump_owed is True
    reader_connection.close()
    writer_connection.close()


def test_a_killed_redis_fails_fast_and_the_cache_is_used_again_once_it_is_back(
    cache, test_settings, monkeypatch
):
    # Given a token taken while Redis is up
    token, _ = cache.lookup(["starts"], "metric:DE:24")
    port = redis_port(test_settings)
    os.kill(redis_pid(), signal.SIGKILL)
    try:
        deadline = time.monotonic() + 5
        while port_open(port, timeout=0.1):
            assert time.monotonic() < deadline, "the killed Redis still accepts connections"
            time.sleep(0.02)
        # When Redis is gone, with every wait for it counted
        waits = watch_redis_waits(monkeypatch)
        looked_up = cache.lookup(["starts"], "metric:DE:24")
        cache.store(token, "metric:DE:24", b"v", 60)
        cache.invalidate(["starts"])
        # Then every call returns without raising, having waited for nothing: the lookup met the refused
        # connection once (the one it had died with Redis), the store skipped Redis (the breaker is open), and
        # the invalidation, never skipped, met it once more
        assert looked_up == (None, None)
        assert waits.connects == ["ConnectionRefusedError"] * 2
        assert waits.read_timeouts == []
    finally:
        subprocess.run(["tools/local_services.sh", "up"], cwd=REPO_ROOT, check=False, timeout=300)
    assert connection_answers(test_settings), "Redis did not come back after tools/local_services.sh up"
    # When Redis is back and the breaker period is over
    time.sleep(BREAKER_SECONDS + 0.1)
    token, value = cache.lookup(["starts"], "metric:DE:24")
    # Then the cache is used again
    assert token is not None
    assert value is None
    cache.store(token, "metric:DE:24", b"after the restart", 60)
    assert cache.lookup(["starts"], "metric:DE:24") == (token, b"after the restart")


def connection_answers(test_settings) -> bool:
    client = redis.Redis.from_url(test_settings.redis_url, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
