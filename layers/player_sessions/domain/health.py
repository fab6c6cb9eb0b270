"""The service's health: Cassandra must answer; the cache is optional (reads fall back to Cassandra)."""

from __future__ import annotations

import time

import redis

from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import ComponentHealth, HealthOut
from player_sessions.redis_connection import RedisConnection
from player_sessions.repositories.protocols import SessionStore


def check_health(store: SessionStore, cache: RedisConnection | None) -> HealthOut:
    try:
        cassandra = ComponentHealth(status="up", latency_ms=round(store.ping(), 2))
    except DatabaseUnavailableError as error:
        cassandra = ComponentHealth(status="down", detail=error.message)
    cache_health = _cache_health(cache)
    if cassandra.status == "down":
        status = "unavailable"
    elif cache_health.status == "down":
        status = "degraded"
    else:
        status = "ok"
    return HealthOut(status=status, cassandra=cassandra, cache=cache_health)


def _cache_health(cache: RedisConnection | None) -> ComponentHealth:
    if cache is None:
        return ComponentHealth(status="disabled")
    started = time.perf_counter()
    try:
        cache.client().ping()
    except (redis.RedisError, OSError) as error:
        return ComponentHealth(status="down", detail=type(error).__name__)
    return ComponentHealth(status="up", latency_ms=round((time.perf_counter() - started) * 1000, 2))
