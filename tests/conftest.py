"""Shared fixtures. Integration tests use the real Cassandra and Redis that `make test` starts for the tests
(tools/test_services.sh: their own, on ports of their own, exported as CASSANDRA_PORT and REDIS_PORT); when
they are not reachable the tests fail with a message saying so, they are never skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from player_sessions.settings import Settings

TEST_KEYSPACE = "player_sessions_test"
HOW_TO_RUN = "run the tests with `make test`, or `tools/test_services.sh run -- uv run pytest ...`"


@pytest.fixture(scope="session")
def test_settings() -> Settings:
    """Settings for integration tests: the local services, a keyspace of their own, Redis database 15, logged
    in as the administrative role (set-up, and the tests of storage itself). What each function may do is
    tested under the function's own role (test_statement_of_access.py, and every served gateway)."""
    from player_sessions_local.cassandra_roles import as_admin

    return as_admin(
        Settings(
            keyspace=TEST_KEYSPACE,
            cassandra_port=int(os.environ.get("CASSANDRA_PORT", "9042")),
            redis_url=f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/15",
            api_key=None,
        )
    )


def fresh_keyspace_connection(settings: Settings) -> Iterator:
    """A connection to the settings' keyspace, created afresh for this run (its schema and grants applied): the
    events/ fixtures use fixed ids, and counts must start from zero."""
    from player_sessions.cassandra_connection import CassandraConnection
    from player_sessions.errors import DatabaseUnavailableError
    from player_sessions_local.schema_tool import apply_schema

    admin = CassandraConnection(settings, use_keyspace=False)
    try:
        admin.session().execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
        apply_schema(admin.session(), settings)
        forget_cached_answers(settings)
    except DatabaseUnavailableError as error:
        pytest.fail(f"the local Cassandra is not reachable ({HOW_TO_RUN}): {error}", pytrace=False)
    finally:
        admin.close()
    connection = CassandraConnection(settings)
    yield connection
    connection.close()


def forget_cached_answers(settings: Settings) -> None:
    """Empties the tests' Redis database: the cache outlives a dropped keyspace, and an earlier run's answers
    (a window's hour sums, under the same key) would be served over the new keyspace's data."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError:
        pass  # the redis_connection fixture says the local Redis is not reachable, and how to run it
    finally:
        client.close()


@pytest.fixture(scope="session")
def cassandra_connection(test_settings: Settings) -> Iterator:
    yield from fresh_keyspace_connection(test_settings)


@pytest.fixture(scope="session")
def cassandra_session(cassandra_connection):
    return cassandra_connection.session()


@pytest.fixture(scope="session")
def redis_connection(test_settings: Settings) -> Iterator:
    import redis

    from player_sessions.redis_connection import RedisConnection

    connection = RedisConnection(test_settings)
    try:
        connection.client().ping()
    except redis.RedisError as error:
        pytest.fail(f"the local Redis is not reachable ({HOW_TO_RUN}): {error}", pytrace=False)
    yield connection
    connection.close()


COUNTS_KEYSPACE = "player_sessions_counts_test"
"""Where the integration tests of counts and listings run, each on emptied tables, on clocks of their own: the
builder's watermark only moves forward, so tests at different moments must not share it (nor with the served
gateways of the end-to-end tests, whose builder runs on the real clock)."""


@pytest.fixture(scope="session")
def counts_settings(test_settings: Settings) -> Settings:
    return test_settings.model_copy(update={"keyspace": COUNTS_KEYSPACE})


@pytest.fixture(scope="session")
def counts_connection(counts_settings: Settings) -> Iterator:
    yield from fresh_keyspace_connection(counts_settings)


@pytest.fixture(scope="session")
def unchecked_counts_session(counts_connection, counts_settings: Settings) -> Iterator:
    """Test set-up only, and the one driver session of the tests that Keyspaces' rules are not installed on: it
    empties the counts keyspace's tables between tests with TRUNCATE, which Keyspaces does not support (so every
    connection of the service refuses it: player_sessions.keyspaces_rules)."""
    from player_sessions.cassandra_cluster import build_cluster

    cluster = build_cluster(counts_settings)
    try:
        yield cluster.connect(COUNTS_KEYSPACE)
    finally:
        cluster.shutdown()


@pytest.fixture
def counts_stores(counts_connection, counts_settings, unchecked_counts_session):
    """A session store and a starts store on emptied tables of the counts keyspace."""
    from player_sessions.repositories.cassandra_rollups import CassandraRollupStore
    from player_sessions.repositories.cassandra_store import CassandraSessionStore
    from player_sessions.schema import TABLES

    for table in TABLES:
        unchecked_counts_session.execute(f"TRUNCATE {COUNTS_KEYSPACE}.{table.name}", timeout=60)
    return (
        CassandraSessionStore(counts_connection),
        CassandraRollupStore(counts_connection, counts_settings.start_shards),
    )
