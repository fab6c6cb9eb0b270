"""The service's data, by role: ``events`` (incoming events, validated), ``api`` (every answer's shape),
``rows`` (what the domain and the repositories exchange), ``timestamps`` (how instants are written).

Everything is also importable from here, the package's public face.
"""

from player_sessions.models.api import (
    PARTIAL_REASON,
    ApiModel,
    CompletedSessionOut,
    ComponentHealth,
    CountryStartsCount,
    CountryStartsOut,
    ErrorOut,
    EventError,
    EventIn,
    HealthOut,
    HealthStatus,
    IngestResult,
    PartialAnswer,
    PlayerSessionsOut,
    StartOut,
    StartsByCountryOut,
)
from player_sessions.models.events import (
    EventType,
    InvalidEventError,
    SessionEvent,
    parse_event,
    to_utc_millis,
)
from player_sessions.models.fields import COUNTRY_PATTERN, PLAYER_ID_PATTERN, UUID_PATTERN
from player_sessions.models.rows import (
    Arrival,
    ArrivalWrite,
    CompletedSession,
    EventWrite,
    HourCounts,
    RollupRow,
    SessionHalves,
    StartKey,
    StartRow,
)
from player_sessions.models.timestamps import format_timestamp, from_epoch_ms, to_epoch_ms

__all__ = [
    "COUNTRY_PATTERN",
    "PARTIAL_REASON",
    "PLAYER_ID_PATTERN",
    "UUID_PATTERN",
    "ApiModel",
    "Arrival",
    "ArrivalWrite",
    "CompletedSession",
    "CompletedSessionOut",
    "ComponentHealth",
    "CountryStartsCount",
    "CountryStartsOut",
    "ErrorOut",
    "EventError",
    "EventIn",
    "EventType",
    "EventWrite",
    "HealthOut",
    "HealthStatus",
    "HourCounts",
    "IngestResult",
    "InvalidEventError",
    "PartialAnswer",
    "PlayerSessionsOut",
    "RollupRow",
    "SessionEvent",
    "SessionHalves",
    "StartKey",
    "StartOut",
    "StartRow",
    "StartsByCountryOut",
    "format_timestamp",
    "from_epoch_ms",
    "parse_event",
    "to_epoch_ms",
    "to_utc_millis",
]
