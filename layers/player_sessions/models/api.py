"""The shapes of every API answer (and of the request body): they also give the OpenAPI document."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from player_sessions.models.fields import COUNTRY_REGEX, COUNTRY_RULE, PLAYER_ID_REGEX, PLAYER_ID_RULE

Instant = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An instant as every answer writes it: RFC 3339, UTC, ``Z`` (models.timestamps.format_timestamp)."""


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class EventIn(BaseModel):
    """One session event as a client sends it (documentation of the request body; parsing is parse_event)."""

    model_config = ConfigDict(extra="allow")

    event: Literal["start", "end"]
    player_id: str = Field(
        pattern=PLAYER_ID_REGEX, description=PLAYER_ID_RULE, examples=["d6313e1fb7d247a6a034e2aadc30ab3f"]
    )
    session_id: uuid.UUID = Field(examples=["674606b1-2270-4285-928f-eef4a6b90a60"])
    ts: str = Field(description="ISO 8601 date-time; no offset means UTC", examples=["2016-11-22T20:40:50"])
    country: str | None = Field(
        default=None,
        pattern=COUNTRY_REGEX,
        description=f"{COUNTRY_RULE}, required on start events",
        examples=["PK"],
    )


class EventError(ApiModel):
    index: int = Field(description="Position of the event in the batch, from 0")
    status: Literal["rejected", "discarded"]
    field: str = Field(description="The first field at fault")
    reason: str


class IngestResult(ApiModel):
    stored: int
    discarded: int
    rejected: int
    errors: list[EventError]


class RejectedBatchOut(IngestResult):
    """The ingest result of a batch whose every event was rejected (400), with the ``message`` every error
    answer has."""

    message: str


class CompletedSessionOut(ApiModel):
    session_id: uuid.UUID
    country: str
    start_ts: Instant
    end_ts: Instant
    duration_seconds: float


class PlayerSessionsOut(ApiModel):
    player_id: str
    sessions: list[CompletedSessionOut]


class PartialAnswer(ApiModel):
    """Present only when the rollup builders are so far behind that a request would read more unfolded
    arrivals than it may: the answer then covers what arrived before ``arrived_before``."""

    reason: str
    arrived_before: Instant = Field(description="Starts stored from this instant on may be missing")


PARTIAL_REASON = "the rollup builders are behind: recent arrivals not read"


class CountryStartsCount(ApiModel):
    country: str
    starts: int


FOLDED_THROUGH = (
    "How settled the answer is: every arrival stored before this instant is folded into the rollups, so only "
    "what arrives later, or after this, can still change the window's counts (null: nothing stored yet)"
)
LATE_STARTS = (
    "The window's starts that arrived more than the clock-skew allowance (5 minutes) after their own ts: how "
    "much earlier answers for this window were missing (counted from the window's first whole second)"
)


class StartsByCountryOut(ApiModel):
    hours: int
    from_: Instant = Field(alias="from", serialization_alias="from")
    to: Instant
    total: int
    countries: list[CountryStartsCount]
    folded_through: Instant | None = Field(description=FOLDED_THROUGH)
    late_starts: int = Field(description=LATE_STARTS)
    partial: PartialAnswer | None = Field(default=None, description="Absent when the counts are exact")

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class CountryOnline(ApiModel):
    country: str
    online: int


class OnlineOut(ApiModel):
    open_session_hours: int = Field(
        description="A session started longer ago than this and never ended is abandoned, not online"
    )
    from_: Instant = Field(
        alias="from", serialization_alias="from", description="Sessions started from then on"
    )
    to: Instant
    total: int
    countries: list[CountryOnline] = Field(
        description="Sessions open per country, most first, then by country; countries with none left out"
    )
    folded_through: Instant | None = Field(description=FOLDED_THROUGH)
    late_starts: int = Field(description=LATE_STARTS)
    partial: PartialAnswer | None = Field(default=None, description="Absent when the counts are exact")

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class LengthFigures(ApiModel):
    sessions: int = Field(description="Completed sessions whose duration is within the range, exactly")
    mean_seconds: float | None = Field(description="Their mean duration, exact (null: no sessions)")
    p50_seconds: float | None = Field(description="Median duration, within `relative_error`")
    p90_seconds: float | None
    p99_seconds: float | None
    outside: int = Field(
        description="Sessions whose duration is negative (end stamped before start) or longer than "
        "`open_session_hours`: counted here, left out of every other figure"
    )


class CountryLengths(LengthFigures):
    country: str


class SessionLengthsOut(ApiModel):
    hours: int
    from_: Instant = Field(
        alias="from", serialization_alias="from", description="Sessions ended from then on"
    )
    to: Instant
    relative_error: float = Field(
        description="The most a quantile is off, relative to the exact nearest-rank quantile (log-scale "
        "histogram buckets); counts and means are exact"
    )
    open_session_hours: int
    total: LengthFigures
    countries: list[CountryLengths] = Field(description="Most sessions first, then by country")
    folded_through: Instant | None = Field(description=FOLDED_THROUGH)
    late_sessions: int = Field(
        description="The window's completed sessions whose last event arrived more than the clock-skew allowance "
        "(5 minutes) after the end's ts"
    )
    partial: PartialAnswer | None = Field(default=None, description="Absent when the figures are exact")

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class StartOut(ApiModel):
    session_id: uuid.UUID
    player_id: str
    ts: Instant


class CountryStartsOut(ApiModel):
    country: str
    hours: int
    from_: Instant = Field(alias="from", serialization_alias="from")
    to: Instant
    sessions: list[StartOut]
    next_cursor: str | None
    partial: PartialAnswer | None = Field(default=None, description="Absent when the page is complete")

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class ComponentHealth(ApiModel):
    status: Literal["up", "down", "disabled"]
    latency_ms: float | None = None
    detail: str | None = None


HealthStatus = Literal["ok", "degraded", "unavailable"]


class HealthOut(ApiModel):
    status: HealthStatus
    cassandra: ComponentHealth
    cache: ComponentHealth


class ErrorOut(ApiModel):
    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class CassandraRemoved(ApiModel):
    deleted_rows: dict[str, int] = Field(description="Rows deleted, per table")
    player_id_removed: dict[str, int] = Field(
        description="Rows that stay, without the player's id, per table: the starts the per-country counts are "
        "made of (session id, time, country), and the start of a session not ended yet (`sessions`), so that its "
        "end still closes it in the live-ops counts. No listing or export shows them again"
    )


class CacheRemoved(ApiModel):
    deleted_keys: int | None = Field(
        description="Cache keys deleted (the player's history, the listings of their countries); null when the "
        "cache was unreachable: its entries then expire within 300 s"
    )


class ErasureStores(ApiModel):
    cassandra: CassandraRemoved
    cache: CacheRemoved


class ErasureReceiptOut(ApiModel):
    erasure_id: uuid.UUID
    status: Literal["finished", "in_progress"] = Field(
        description="in_progress: the erasure stopped before its time ran out, or was interrupted; asking for "
        "the player's erasure again completes it (and marks this receipt completed_by the new one)"
    )
    player_hash: str = Field(
        description="The player id's keyed hash (HMAC-SHA256, hex): the receipt keeps no id"
    )
    asked_at: Instant
    finished_at: Instant | None = Field(
        description="When this erasure's own work ended; null while in progress, and on a receipt another "
        "erasure completed (see completed_by: that receipt lists what the completing run removed; rows removed "
        "by an interrupted run before it stopped are in neither)"
    )
    events_discarded_before: Instant = Field(
        description="From now on, the player's events stamped at or before this instant are discarded at ingest "
        "(replays never bring the data back); later ones are a new start and are stored"
    )
    stores: ErasureStores
    physical_removal_due: Instant | None = Field(
        description="When the storage is due to have removed the deleted data physically: Keyspaces removes "
        "expired and deleted data 'typically within 10 days' (not a guarantee); reads never return it before"
    )
    completed_by: uuid.UUID | None = Field(
        default=None, description="The later erasure of the same player that finished this one's work"
    )


class ExportedEvent(ApiModel):
    event: Literal["start", "end"]
    ts: Instant
    country: str | None = None
    retained_until: Instant = Field(description="When the stored event expires (its ts plus the retention)")


class ExportedSessionOut(ApiModel):
    session_id: uuid.UUID
    events: list[ExportedEvent] = Field(description="The session's events as stored for the player")
    session: dict[str, str | None] | None = Field(
        description="The session's row (country, start_ts, end_ts) as stored; null when no longer stored"
    )
    completed: bool = Field(
        description="Whether it is one of the player's completed sessions (their history)"
    )
    arrivals: list[Instant] = Field(
        description="When the start was stored (its arrivals in the arrival log, kept a week for the counts)"
    )


class PlayerExportOut(ApiModel):
    player_id: str
    erased_at: Instant | None = Field(description="When the player was last erased, if ever")
    retention_days: int
    sessions: list[ExportedSessionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")
