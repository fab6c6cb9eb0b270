"""The shapes of every API answer (and of the request body): they also give the OpenAPI document."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from player_sessions.models.fields import COUNTRY_REGEX, COUNTRY_RULE, PLAYER_ID_REGEX, PLAYER_ID_RULE


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


class CompletedSessionOut(ApiModel):
    session_id: uuid.UUID
    country: str
    start_ts: str
    end_ts: str
    duration_seconds: float


class PlayerSessionsOut(ApiModel):
    player_id: str
    sessions: list[CompletedSessionOut]


class PartialAnswer(ApiModel):
    """Present only when the rollup builders are so far behind that a request would read more unfolded
    arrivals than it may: the answer then covers what arrived before ``arrived_before``."""

    reason: str
    arrived_before: str = Field(description="Starts stored from this instant on may be missing")


PARTIAL_REASON = "the rollup builders are behind: recent arrivals not read"


class CountryStartsCount(ApiModel):
    country: str
    starts: int


class StartsByCountryOut(ApiModel):
    hours: int
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    total: int
    countries: list[CountryStartsCount]
    partial: PartialAnswer | None = Field(default=None, description="Absent when the counts are exact")

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class StartOut(ApiModel):
    session_id: uuid.UUID
    player_id: str
    ts: str


class CountryStartsOut(ApiModel):
    country: str
    hours: int
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
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
