"""Who may call what, through the served gateway with its checks on, as `make serve` runs it (docs/security.md):
a game client's token from the local issuer, checked by the authorizer function in its own environments; the
studio's SigV4 signatures, verified against the local access keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from player_sessions_local import local_auth
from tests.callers import PlayerToken, StudioSignature
from tests.e2e.conftest import ServedApi, serve, stop

pytestmark = pytest.mark.e2e


def new_player() -> str:
    return f"player-{uuid.uuid4().hex[:12]}"


def session(player: str, minutes_ago: int = 30, country: str = "SE") -> list[dict]:
    session_id, start = str(uuid.uuid4()), datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return [
        {
            "event": "start",
            "player_id": player,
            "session_id": session_id,
            "country": country,
            "ts": start.isoformat(),
        },
        {
            "event": "end",
            "player_id": player,
            "session_id": session_id,
            "ts": (start + timedelta(minutes=20)).isoformat(),
        },
    ]


def history(api: ServedApi, player: str) -> list[str]:
    with api.client() as studio:
        answer = studio.get(f"/players/{player}/sessions")
    assert answer.status_code == 200, answer.text
    return [s["session_id"] for s in answer.json()["sessions"]]


def test_a_client_token_posting_for_another_player_has_that_event_rejected_and_the_others_stored(served_api):
    # Given a game client signed in as one player, and a batch with another player's session in the middle
    mine, theirs = new_player(), new_player()
    own_session, their_session = session(mine), session(theirs)
    batch = [own_session[0], *their_session, own_session[1]]

    # When the client posts it
    with served_api.client(player=mine) as client:
        answer = client.post("/events", json=batch)

    # Then the other player's two events are rejected by name, and the client's own session is stored
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert (body["stored"], body["rejected"]) == (2, 2)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "player_id"), (2, "player_id")]
    assert history(served_api, mine) == [own_session[0]["session_id"]]
    assert history(served_api, theirs) == []


def test_a_client_token_cannot_read(served_api):
    player = new_player()
    with served_api.client(player=player) as client:
        for path in (
            f"/players/{player}/sessions",
            "/countries/starts?hours=1",
            "/countries/SE/starts?hours=1",
        ):
            answer = client.get(path)
            assert answer.status_code == 403, (path, answer.text)
            assert "Authorization header requires 'Credential' parameter" in answer.json()["message"]


def test_an_unsigned_read_is_refused(served_api):
    with served_api.client(auth=httpx.Auth()) as anonymous:
        answer = anonymous.get("/countries/starts?hours=24")

    assert answer.status_code == 403
    assert answer.json() == {"message": "Missing Authentication Token", "errors": []}


class TamperedAfterSigning(httpx.Auth):
    """Signs the request, then changes its query, as a man in the middle would."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        signed = next(StudioSignature().auth_flow(request))
        signed.url = signed.url.copy_with(query=b"hours=8760")
        yield signed


def test_a_tampered_signature_is_refused(served_api):
    with served_api.client(auth=TamperedAfterSigning()) as client:
        answer = client.get("/countries/starts?hours=1")

    assert answer.status_code == 403
    assert answer.json()["message"].startswith("The request signature we calculated does not match")


def test_a_studio_signed_read_gets_the_data(served_api):
    # Given a player's session stored by the studio's servers, signed, for that player
    player = new_player()
    with served_api.client() as studio:
        stored = studio.post("/studio/events", json=session(player, country="NO"))
    assert stored.status_code == 200, stored.text

    # When the studio reads the player's history and the country's starts, signed
    with served_api.client() as studio:
        sessions = studio.get(f"/players/{player}/sessions")
        starts = studio.get("/countries/NO/starts?hours=2&limit=1000")

    # Then both answer with it
    assert sessions.status_code == 200
    assert [s["duration_seconds"] for s in sessions.json()["sessions"]] == [1200]
    assert starts.status_code == 200
    assert player in {s["player_id"] for s in starts.json()["sessions"]}


def test_an_expired_token_is_401(served_api):
    player = new_player()
    expired = PlayerToken(player, now=datetime.now(UTC) - timedelta(hours=1), minutes=15)
    with served_api.client(auth=expired) as client:
        answer = client.post("/events", json=session(player))

    assert answer.status_code == 401
    assert answer.json() == {"message": "Unauthorized", "errors": []}
    assert history(served_api, player) == []


@pytest.mark.parametrize(
    "auth",
    [httpx.Auth(), StudioSignature(), PlayerToken(new_player(), claims={"aud": "another-game"})],
    ids=["no token", "a studio signature", "a token for another audience"],
)
def test_posting_events_as_a_game_client_takes_a_valid_player_token(served_api, auth):
    player = new_player()
    with served_api.client(auth=auth) as client:
        answer = client.post("/events", json=session(player))

    assert answer.status_code == 401
    assert history(served_api, player) == []


def test_the_studio_posts_for_any_player_and_a_token_cannot_use_the_studios_route(served_api):
    players = [new_player() for _ in range(3)]
    with served_api.client() as studio:
        answer = studio.post("/studio/events", json=[e for p in players for e in session(p)])
    with served_api.client(player=players[0]) as client:
        refused = client.post("/studio/events", json=session(players[0]))

    assert answer.status_code == 200
    assert answer.json()["stored"] == 6
    assert all(len(history(served_api, p)) == 1 for p in players)
    assert refused.status_code == 403


def test_the_administrations_key_does_not_read_the_studios_data(served_api):
    with served_api.client(auth=StudioSignature(local_auth.Signer.ADMIN)) as admin:
        answer = admin.get("/countries/starts?hours=1")

    assert answer.status_code == 403
    assert "user/admin is not authorized to perform: execute-api:Invoke" in answer.json()["message"]


@pytest.fixture(scope="module")
def unchecked_api(cassandra_connection, tmp_path_factory) -> Iterator[ServedApi]:
    api = serve({"PLAYER_SESSIONS_LOCAL_AUTH": "off"}, tmp_path_factory.mktemp("unchecked") / "gateway.log")
    yield api
    stop(api)


def test_with_checks_off_anyone_reads_and_posts_for_any_player_and_the_banner_says_so(unchecked_api):
    player = new_player()
    with unchecked_api.client(auth=httpx.Auth()) as anonymous:
        posted = anonymous.post("/events", json=session(player))
        read = anonymous.get(f"/players/{player}/sessions")

    assert posted.status_code == 200
    assert len(read.json()["sessions"]) == 1
    assert "CHECKS OFF (PLAYER_SESSIONS_LOCAL_AUTH=off)" in unchecked_api.log_file.read_text()
