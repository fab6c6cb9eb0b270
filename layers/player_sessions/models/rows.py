"""What the domain and the repositories exchange: events ready to write, stored sessions and starts, rollups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from player_sessions.models.events import SessionEvent

HourCounts = Sequence[tuple[datetime, int | None]]
"""Hours of one country, each with its count of the country's starts when the rollups know it (else None)."""


@dataclass(frozen=True)
class EventWrite:
    """A valid event with everything its writes need: its TTL and, for starts, where the start row goes."""

    event: SessionEvent
    ttl_seconds: int
    hour: datetime
    shard: int


@dataclass(frozen=True)
class SessionHalves:
    """What is stored of one session: the start half, the end half, or both."""

    session_id: uuid.UUID
    player_id: str | None
    country: str | None
    start_ts: datetime | None
    end_ts: datetime | None


@dataclass(frozen=True)
class CompletedSession:
    player_id: str
    session_id: uuid.UUID
    country: str
    start_ts: datetime
    end_ts: datetime

    @property
    def duration_seconds(self) -> float:
        return round((self.end_ts - self.start_ts).total_seconds(), 3)


@dataclass(frozen=True, order=True)
class StartRow:
    """One stored session start, as the country listing returns it."""

    ts: datetime
    session_id: uuid.UUID
    player_id: str
    country: str


@dataclass(frozen=True)
class StartKey:
    """What identifies one stored start (its row in session_starts): re-sending it changes nothing."""

    session_id: uuid.UUID
    ts: datetime
    country: str


@dataclass(frozen=True)
class Arrival:
    """A stored start as the arrival log holds it: in the slot (second of server time) it was stored in."""

    slot: int
    key: StartKey


@dataclass(frozen=True)
class ArrivalWrite:
    arrival: Arrival
    shard: int
    ttl_seconds: int
    player_id: str


@dataclass(frozen=True)
class RollupRow:
    """One row of a bucket's rollup: a folded slot's delta, or a base summing every slot up to its own."""

    slot: int
    base: bool
    counts: dict[str, int]
