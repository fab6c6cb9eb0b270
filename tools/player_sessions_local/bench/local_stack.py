"""The local Cassandra and Redis as the benchmark uses them: keyspaces of its own, a quiet node between phases,
a Redis database of its own."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.schema import render_drop_keyspace_cql
from player_sessions.settings import Settings


def fresh_keyspace(settings: Settings) -> None:
    from player_sessions_local.schema_tool import apply_schema

    admin = CassandraConnection(settings, use_keyspace=False)
    try:
        admin.session().execute(render_drop_keyspace_cql(settings.keyspace), timeout=120)
        apply_schema(admin.session(), settings)
    finally:
        admin.close()


def drop_keyspace(settings: Settings) -> None:
    """Drops a phase's keyspace once its rows are counted: its memtables and compactions would otherwise compete
    with the next phase (auto_snapshot is off locally, so this is cheap)."""
    admin = CassandraConnection(settings, use_keyspace=False)
    try:
        admin.session().execute(render_drop_keyspace_cql(settings.keyspace), timeout=120)
    finally:
        admin.close()


BACKGROUND_POOLS = ("CompactionExecutor", "MemtableFlushWriter", "MemtablePostFlush", "MemtableReclaimMemory")


def wait_for_quiet_node(settings: Settings, limit_seconds: float = 180) -> float:
    """Waits until Cassandra has no flush or compaction running or queued, so each measured phase starts on an
    idle node rather than paying for the previous one's writes; returns the seconds waited."""
    connection = CassandraConnection(settings, use_keyspace=False)
    started = time.monotonic()
    try:
        session = connection.session()
        while time.monotonic() - started < limit_seconds:
            busy = sum(
                row.active_tasks + row.pending_tasks
                for row in session.execute(
                    "SELECT name, active_tasks, pending_tasks FROM system_views.thread_pools"
                )
                if row.name in BACKGROUND_POOLS
            )
            if busy == 0:
                break
            time.sleep(1)
    finally:
        connection.close()
    return time.monotonic() - started


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()
