"""Page cursors: one spelling each, signed by a named key, refused with a 400 naming ``cursor`` otherwise."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from player_sessions.domain.country_starts.cursor import CountryCursor, decode_cursor, encode_cursor
from player_sessions.errors import BadRequestError

KEY = b"current-key"
MOMENT = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
CURSOR = CountryCursor("FI", 6, MOMENT, MOMENT, MOMENT, uuid4())
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def refused(text: str, keys: tuple[bytes, ...] = (KEY,)) -> bool:
    """True when decoding is refused as a 400 naming the cursor (anything else raised fails the test)."""
    try:
        decode_cursor(text, keys)
    except BadRequestError as error:
        return (error.status_code, [e["parameter"] for e in error.errors]) == (400, ["cursor"])
    return False


def other_spellings(text: str) -> list[str]:
    """The same bytes written otherwise: padded, with junk a lenient decoder skips, other unused low bits."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    spellings = [text + "=" * (-len(text) % 4 or 4), text[:5] + "\n" + text[5:], text[:7] + "!" + text[7:]]
    unused_bits = {1: 4, 2: 2}.get(len(raw) % 3, 0)  # bits of the last character that carry nothing
    if unused_bits:
        last = ALPHABET.index(text[-1])
        spellings += [text[:-1] + ALPHABET[last | low] for low in range(1, 2**unused_bits)]
    return spellings


def test_a_cursor_decodes_to_what_was_encoded_and_only_in_its_one_spelling():
    text = encode_cursor(CURSOR, KEY)
    assert decode_cursor(text, (KEY,)) == CURSOR
    variants = other_spellings(text)
    assert variants and all(refused(variant) for variant in variants)


def test_a_cursor_of_a_key_not_held_or_with_a_changed_byte_is_refused():
    text = encode_cursor(CURSOR, b"another-key")
    assert refused(text)
    assert decode_cursor(text, (KEY, b"another-key")) == CURSOR  # a previous key still held decodes it
    raw = bytearray(base64.urlsafe_b64decode(encode_cursor(CURSOR, KEY) + "=="))
    for index in (0, 4, 20, len(raw) - 3):  # the key id, the signature, the payload
        tampered = raw.copy()
        tampered[index] ^= 0x01
        assert refused(base64.urlsafe_b64encode(bytes(tampered)).decode().rstrip("="))


@given(st.text(max_size=600))
def test_any_text_is_a_400_never_another_error(text):
    assert refused(text)  # a forged text cannot carry a valid signature


@pytest.mark.parametrize("ms", [10**18, -(10**18), 2**64])
def test_a_signed_payload_whose_times_leave_the_calendar_is_a_400(ms):
    import hashlib
    import hmac
    import json

    from player_sessions.domain.country_starts.cursor import key_id

    payload = json.dumps(["FI", 6, ms, ms, ms, uuid4().hex]).encode()
    signature = hmac.new(KEY, payload, hashlib.sha256).digest()[:16]
    assert refused(base64.urlsafe_b64encode(key_id(KEY) + signature + payload).decode().rstrip("="))
