"""HTTP against the served local gateway, on the real Cassandra and Redis: what a game client sees."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from player_sessions_local.local_auth import Signer
from tests.callers import StudioSignature, signer_of

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def iso(moment: datetime) -> str:
    return moment.isoformat()


def new_player() -> str:
    return uuid.uuid4().hex


def test_ingested_session_is_returned_in_the_players_history(served_api):
    # Given a player's session, its end sent before its start, in two requests
    player, session_id = new_player(), str(uuid.uuid4())
    now = datetime.now(UTC)
    with served_api.client() as client:
        end = {
            "event": "end",
            "player_id": player,
            "session_id": session_id,
            "ts": iso(now - timedelta(minutes=30)),
        }
        start = {**end, "event": "start", "ts": iso(now - timedelta(minutes=90)), "country": "fi"}
        first = client.post("/studio/events", json=[end])
        second = client.post("/studio/events", json=[start])
        # When the player's sessions are asked for
        history = client.get(f"/players/{player}/sessions")
    # Then both batches were stored and the session is there, with its values
    assert first.json() == {"stored": 1, "discarded": 0, "rejected": 0, "errors": []}
    assert second.status_code == 200
    assert history.status_code == 200
    body = history.json()
    assert body["player_id"] == player
    assert [(s["session_id"], s["country"], s["duration_seconds"]) for s in body["sessions"]] == [
        (session_id, "FI", 3600.0)
    ]
    assert body["sessions"][0]["end_ts"].endswith("Z")


def test_mixed_batch_is_207_and_keeps_the_valid_events(served_api):
    player, session_id = new_player(), str(uuid.uuid4())
    now = datetime.now(UTC)
    batch = [
        {"event": "start", "player_id": player, "session_id": session_id, "ts": iso(now), "country": "US"},
        {
            "event": "start",
            "player_id": "bad player",
            "session_id": str(uuid.uuid4()),
            "ts": iso(now),
            "country": "US",
        },
        {
            "event": "start",
            "player_id": player,
            "session_id": str(uuid.uuid4()),
            "ts": "2016-11-22T20:40:50",
            "country": "US",
        },
    ]
    with served_api.client() as client:
        response = client.post("/studio/events", json=batch)
    assert response.status_code == 207
    body = response.json()
    assert (body["stored"], body["discarded"], body["rejected"]) == (1, 1, 1)
    assert [(e["index"], e["status"], e["field"]) for e in body["errors"]] == [
        (1, "rejected", "player_id"),
        (2, "discarded", "ts"),
    ]


def test_batch_with_every_event_rejected_is_400(served_api):
    with served_api.client() as client:
        response = client.post("/studio/events", json=[{"event": "pause"}, {"event": "start"}])
    assert response.status_code == 400
    body = response.json()
    assert (body["stored"], body["rejected"]) == (0, 2)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "event"), (1, "player_id")]
    # And, as every error answer, a message (naming the fields at fault)
    assert body["message"] == "every event of the batch was rejected (fields: event, player_id); see errors"


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b'{"event": "start"', {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"[]", {"content-type": "application/json"}, 400, "at least one event"),
        (b"[1]", {"content-type": "text/plain"}, 415, "Content-Type must be application/json"),
        (b"[1]", {"content-type": "application/json; charset=iso-8859-1"}, 415, "must be UTF-8"),
        ('[{"event": "end"}]'.encode("utf-16"), {"content-type": "application/json"}, 400, "not valid JSON"),
        (json.dumps([{}] * 11).encode(), {"content-type": "application/json"}, 413, "limit is 10"),
        (b"[" + b" " * 17_000 + b"]", {"content-type": "application/json"}, 413, "limit is 16384"),
    ],
)
def test_unusable_bodies_are_refused_with_a_message(served_api, content, headers, status, message):
    with served_api.client() as client:
        response = client.post("/studio/events", content=content, headers=headers)
    assert response.status_code == status
    assert message in response.json()["message"]


def test_an_event_naming_a_field_twice_is_rejected_and_the_batch_keeps_the_others(served_api):
    # Given a batch whose first event says both "start" and "end", and a valid second event
    player, session = new_player(), str(uuid.uuid4())
    valid = {"event": "end", "player_id": player, "session_id": session, "ts": "2026-12-01T10:00:00Z"}
    start = {
        "event": "start",
        "player_id": player,
        "session_id": str(uuid.uuid4()),
        "ts": "2026-12-01T09:00:00Z",
    }
    twice = json.dumps({**start, "country": "FI"})[:-1] + ', "event": "end"}'
    content = f"[{twice}, {json.dumps(valid)}]".encode()
    # When it is posted
    with served_api.client() as client:
        response = client.post(
            "/studio/events", content=content, headers={"content-type": "application/json"}
        )
    # Then the first is rejected, naming the field and why, and the second is stored
    assert response.status_code == 207
    body = response.json()
    assert (body["stored"], body["rejected"]) == (1, 1)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "event")]
    assert "more than once" in body["errors"][0]["reason"]


def test_unknown_player_has_no_sessions(served_api):
    player = new_player()
    with served_api.client() as client:
        response = client.get(f"/players/{player}/sessions?limit=3")
    assert response.json() == {"player_id": player, "sessions": []}


def test_unknown_route_answers_like_api_gateway(served_api):
    with served_api.client() as client:
        response = client.get("/players")
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token", "errors": []}


def test_api_key_is_enforced_when_configured(served_api):
    with served_api.client(api_key=None) as client:
        missing = client.get("/health")
    with served_api.client(api_key="wrong") as client:
        wrong = client.get("/health")
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert missing.json() == {"message": "Forbidden", "errors": []}


def test_health_reports_cassandra_and_cache(served_api):
    with served_api.client() as client:
        response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["cassandra"]["status"] == "up" and body["cassandra"]["latency_ms"] >= 0
    assert body["cache"]["status"] == "up"


def test_every_route_refuses_a_missing_key_with_the_403_its_document_lists(served_api):
    # Given the checked-in document, and the served API (API Gateway requires the key on every method)
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    operations = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    # Then every operation documents the 403
    assert all("403" in document["paths"][path][method.lower()]["responses"] for method, path in operations)
    # And each one, asked without a key by a caller it lets in (a game client's token on POST /events,
    # administration's signature on the privacy routes, the studio's on the others), answers it with the
    # documented error body
    with (
        served_api.client(api_key=None) as studio,
        served_api.client(api_key=None, player="p1") as game,
        served_api.client(api_key=None, auth=StudioSignature(Signer.ADMIN)) as admin,
    ):
        for method, path in operations:
            concrete = (
                path.replace("{player_id}", "p1")
                .replace("{country}", "FI")
                .replace("{erasure_id}", str(uuid.uuid4()))
            )
            client = game if path == "/events" else studio
            if signer_of(method, concrete) is Signer.ADMIN:
                client = admin
            response = client.request(method, concrete, json=[] if method == "POST" else None)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"message": "Forbidden", "errors": []}


def test_without_cassandra_ingest_and_health_are_503_with_retry_after(api_without_cassandra):
    event = {"event": "end", "player_id": "p", "session_id": str(uuid.uuid4()), "ts": iso(datetime.now(UTC))}
    with api_without_cassandra.client() as client:
        ingest = client.post("/studio/events", json=[event])
        health = client.get("/health")
    assert ingest.status_code == 503
    assert int(ingest.headers["retry-after"]) > 0
    assert "Cassandra" in ingest.json()["message"]
    assert health.status_code == 503
    assert health.json()["cassandra"]["status"] == "down"
    assert int(health.headers["retry-after"]) > 0


def test_country_counts_and_pages_reflect_an_acknowledged_start(served_api):
    # Given the current counts, and a start in a country code used by no other test
    now = datetime.now(UTC)
    with served_api.client() as client:
        before = client.get("/countries/starts?hours=2").json()
        sessions = [str(uuid.uuid4()) for _ in range(3)]
        batch = [
            {
                "event": "start",
                "player_id": new_player(),
                "session_id": sid,
                "country": "zz",
                "ts": iso(now - timedelta(minutes=m)),
            }
            for sid, m in zip(sessions, (5, 50, 100), strict=True)
        ]
        assert client.post("/studio/events", json=batch).status_code == 200
        # When the counts and the country's pages are read
        after = client.get("/countries/starts?hours=2").json()
        first = client.get("/countries/zz/starts?hours=2&limit=2").json()
        second = client.get(f"/countries/ZZ/starts?hours=2&limit=2&cursor={first['next_cursor']}").json()
    # Then the new starts are counted and listed newest first, each once
    counts = {c["country"]: c["starts"] for c in after["countries"]}
    assert counts["ZZ"] == 3
    assert after["total"] == before["total"] + 3
    assert after["countries"] == sorted(after["countries"], key=lambda c: (-c["starts"], c["country"]))
    assert [s["session_id"] for s in first["sessions"] + second["sessions"]] == sessions
    assert second["next_cursor"] is None
    assert first["country"] == "ZZ" and first["from"].endswith("Z") and first["to"].endswith("Z")


def test_a_session_starts_once_for_one_player_and_is_counted_and_listed_once(served_api):
    # Given a stored start, in a country code used by no other test
    player, now = new_player(), datetime.now(UTC)
    first = {
        "event": "start",
        "player_id": player,
        "session_id": str(uuid.uuid4()),
        "country": "zq",
        "ts": iso(now - timedelta(minutes=2)),
    }
    with served_api.client() as client:
        assert client.post("/studio/events", json=[first]).status_code == 200
        # When the session is started again at another ts, in another country, by another player, and re-sent
        answer = client.post(
            "/studio/events",
            json=[
                {**first, "ts": iso(now - timedelta(minutes=1))},
                {**first, "country": "zr"},
                {**first, "player_id": new_player()},
                first,
            ],
        )
        counts = client.get("/countries/starts?hours=1").json()
        listed = client.get("/countries/ZQ/starts?hours=1").json()
    # Then the three contradictions are rejected naming the session, the re-send is stored harmlessly
    assert answer.status_code == 207
    assert answer.json()["stored"] == 1
    assert [(e["index"], e["status"]) for e in answer.json()["errors"]] == [(i, "rejected") for i in range(3)]
    assert all(e["reason"].startswith("session_id: ") for e in answer.json()["errors"])
    # And the session is counted and listed once, in its first country only
    by_country = {c["country"]: c["starts"] for c in counts["countries"]}
    assert (by_country.get("ZQ"), by_country.get("ZR")) == (1, None)
    assert [(s["session_id"], s["player_id"]) for s in listed["sessions"]] == [(first["session_id"], player)]


@pytest.mark.parametrize(
    ("path", "parameter", "where", "reason"),
    [
        ("/players/p-1/sessions?limit=0", "limit", "query", "greater than or equal to 1"),
        ("/players/p-1/sessions?limit=21", "limit", "query", "less than or equal to 20"),
        ("/players/p-1/sessions?limit=abc", "limit", "query", "whole number written with the digits 0-9"),
        ("/players/p-1/sessions?limit=5.0", "limit", "query", "whole number written with the digits 0-9"),
        ("/countries/starts?hours=0", "hours", "query", "greater than or equal to 1"),
        ("/countries/starts?hours=8761", "hours", "query", "less than or equal to 8760"),
        ("/countries/starts?hours=1.5", "hours", "query", "whole number written with the digits 0-9"),
        ("/countries/starts?hours=24.0", "hours", "query", "whole number written with the digits 0-9"),
        ("/countries/starts?hours=%2B24", "hours", "query", "whole number written with the digits 0-9"),
        ("/countries/starts?hours=%2024", "hours", "query", "whole number written with the digits 0-9"),
        ("/countries/starts?hours=1&hours=2", "hours", "query", "given more than once"),
        ("/countries/FIN/starts?hours=1", "country", "path", "must be an ISO 3166-1 alpha-2 code"),
        ("/players/a%20b/sessions", "player_id", "path", "must be 1 to 64 printable ASCII characters"),
        ("/countries/FI/starts?hours=1&limit=1001", "limit", "query", "less than or equal to 1000"),
        ("/countries/FI/starts?hours=1&cursor=forged", "cursor", "query", "not a cursor this API issued"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter_where_and_why(
    served_api, path, parameter, where, reason
):
    with served_api.client() as client:
        response = client.get(path)
    assert response.status_code == 400
    problem = response.json()["errors"][0]
    assert (problem["parameter"], problem["in"]) == (parameter, where)
    assert reason in problem["reason"]


@pytest.mark.parametrize(
    "path",
    [
        "/countries/starts",
        "/countries/starts?hours=",
        "/countries/FI/starts?limit=5",
        "/countries/session-lengths",
    ],
)
def test_a_missing_hours_is_refused_by_the_gateways_validator_naming_it(served_api, path):
    # When a required parameter is missing or blank
    with served_api.client() as client:
        response = client.get(path)
    # Then API Gateway's validator answers, as deployed (the template's method request requires it), before
    # the function runs
    assert response.status_code == 400
    assert response.json() == {"message": "Missing required request parameters: [hours]", "errors": []}
    assert response.headers["x-amzn-errortype"] == "BadRequestException"


def test_a_cursor_for_another_country_is_refused(served_api):
    with served_api.client() as client:
        batch = [
            {
                "event": "start",
                "player_id": new_player(),
                "session_id": str(uuid.uuid4()),
                "country": "zy",
                "ts": iso(datetime.now(UTC) - timedelta(minutes=m)),
            }
            for m in (1, 2)
        ]
        client.post("/studio/events", json=batch)
        cursor = client.get("/countries/zy/starts?hours=1&limit=1").json()["next_cursor"]
        response = client.get(f"/countries/FI/starts?hours=1&cursor={cursor}")
    assert response.status_code == 400
    assert "another query" in response.json()["message"]


def test_each_execution_environment_reports_an_init_duration_on_its_cold_start_only(served_api):
    # Given the served gateway (a pool of environments), asked twice in a row for /health
    with served_api.client() as client:
        assert [client.get("/health").status_code for _ in range(2)] == [200, 200]
    # When its log is read
    reports: dict[str, list[str]] = {}
    for line in served_api.log_file.read_text().splitlines():
        match = re.search(r" (\w+#\d+) (REPORT RequestId: .*)", line)
        if match:
            reports.setdefault(match.group(1), []).append(match.group(2))
    # Then every environment's first REPORT has an Init Duration and no later one has, and a health
    # environment served more than one invocation warm
    assert reports, "no REPORT line in the gateway's log"
    for environment, lines in reports.items():
        assert "Init Duration: " in lines[0], environment
        assert not any("Init Duration: " in line for line in lines[1:]), environment
        assert all("Billed Duration: " in line and "Max Memory Used: " in line for line in lines)
    assert any(len(lines) >= 2 for name, lines in reports.items() if name.startswith("player_sessions#"))
