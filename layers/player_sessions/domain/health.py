"""The service's health: Cassandra must answer; the cache is optional (reads fall back to Cassandra)."""

from __future__ import annotations

from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import ComponentHealth, HealthOut, HealthStatus
from player_sessions.observability import logger
from player_sessions.repositories.cache_protocol import ReadCache
from player_sessions.repositories.protocols import SessionStore


def check_health(*, store: SessionStore, cache: ReadCache) -> HealthOut:
    try:
        cassandra = ComponentHealth(status="up", latency_ms=round(store.ping(), 2))
    except DatabaseUnavailableError as error:
        # The answer says what is down; the driver's own text (hosts, addresses) goes to the log only.
        cause = repr(error.__cause__)[:1000] if error.__cause__ else None
        logger.warning("health: database unavailable", extra={"reason": error.message, "driver_error": cause})
        cassandra = ComponentHealth(status="down", detail=error.message)
    answer = cache.ping()
    cache_health = ComponentHealth(status=answer.status, latency_ms=answer.latency_ms, detail=answer.detail)
    status: HealthStatus
    if cassandra.status == "down":
        status = "unavailable"
    elif cache_health.status == "down":
        status = "degraded"
    else:
        status = "ok"
    return HealthOut(status=status, cassandra=cassandra, cache=cache_health)
