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
    assert read_json_batch(request(json.dumps([EVENT, EVENT])), SETTINGS) == [EVENT, EVENT]


def test_content_type_with_charset_and_any_header_case_is_accepted():
    event = APIGatewayProxyEvent(
        {"headers": {"content-type": "Application/JSON; charset=utf-8"}, "body": json.dumps([EVENT])}
    )
    assert read_json_batch(event, SETTINGS) == [EVENT]


def test_base64_bodies_are_decoded():
    assert read_json_batch(request(json.dumps([EVENT]).encode(), base64_body=True), SETTINGS) == [EVENT]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_body_not_declared_as_json_is_415(content_type):
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        read_json_batch(request(json.dumps([EVENT]), content_type), SETTINGS)
    assert caught.value.status_code == 415
    assert caught.value.errors[0]["parameter"] == "Content-Type"


def test_a_body_over_16_kib_is_413_before_it_is_parsed():
    body = "[" + " " * (16 * 1024) + "]"
    with pytest.raises(PayloadTooLargeError, match="limit is 16384") as caught:
        read_json_batch(request(body), SETTINGS)
    assert caught.value.status_code == 413


def test_more_events_than_the_batch_limit_is_413():
    with pytest.raises(PayloadTooLargeError, match="11 events; the limit is 10"):
        read_json_batch(request(json.dumps([EVENT] * 11)), SETTINGS)


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
    settings = Settings(max_body_bytes=1024 * 1024)
    with pytest.raises(BadRequestError, match=message) as caught:
        read_json_batch(request(body), settings)
    assert caught.value.status_code == 400
    assert reason in caught.value.errors[0]["reason"]
