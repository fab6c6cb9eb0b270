"""What the domain and the repositories exchange: events ready to write, stored sessions and starts, rollups."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from player_sessions.models.events import EventType, SessionEvent
from player_sessions.schema import RollupFamily

HourCounts = Sequence[tuple[datetime, int | None]]
"""Hours of one country, each with the most starts of the country it may hold, when known (else None)."""


@dataclass(frozen=True)
class EventWrite:
    """A valid event with everything its writes need: its TTL and, for starts, where the start row goes."""

    event: SessionEvent
    ttl_seconds: int
    hour: datetime
    shard: int
    player_hash: bytes
    """The player id's keyed hash (Settings.player_hash): the partition of the player's index."""


@dataclass(frozen=True)
class SessionHalves:
    """What is stored of one session: the start half, the end half, or both."""

    session_id: uuid.UUID
    player_id: str | None
    country: str | None
    start_ts: datetime | None
    end_ts: datetime | None


@dataclass(frozen=True)
class StoredBefore:
    """What a batch meets in storage before it writes, read in one round (SessionStore.read_before_writing)."""

    erased: dict[bytes, datetime]
    """The batch's erased players (by keyed hash), each with the time of the latest erasure."""
    sessions: dict[uuid.UUID, SessionHalves]
    watermarks: dict[int, int]
    """The starts' builders' watermarks, by part (a part that never folded has none)."""


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
class Seen:
    """What storing a start read before writing its arrival, in this order: every part's watermark, then the
    start's mark (domain.country_starts.seen)."""

    through: int
    """The oldest of the watermarks: every fold of a slot up to it had written its marks."""
    fold: int | None
    """The fold that had counted the start; None: no fold had."""


@dataclass(frozen=True)
class Arrival:
    """A stored start as the arrival log holds it: in the slot (second of server time) it was stored in."""

    slot: int
    key: StartKey
    seen: Seen | None = None
    """What was read before it was written (None: nothing; a reader then reads the start's mark)."""


@dataclass(frozen=True)
class ArrivalWrite:
    arrival: Arrival
    shard: int
    ttl_seconds: int
    player_id: str
    player_hash: bytes


@dataclass(frozen=True)
class RecordWrite:
    """A record of a rollup family other than the starts (schema.RollupFamily), to store by its arrival slot;
    unlike a start's arrival it names no player."""

    family: RollupFamily
    arrival: Arrival
    shard: int
    ttl_seconds: int


@dataclass(frozen=True)
class RollupRow:
    """One row of a bucket's rollup: a folded slot's delta, or a base summing every slot up to its own."""

    slot: int
    base: bool
    counts: dict[str, int]


class WriteKind(StrEnum):
    START = "start"
    """A start: its half of the session row and its row in session_starts."""
    ARRIVAL = "arrival"
    """A start's arrival in the arrival log (a start arrives again when it is re-sent)."""
    END = "end"
    """An end: its half of the session row."""


@dataclass(frozen=True)
class PlayerWrite:
    """One entry of a player's index (``player_writes``): where one row written for the player is."""

    session_id: uuid.UUID
    kind: WriteKind
    ts: datetime
    country: str
    """The start's country ("" for an end)."""
    slot: int
    """The arrival's slot (0 for a start or an end)."""
    shard: int
    """The shard of the start row or the arrival (0 for an end)."""
    ttl_seconds: int = 0
    """When written: how long the entry lives (as long as the row it points at)."""


def player_writes_of(
    writes: Iterable[EventWrite], arrivals: Iterable[ArrivalWrite]
) -> list[tuple[bytes, PlayerWrite]]:
    """The index entries (player hash, entry) that point at the rows the events and arrivals write."""
    entries: list[tuple[bytes, PlayerWrite]] = []
    for write in writes:
        event = write.event
        if event.event is EventType.START:
            assert event.country is not None  # a start always has one (parse_event)
            entry = PlayerWrite(
                event.session_id, WriteKind.START, event.ts, event.country, 0, write.shard, write.ttl_seconds
            )
        else:
            entry = PlayerWrite(event.session_id, WriteKind.END, event.ts, "", 0, 0, write.ttl_seconds)
        entries.append((write.player_hash, entry))
    for arrival in arrivals:
        key = arrival.arrival.key
        entries.append(
            (
                arrival.player_hash,
                PlayerWrite(
                    key.session_id,
                    WriteKind.ARRIVAL,
                    key.ts,
                    key.country,
                    arrival.arrival.slot,
                    arrival.shard,
                    arrival.ttl_seconds,
                ),
            )
        )
    return entries


PHYSICAL_REMOVAL_DAYS = 10
"""Keyspaces removes expired and deleted data physically "typically within 10 days" (its TTL documentation);
a local Cassandra purges a deletion after ``gc_grace_seconds`` (10 days) at the next compaction."""


@dataclass
class ErasureReceipt:
    """What one erasure did (``erasures`` table; GET /erasures/{id})."""

    erasure_id: uuid.UUID
    player_hash: bytes
    asked_at: datetime
    """Also the erasure's time: the player's events stamped up to it are discarded at ingest from now on."""
    finished_at: datetime | None = None
    deleted_rows: Counter[str] = field(default_factory=Counter)
    """Rows deleted, per table."""
    player_id_removed: Counter[str] = field(default_factory=Counter)
    """Rows kept for the counts without the player's id, per table (their starts)."""
    cache_keys_deleted: int | None = 0
    """None: the cache could not be reached (its entries expire within their TTL cap, 300 s)."""
    completed_by: uuid.UUID | None = None
    """Another erasure of the player that finished what this one started (this one stopped half way)."""

    @property
    def finished(self) -> bool:
        return self.finished_at is not None or self.completed_by is not None

    @property
    def physical_removal_due(self) -> datetime | None:
        if self.finished_at is None:
            return None
        return self.finished_at + timedelta(days=PHYSICAL_REMOVAL_DAYS)
