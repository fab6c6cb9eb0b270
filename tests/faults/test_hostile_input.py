"""Hostile input through the served gateway: oversize and deeply nested bodies, huge numbers, unicode and
control characters in ids, wrong types, a wrong API key. Each is a 4xx that says why; nothing is stored."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import ServedApi, serve, stop
from tests.faults.conftest import API_KEY

pytestmark = pytest.mark.faults

JSON = {"content-type": "application/json"}


def valid_start(session_id: str | None = None) -> dict:
    """A start that would be stored: it proves that a refused body stores nothing, not even its valid part."""
    return {
        "event": "start",
        "player_id": "hostile-canary",
        "session_id": session_id or str(uuid.uuid4()),
        "country": "HX",
        "ts": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    }


def stored_session_ids(cassandra_session, session_ids: list[str]) -> list[str]:
    lookup = cassandra_session.prepare("SELECT session_id FROM sessions WHERE session_id = ?")
    return [s for s in session_ids if cassandra_session.execute(lookup, (uuid.UUID(s),)).one() is not None]


def body_with_canary(template: str) -> tuple[bytes, str]:
    canary = valid_start()
    return template.replace("CANARY", json.dumps(canary)).encode(), canary["session_id"]


@pytest.mark.parametrize(
    ("template", "status", "message", "reason"),
    [
        ('[CANARY, {"pad": "' + "x" * 17_000 + '"}]', 413, "the limit is 16384", "larger than 16384 bytes"),
        ("[CANARY, " + "[" * 5_000 + "]" * 5_000 + "]", 400, "not valid JSON", "nested too deeply"),
        ("[CANARY, " + "9" * 5_000 + "]", 400, "not valid JSON", "integer"),
        ('[CANARY, "\x00"]', 400, "not valid JSON", "control character"),
        ('{"events": [CANARY]}', 400, "must be a JSON array", "must be a JSON array"),
        ("[" + ", ".join(["CANARY"] * 11) + "]", 413, "limit is 10", "more than 10 events"),
        ("[CANARY, NaN]", 400, "not valid JSON", "NaN is not a JSON value"),
        ("[CANARY, -Infinity]", 400, "not valid JSON", "-Infinity is not a JSON value"),
    ],
    ids=[
        "over-16-KiB",
        "nested-5000-deep",
        "5000-digit-number",
        "raw-NUL",
        "object-not-array",
        "11-events",
        "NaN",
        "-Infinity",
    ],
)
def test_an_unusable_body_is_refused_whole_with_a_reason_and_stores_nothing(
    hostile_api, cassandra_session, *, template, status, message, reason
):
    # Given a body that holds a valid event but is unusable as a whole
    body, canary = body_with_canary(template)
    # When it is posted
    with hostile_api.client() as client:
        response = client.post("/studio/events", content=body, headers=JSON)
    # Then it is refused with the reason, and not even the valid event is stored
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert reason in response.json()["errors"][0]["reason"]
    assert stored_session_ids(cassandra_session, [canary]) == []


def test_a_body_over_api_gateways_10_mib_is_refused_by_the_gateway_and_stores_nothing(
    hostile_api, cassandra_session
):
    body, canary = body_with_canary('[CANARY, {"pad": "' + "x" * (11 * 1024 * 1024) + '"}]')
    with hostile_api.client() as client:
        response = client.post("/studio/events", content=body, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long", "errors": []}
    assert stored_session_ids(cassandra_session, [canary]) == []


def test_bytes_that_are_not_utf_8_are_400_and_store_nothing(hostile_api, cassandra_session):
    body, canary = body_with_canary('[CANARY, {"player_id": "\xff\xfe"}]')
    body = body.replace("\xff\xfe".encode(), b"\xff\xfe")  # raw bytes, not their UTF-8 encoding
    with hostile_api.client() as client:
        response = client.post("/studio/events", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["message"] == "body is not valid JSON"
    assert stored_session_ids(cassandra_session, [canary]) == []


def hostile_events() -> list[tuple[str, dict, str]]:
    """(what, event, the field named in its rejection), one per rule that a hostile value meets."""

    def start(**fields) -> dict:
        return {**valid_start(), "player_id": uuid.uuid4().hex, **fields}

    return [
        ("NUL in player_id", start(player_id="p\x00"), "player_id"),
        ("right-to-left override in player_id", start(player_id="\u202eevil"), "player_id"),
        ("emoji player_id", start(player_id="\U0001f600"), "player_id"),
        ("lone surrogate in player_id", start(player_id="\ud800"), "player_id"),
        ("65-character player_id", start(player_id="p" * 65), "player_id"),
        (
            "full-width digits in session_id",
            start(session_id="６７４６０６ｂ１-2270-4285-928f-eef4a6b90a60"),
            "session_id",
        ),
        ("Kelvin sign in country", start(country="\u212aE"), "country"),
        ("ts a huge number", start(ts=1e308), "ts"),
        ("ts in the year 99999", start(ts="99999-01-01T00:00:00"), "ts"),
        ("ts in year 0 once in UTC", start(ts="0001-01-01T00:00:00+01:00"), "ts"),
        ("ts in year 10000 once in UTC", start(ts="9999-12-31T23:30:00-01:00"), "ts"),
        ("event a boolean", start(event=True), "event"),
    ]


def test_events_with_hostile_values_are_each_rejected_naming_the_field_and_none_is_stored(
    hostile_api, cassandra_session
):
    # Given batches (of at most ten, the limit) in which every event breaks one rule with a hostile value
    cases = hostile_events()
    batches = [cases[start : start + 10] for start in range(0, len(cases), 10)]
    # When they are posted
    with hostile_api.client() as client:
        responses = [
            client.post("/studio/events", content=json.dumps([e for _, e, _ in batch]).encode(), headers=JSON)
            for batch in batches
        ]
    # Then each is 400, each event rejected with its field named, and nothing stored
    for batch, response in zip(batches, responses, strict=True):
        assert response.status_code == 400, response.text
        result = response.json()
        assert (result["stored"], result["rejected"]) == (0, len(batch))
        assert [(e["index"], e["status"], e["field"]) for e in result["errors"]] == [
            (index, "rejected", field) for index, (_, _, field) in enumerate(batch)
        ]
        assert all(e["reason"] for e in result["errors"])
    ids = [
        event["session_id"]
        for _, event, _ in cases
        if isinstance(event["session_id"], str) and event["session_id"].isascii()
    ]
    assert stored_session_ids(cassandra_session, ids) == []


def test_values_of_the_wrong_type_are_each_rejected_with_the_type_they_had(hostile_api):
    all_wrong = {"event": "start", "player_id": 5, "session_id": ["x"], "country": {"a": 1}, "ts": False}
    items = [None, "start", 17, [], all_wrong]
    with hostile_api.client() as client:
        response = client.post("/studio/events", json=items)
    result = response.json()
    assert response.status_code == 400
    assert result["rejected"] == len(items)
    assert [e["reason"].rsplit(", got ", 1)[1] for e in result["errors"][:4]] == [
        "null",
        "a string",
        "a number",
        "an array",
    ]
    assert all(e["reason"].startswith("event: each item must be a JSON object") for e in result["errors"][:4])
    assert result["errors"][4]["field"] == "player_id"
    assert all(
        f"{field}: must be" in result["errors"][4]["reason"]
        for field in ("player_id", "session_id", "ts", "country")
    )


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/players/" + "p" * 65 + "/sessions", "player_id"),
        ("/players/%00/sessions", "player_id"),
        ("/players/p%0Aq/sessions", "player_id"),
        ("/players/%F0%9F%98%80/sessions", "player_id"),
        ("/players/%FF%FE/sessions", "player_id"),
        ("/players/p/sessions?limit=99999999999999999999999999", "limit"),
        ("/players/p/sessions?limit=%D9%A1", "limit"),
        ("/countries/starts?hours=1e3", "hours"),
        ("/countries/starts?hours=5%00", "hours"),
        ("/countries/starts?hours=%EF%BC%91", "hours"),
        ("/countries/S%00/starts?hours=1", "country"),
        ("/countries/%C3%A9E/starts?hours=1", "country"),
        ("/countries/SE/starts?hours=1&cursor=" + "A" * 600, "cursor"),
        ("/countries/SE/starts?hours=1&cursor=not-a-cursor", "cursor"),
    ],
)
def test_hostile_parameters_are_400_naming_the_parameter(hostile_api, path, parameter):
    with hostile_api.client() as client:
        response = client.get(path)
    assert response.status_code == 400, response.text
    assert [problem["parameter"] for problem in response.json()["errors"]] == [parameter]
    assert response.json()["message"]


@pytest.fixture(scope="module")
def unchecked_api(cassandra_connection, tmp_path_factory) -> Iterator[ServedApi]:
    api = serve({"PLAYER_SESSIONS_LOCAL_AUTH": "off"}, tmp_path_factory.mktemp("unchecked") / "gateway.log")
    yield api
    stop(api)


@pytest.mark.parametrize(
    ("method", "path", "parameter"),
    [
        ("GET", b"/players/\xc3\xa9/sessions", "player_id"),
        ("GET", b"/players/\xff/sessions", "player_id"),
        ("GET", b"/players/a\xc2\xa9/export", "player_id"),
        ("POST", b"/players/\xc3\xa9/erasure", "player_id"),
        ("GET", b"/countries/\xc3\xa9\xc3\xa9/starts?hours=1", "country"),
        ("GET", b"/erasures/\xc2\xa9", "erasure_id"),
    ],
)
def test_raw_bytes_outside_ascii_in_a_path_are_400_naming_the_parameter(
    unchecked_api, method, path, parameter
):
    # Given a request line with bytes a client should have percent-encoded (sent as is: no client fixes it, and
    # none can sign it, so the gateway checks no caller here and the function gets the path)
    host, port = unchecked_api.base_url.removeprefix("http://").split(":")
    request = method.encode() + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    request += b"x-api-key: " + API_KEY.encode() + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request + b"Content-Length: 0\r\n\r\n")
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    # Then the parameter's own rule refuses it (the function once matched no route: a 500)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", answer
    assert [problem["parameter"] for problem in json.loads(body)["errors"]] == [parameter]


def test_a_player_id_with_reserved_characters_is_read_back_through_its_percent_encoded_path(hostile_api):
    # Given a completed session of a player whose id holds characters a URL must percent-encode
    player = "a|b/c%d?e#f"
    session = [{**valid_start(), "player_id": player, "country": "HY"}]
    session.append({**session[0], "event": "end", "ts": datetime.now(UTC).isoformat()})
    with hostile_api.client() as client:
        assert client.post("/studio/events", json=session).json()["stored"] == 2
        # When the history is asked for with the id percent-encoded
        response = client.get("/players/a%7Cb%2Fc%25d%3Fe%23f/sessions")
    # Then it is that player's, with the session
    assert response.status_code == 200, response.text
    assert response.json()["player_id"] == player
    assert [s["session_id"] for s in response.json()["sessions"]] == [session[0]["session_id"]]


@pytest.mark.parametrize("api_key", [None, "", "wrong", API_KEY.upper(), f"{API_KEY}x", API_KEY[:-1]])
def test_a_batch_without_the_configured_api_key_is_403_and_stores_nothing(
    hostile_api, cassandra_session, api_key
):
    # Given a valid batch
    event = valid_start()
    # When it is posted without the key, or with a wrong one
    headers = {**JSON} if api_key is None else {**JSON, "x-api-key": api_key}
    with hostile_api.client(api_key=None) as client:
        response = client.post("/studio/events", content=json.dumps([event]).encode(), headers=headers)
    # Then the gateway answers 403 as API Gateway does, and the event is not stored
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden", "errors": []}
    assert response.headers["x-amzn-errortype"] == "ForbiddenException"
    assert stored_session_ids(cassandra_session, [event["session_id"]]) == []
