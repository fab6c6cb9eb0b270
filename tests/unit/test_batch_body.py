"""The batch body is checked before any event is looked at; each failure has its own status and reason."""

from __future__ import annotations

import base64
import json

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from player_sessions.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from player_sessions.http import read_json_batch
from player_sessions.settings import Settings

SETTINGS = Settings()
EVENT = {
    "event": "end",
    "player_id": "p",
    "session_id": "674606b1-2270-4285-928f-eef4a6b90a60",
    "ts": "2026-11-28T10:00:00Z",
}


def request(body: str | bytes | None, content_type: str | None = "application/json", base64_body=False):
    headers = {"Content-Type": content_type} if content_type else {}
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode() if base64_body else body.decode()
    return APIGatewayProxyEvent({"headers": headers, "body": body, "isBase64Encoded": base64_body})


def test_a_json_array_of_events_is_returned_as_decoded_items():
    # Given a JSON array of two events
    body = request(json.dumps([EVENT, EVENT]))
    # When the batch is read
    items = read_json_batch(body, SETTINGS)
    # Then both events come back decoded
    assert items == [EVENT, EVENT]


def test_content_type_with_charset_and_any_header_case_is_accepted():
    # Given a lower-case header naming JSON in mixed case, with a charset
    event = APIGatewayProxyEvent(
        {"headers": {"content-type": "Application/JSON; charset=utf-8"}, "body": json.dumps([EVENT])}
    )
    # When the batch is read
    items = read_json_batch(event, SETTINGS)
    # Then it is accepted as JSON
    assert items == [EVENT]


def test_base64_bodies_are_decoded():
    # Given a batch that API Gateway passed base64-encoded
    body = request(json.dumps([EVENT]).encode(), base64_body=True)
    # When the batch is read
    items = read_json_batch(body, SETTINGS)
    # Then its events come back decoded
    assert items == [EVENT]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_body_not_declared_as_json_is_415(content_type):
    # Given a JSON batch sent with another content type, or none
    body = request(json.dumps([EVENT]), content_type)
    # When the batch is read / Then it is refused as 415, naming the header
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        read_json_batch(body, SETTINGS)
    assert caught.value.status_code == 415
    assert caught.value.errors[0]["parameter"] == "Content-Type"


def test_a_body_over_16_kib_is_413_before_it_is_parsed():
    # Given a body one byte over 16 KiB (blank, so parsing it would succeed)
    body = "[" + " " * (16 * 1024) + "]"
    # When the batch is read / Then it is refused as 413, stating the limit
    with pytest.raises(PayloadTooLargeError, match="limit is 16384") as caught:
        read_json_batch(request(body), SETTINGS)
    assert caught.value.status_code == 413


def test_more_events_than_the_batch_limit_is_413():
    # Given a batch of 11 events, one over the limit
    body = request(json.dumps([EVENT] * 11))
    # When the batch is read / Then it is refused as 413, stating the count and the limit
    with pytest.raises(PayloadTooLargeError, match="11 events; the limit is 10"):
        read_json_batch(body, SETTINGS)


@pytest.mark.parametrize(
    ("body", "message", "reason"),
    [
        ('{"event": "start"', "not valid JSON", "line 1"),
        ("", "not valid JSON", "Expecting value"),
        ('{"event": "start"}', "JSON array", "must be a JSON array"),
        ("[]", "at least one event", "empty array"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON", "nested too deeply"),
    ],
)
def test_malformed_bodies_are_400_with_a_reason(body, message, reason):
    # Given a body limit large enough for the deepest nesting
    settings = Settings(max_body_bytes=1024 * 1024)
    # When a malformed body is read / Then it is refused as 400 with its reason
    with pytest.raises(BadRequestError, match=message) as caught:
        read_json_batch(request(body), settings)
    assert caught.value.status_code == 400
    assert reason in caught.value.errors[0]["reason"]


@pytest.mark.parametrize("charset", ["iso-8859-1", "utf-16", '"latin1"'])
def test_a_charset_other_than_utf8_is_415_naming_the_header(charset):
    # Given a JSON batch declared in another character set
    body = request(json.dumps([EVENT]), f"application/json; charset={charset}")
    # When the batch is read / Then it is refused as 415: JSON exchanged between systems is UTF-8 (RFC 8259)
    with pytest.raises(UnsupportedMediaTypeError, match="must be UTF-8") as caught:
        read_json_batch(body, SETTINGS)
    assert caught.value.errors[0] == {
        "parameter": "Content-Type",
        "in": "header",
        "reason": "charset must be utf-8 (RFC 8259)",
    }


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_body_in_another_encoding_is_400_not_guessed(encoding):
    # Given a batch encoded in UTF-16 or UTF-32 (which Python's JSON reader would otherwise detect and accept)
    body = request(json.dumps([EVENT]).encode(encoding), base64_body=True)
    # When the batch is read / Then it is refused as 400, saying it is not UTF-8 (or not JSON once read as UTF-8)
    with pytest.raises(BadRequestError, match="not valid JSON") as caught:
        read_json_batch(body, SETTINGS)
    assert caught.value.errors[0]["parameter"] == "body"


def test_a_utf8_body_with_a_byte_order_mark_is_read():
    # Given a UTF-8 batch that starts with a byte order mark (RFC 8259 lets a reader ignore it)
    body = request(b"\xef\xbb\xbf" + json.dumps([EVENT]).encode(), base64_body=True)
    # When the batch is read / Then its event comes back
    assert read_json_batch(body, SETTINGS) == [EVENT]


def test_an_event_naming_a_field_twice_is_kept_apart_for_the_event_check():
    # Given a batch whose first event names "event" twice and an unknown field twice
    raw = '[{"event": "start", "event": "end", "x": 1, "x": 2}, {"event": "end"}]'
    # When the batch is read
    items = read_json_batch(request(raw), SETTINGS)
    # Then the body is accepted, and the first item remembers which of its keys were repeated
    assert items == [{"event": "end", "x": 2}, {"event": "end"}]
    assert items[0].repeated == ["event", "x"]
    assert not hasattr(items[1], "repeated")
