"""Opaque, tamper-evident page cursors of the country listing: the query they belong to and the position, signed with HMAC-SHA256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from player_sessions.errors import BadRequestError
from player_sessions.models import from_epoch_ms, to_epoch_ms
from player_sessions.models.fields import CURSOR_MAX_LENGTH

_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class CountryCursor:
    """Pins the window of the first page, so that following pages list the same starts exactly once."""

    country: str
    hours: int
    window_start: datetime
    window_end: datetime
    last_ts: datetime
    last_session_id: UUID


def encode_cursor(cursor: CountryCursor, key: bytes) -> str:
    payload = json.dumps(
        [
            cursor.country,
            cursor.hours,
            _ms(cursor.window_start),
            _ms(cursor.window_end),
            _ms(cursor.last_ts),
            cursor.last_session_id.hex,
        ],
        separators=(",", ":"),
    ).encode()
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(signature + payload).decode().rstrip("=")


def decode_cursor(text: str, key: bytes) -> CountryCursor:
    """The cursor, or BadRequestError naming the ``cursor`` parameter when it was not made by us."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        signature, payload = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        expected = hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        if len(text) > CURSOR_MAX_LENGTH or not hmac.compare_digest(signature, expected):
            raise ValueError("bad signature")
        country, hours, start, end, last_ts, session_hex = json.loads(payload)
        return CountryCursor(
            country, int(hours), _from_ms(start), _from_ms(end), _from_ms(last_ts), UUID(hex=session_hex)
        )
    except (ValueError, TypeError) as error:
        raise BadRequestError(
            "invalid cursor",
            [{"parameter": "cursor", "in": "query", "reason": "not a cursor this API issued"}],
        ) from error


def _ms(moment: datetime) -> int:
    return to_epoch_ms(moment)


def _from_ms(ms: int) -> datetime:
    return from_epoch_ms(int(ms))
