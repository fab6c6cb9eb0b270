"""Session events as validated: the one place an incoming event is judged.

Parsing is strict and says exactly which field is wrong and why, because a rejection is the only thing a game
client's developer gets to debug with.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from player_sessions.models.fields import (
    COUNTRY_PATTERN,
    COUNTRY_RULE,
    PLAYER_ID_PATTERN,
    PLAYER_ID_RULE,
    UUID_PATTERN,
)

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


class RepeatedKeys(dict[str, Any]):
    """A JSON object that names a key more than once (JSON leaves which value counts to the reader)."""

    def __init__(self, pairs: list[tuple[str, Any]], repeated: list[str]) -> None:
        super().__init__(pairs)
        self.repeated = repeated


def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook: a plain dict, or RepeatedKeys when a key is given twice, so that an event
    naming one of its fields twice is rejected instead of one of the values winning unseen."""
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    counted = Counter(key for key, _ in pairs)
    return RepeatedKeys(pairs, sorted(key for key, times in counted.items() if times > 1))


EVENT_FIELDS = ("event", "player_id", "session_id", "ts", "country")


def parse_event(raw: Any) -> SessionEvent:
    """Validates one decoded JSON value as a session event; unknown extra fields are ignored."""
    if not isinstance(raw, dict):
        raise InvalidEventError({"event": f"each item must be a JSON object, got {_json_type(raw)}"})
    problems: dict[str, str] = {}
    if isinstance(raw, RepeatedKeys):
        for name in EVENT_FIELDS:
            if name in raw.repeated:
                problems[name] = "given more than once in the event (which value was meant is unknown)"
        if problems:
            raise InvalidEventError(problems)
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
        problems["event"] = f'must be "start" or "end", got {_preview(value)}'
    else:
        return EventType(value)
    return None


def _string(value: Any, field: str, kind: str, problems: dict[str, str]) -> str | None:
    """The value of a required string field, or None with the field's problem noted."""
    if value is None:
        problems[field] = "required"
    elif not isinstance(value, str):
        problems[field] = f"must be {kind}, got {_json_type(value)}"
    else:
        return value
    return None


def _parse_player_id(raw: Any, problems: dict[str, str]) -> str | None:
    value = _string(raw, "player_id", "a string", problems)
    if value is not None and not PLAYER_ID_PATTERN.fullmatch(value):
        problems["player_id"] = f"must be {PLAYER_ID_RULE}"
        return None
    return value


def _parse_session_id(raw: Any, problems: dict[str, str]) -> uuid.UUID | None:
    value = _string(raw, "session_id", "a UUID string", problems)
    if value is None:
        return None
    if not UUID_PATTERN.fullmatch(value):
        problems["session_id"] = (
            f"must be a UUID such as 674606b1-2270-4285-928f-eef4a6b90a60, got {_preview(value)}"
        )
        return None
    return uuid.UUID(value)


def _parse_ts(raw: Any, problems: dict[str, str]) -> datetime | None:
    value = _string(raw, "ts", "an ISO 8601 date-time string", problems)
    if value is None:
        return None
    # RFC 3339 allows a lower-case "t" and "z"; Python's parser takes only capitals
    text = value.upper()
    try:
        if len(text) > 40 or not _HAS_TIME.match(text):
            raise ValueError
        parsed = datetime.fromisoformat(text)
    except ValueError:
        problems["ts"] = f"must be an ISO 8601 date-time such as 2016-11-22T20:40:50Z, got {_preview(value)}"
        return None
    try:
        return to_utc_millis(parsed)
    except OverflowError:
        problems["ts"] = f"must lie between years 1 and 9999 once in UTC, got {_preview(value)}"
        return None


def _parse_country(value: Any, problems: dict[str, str]) -> str | None:
    if value is None:
        problems["country"] = "required on start events"
    elif not isinstance(value, str) or not COUNTRY_PATTERN.fullmatch(value):
        problems["country"] = f"must be {COUNTRY_RULE}, got {_preview(value)}"
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
