"""What the domain needs from storage, as small interfaces; the Cassandra and in-memory stores implement them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from player_sessions.models import CompletedSession, EventWrite, SessionHalves
from player_sessions.time_buckets import Bucket


class SessionStore(Protocol):
    def write_events(self, writes: Sequence[EventWrite]) -> None:
        """Stores each event's half of its session (and the start row of a start), acknowledged by all."""

    def read_sessions(self, session_ids: Sequence[UUID]) -> dict[UUID, SessionHalves]:
        """The stored halves of each session that has any."""

    def write_completed_sessions(self, sessions: Sequence[tuple[CompletedSession, int]]) -> None:
        """Stores completed sessions, each with its TTL in seconds; writing one twice changes nothing."""

    def touch_rollup_revisions(self, buckets: Sequence[tuple[Bucket, int]]) -> None:
        """Gives each bucket a new revision (TTL in seconds), so rollups built before are no longer used."""

    def last_completed_sessions(self, player_id: str, since: datetime, limit: int) -> list[CompletedSession]:
        """Up to ``limit`` completed sessions of the player, both events at or after ``since``, newest end first."""

    def ping(self) -> float:
        """Round-trip time of a trivial read, in milliseconds; raises DatabaseUnavailableError when down."""
