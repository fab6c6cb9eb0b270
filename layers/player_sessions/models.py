"""The service's data: session events as validated, and the shapes of every API answer.

Parsing an incoming event is strict and says exactly which field is wrong and why, because a rejection is the
only thing a game client's developer gets to debug with.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PLAYER_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,64}")
"""1 to 64 printable ASCII characters, no whitespace (space is 0x20, excluded)."""
COUNTRY_PATTERN = re.compile(r"[A-Za-z]{2}")
UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_HAS_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[T ]\d", re.ASCII)


class EventType(StrEnum):
    START = "start"
    END = "end"


@dataclass(frozen=True)
class SessionEvent:
    """A valid event: ids canonical, ``ts`` in UTC at millisecond precision, ``country`` upper-case on starts."""

    event: EventType
    player_id: str
    session_id: uuid.UUID
    ts: datetime
    country: str | None


class InvalidEventError(ValueError):
    """The event breaks a rule; ``problems`` maps each offending field to the reason."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__(self.reason)

    @property
    def field(self) -> str:
        return next(iter(self.problems))

    @property
    def reason(self) -> str:
        return "; ".join(f"{field}: {why}" for field, why in self.problems.items())


def parse_event(raw: Any) -> SessionEvent:
    """Validates one decoded JSON value as a session event; unknown extra fields are ignored."""
    if not isinstance(raw, dict):
        raise InvalidEventError({"event": f"each item must be a JSON object, got {_json_type(raw)}"})
    problems: dict[str, str] = {}
    event_type = _parse_event_type(raw.get("event"), problems)
    player_id = _parse_player_id(raw.get("player_id"), problems)
    session_id = _parse_session_id(raw.get("session_id"), problems)
    ts = _parse_ts(raw.get("ts"), problems)
    country = _parse_country(raw.get("country"), problems) if event_type is EventType.START else None
    if problems:
        raise InvalidEventError(problems)
    assert event_type is not None and player_id is not None and session_id is not None and ts is not None
    return SessionEvent(event_type, player_id, session_id, ts, country)


def _parse_event_type(value: Any, problems: dict[str, str]) -> EventType | None:
    if value is None:
        problems["event"] = "required"
    elif not isinstance(value, str) or value not in EventType.__members__.values():
        problems["event"] = f"must be \"start\" or \"end\", got {_preview(value)}"
    else:
        return EventType(value)
    return None


def _parse_player_id(value: Any, problems: dict[str, str]) -> str | None:
    if value is None:
        problems["player_id"] = "required"
    elif not isinstance(value, str):
        problems["player_id"] = f"must be a string, got {_json_type(value)}"
    elif not PLAYER_ID_PATTERN.fullmatch(value):
        problems["player_id"] = "must be 1 to 64 printable ASCII characters without whitespace"
    else:
        return value
    return None


def _parse_session_id(value: Any, problems: dict[str, str]) -> uuid.UUID | None:
    if value is None:
        problems["session_id"] = "required"
        return None
    if not isinstance(value, str):
        problems["session_id"] = f"must be a UUID string, got {_json_type(value)}"
        return None
    if not UUID_PATTERN.fullmatch(value):
        problems["session_id"] = f"must be a UUID such as 674606b1-2270-4285-928f-eef4a6b90a60, got {_preview(value)}"
        return None
    return uuid.UUID(value)


def _parse_ts(value: Any, problems: dict[str, str]) -> datetime | None:
    if value is None:
        problems["ts"] = "required"
        return None
    if not isinstance(value, str):
        problems["ts"] = f"must be an ISO 8601 date-time string, got {_json_type(value)}"
        return None
    try:
        if len(value) > 40 or not _HAS_TIME.match(value):
            raise ValueError
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems["ts"] = f"must be an ISO 8601 date-time such as 2016-11-22T20:40:50Z, got {_preview(value)}"
        return None
    return to_utc_millis(parsed)


def _parse_country(value: Any, problems: dict[str, str]) -> str | None:
    if value is None:
        problems["country"] = "required on start events"
    elif not isinstance(value, str) or not COUNTRY_PATTERN.fullmatch(value):
        problems["country"] = f"must be an ISO 3166-1 alpha-2 code (two letters), got {_preview(value)}"
    else:
        return value.upper()
    return None


def to_utc_millis(moment: datetime) -> datetime:
    """No offset means UTC; an offset is converted; precision is cut to the millisecond Cassandra stores."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _preview(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _json_type(value)
    return text if len(text) <= 50 else text[:47] + "..."


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, milliseconds when there are any."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat, not strftime: a page formats a thousand of these.
    text = moment.replace(tzinfo=None).isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text + "Z"


# ---- API shapes (they also give the OpenAPI document) ----


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class EventIn(BaseModel):
    """One session event as a client sends it (documentation of the request body; parsing is parse_event)."""

    model_config = ConfigDict(extra="allow")

    event: Literal["start", "end"]
    player_id: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$",
                           examples=["d6313e1fb7d247a6a034e2aadc30ab3f"])
    session_id: uuid.UUID = Field(examples=["674606b1-2270-4285-928f-eef4a6b90a60"])
    ts: str = Field(description="ISO 8601 date-time; no offset means UTC", examples=["2016-11-22T20:40:50"])
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$",
                                description="ISO 3166-1 alpha-2, required on start events", examples=["PK"])


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


class CountryStartsCount(ApiModel):
    country: str
    starts: int


class StartsByCountryOut(ApiModel):
    hours: int
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    total: int
    countries: list[CountryStartsCount]

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

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class ComponentHealth(ApiModel):
    status: Literal["up", "down", "disabled"]
    latency_ms: float | None = None
    detail: str | None = None


class HealthOut(ApiModel):
    status: Literal["ok", "degraded", "unavailable"]
    cassandra: ComponentHealth
    cache: ComponentHealth


class ErrorOut(ApiModel):
    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


# ---- What the domain and the repositories exchange ----


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
