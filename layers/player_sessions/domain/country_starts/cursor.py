"""Opaque, tamper-evident page cursors of the country listing: the query they belong to and the position, signed
with HMAC-SHA256.

A cursor is unpadded base64url of: the signing key's id (4 bytes), the signature (16), the JSON payload. The key
id lets the key be rotated: a cursor signed with the previous key still decodes. Decoding is strict: a cursor
has one spelling (no padding, no characters outside the alphabet, no second encoding of the same bytes), so a
page's cache key is the cursor itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from player_sessions.errors import BadRequestError
from player_sessions.models import from_epoch_ms, to_epoch_ms
from player_sessions.models.fields import CURSOR_MAX_LENGTH

_KEY_ID_BYTES = 4
_SIGNATURE_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


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
    signed = key_id(key) + _signature(key, payload) + payload
    return base64.urlsafe_b64encode(signed).decode().rstrip("=")


def decode_cursor(text: str, keys: Sequence[bytes]) -> CountryCursor:
    """The cursor, signed with one of ``keys`` (the current key first, then the previous one), or
    BadRequestError naming the ``cursor`` parameter when it was not made by us."""
    try:
        if len(text) > CURSOR_MAX_LENGTH or not _BASE64URL.fullmatch(text):
            raise ValueError("not unpadded base64url")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != text:
            raise ValueError("not the one spelling of its bytes")
        kid, signature = raw[:_KEY_ID_BYTES], raw[_KEY_ID_BYTES : _KEY_ID_BYTES + _SIGNATURE_BYTES]
        payload = raw[_KEY_ID_BYTES + _SIGNATURE_BYTES :]
        key = next((k for k in keys if hmac.compare_digest(key_id(k), kid)), None)
        if key is None or not hmac.compare_digest(signature, _signature(key, payload)):
            raise ValueError("bad signature")
        country, hours, start, end, last_ts, session_hex = json.loads(payload)
        return CountryCursor(
            str(country), int(hours), _from_ms(start), _from_ms(end), _from_ms(last_ts), UUID(hex=session_hex)
        )
    except (ValueError, TypeError, OverflowError) as error:
        raise BadRequestError(
            "invalid cursor",
            [{"parameter": "cursor", "in": "query", "reason": "not a cursor this API issued"}],
        ) from error


def key_id(key: bytes) -> bytes:
    """What names a signing key inside cursors without revealing it."""
    return hmac.new(key, b"cursor key id", hashlib.sha256).digest()[:_KEY_ID_BYTES]


def _signature(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _ms(moment: datetime) -> int:
    return to_epoch_ms(moment)


def _from_ms(ms: int) -> datetime:
    return from_epoch_ms(int(ms))
