"""A player's last completed sessions, through the read cache."""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from player_sessions.clock import Clock
from player_sessions.models import CompletedSession, from_epoch_ms, to_epoch_ms
from player_sessions.repositories.cache_protocol import NoCache, ReadCache, decoded_or_miss, player_scope
from player_sessions.repositories.protocols import SessionStore
from player_sessions.settings import Settings

CACHE_TTL_SECONDS = 300

CachedSession = tuple[str, str, str, int, int]
"""A session as the cache holds it, a JSON array: player id, session id, country, start and end in epoch ms."""


def last_completed_sessions(
    player_id: str,
    limit: int,
    *,
    store: SessionStore,
    clock: Clock,
    settings: Settings,
    cache: ReadCache | None = None,
) -> list[CompletedSession]:
    """The player's ``limit`` most recently completed sessions, by end time, newest first.

    A session counts only while both its events are retained, even before Cassandra's TTL removes the row.
    Cached per player until a session of the player completes, or the oldest one shown leaves the retention.
    """
    cache = cache or NoCache()
    now = clock.now()
    since = now - settings.retention
    key = f"player:{player_id}:{limit}"
    token, raw = cache.lookup([player_scope(player_id)], key)
    cached = decoded_or_miss(raw, _sessions_from_json)
    if cached is not None and all(session.start_ts >= since for session in cached):
        return cached
    sessions = [s for s in store.last_completed_sessions(player_id, since, limit) if s.start_ts >= since][
        :limit
    ]
    # A value is encoded only where the cache can keep it, and an empty history is not kept: it would save one
    # partition read, and its key would name a player who has no data (an erased one included)
    if token is not None and sessions:
        cache.store(token, key, json.dumps([_to_json(s) for s in sessions]).encode(), _ttl(sessions, since))
    return sessions


def _ttl(sessions: list[CompletedSession], since: datetime) -> int:
    until_oldest_expires = min(s.start_ts for s in sessions) - since
    return max(1, min(CACHE_TTL_SECONDS, int(until_oldest_expires.total_seconds())))


def _to_json(session: CompletedSession) -> CachedSession:
    return (
        session.player_id,
        str(session.session_id),
        session.country,
        to_epoch_ms(session.start_ts),
        to_epoch_ms(session.end_ts),
    )


def _sessions_from_json(data: bytes) -> list[CompletedSession]:
    return [_from_json(item) for item in json.loads(data)]


def _from_json(item: CachedSession) -> CompletedSession:
    player_id, session_id, country, start, end = item
    return CompletedSession(player_id, UUID(session_id), country, from_epoch_ms(start), from_epoch_ms(end))
