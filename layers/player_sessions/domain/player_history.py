"""A player's last completed sessions."""

from __future__ import annotations

from player_sessions.clock import Clock
from player_sessions.models import CompletedSession
from player_sessions.repositories.protocols import SessionStore
from player_sessions.settings import Settings


def last_completed_sessions(
    player_id: str, limit: int, store: SessionStore, clock: Clock, settings: Settings
) -> list[CompletedSession]:
    """The player's ``limit`` most recently completed sessions, by end time, newest first.

    A session counts only while both its events are retained, even before Cassandra's TTL removes the row.
    """
    since = clock.now() - settings.retention
    sessions = store.last_completed_sessions(player_id, since, limit)
    return [session for session in sessions if session.start_ts >= since][:limit]
