"""Each function runs as a Cassandra role holding exactly its deployed grants: take one grant away, and the route
that needs it fails through the served gateway as it would deployed; give it back, and the route serves again."""

from __future__ import annotations

import time
import uuid

import pytest

from player_sessions.repositories.cql import Access
from player_sessions.routes import PLAYER_SESSIONS
from player_sessions_local.cassandra_roles import grant_function_roles, revoke
from tests.conftest import TEST_KEYSPACE

pytestmark = pytest.mark.e2e

PERMISSIONS_CACHE_SECONDS = 2
"""cassandra.yaml's permissions_validity: a revoke reaches the node's checks within it."""


def status_of_history(client) -> tuple[int, dict]:
    # A player no one has seen: never answered from the cache, always read from Cassandra.
    response = client.get(f"/players/{uuid.uuid4().hex}/sessions")
    return response.status_code, response.json()


def wait_for_status(client, status: int) -> tuple[int, dict]:
    deadline = time.monotonic() + PERMISSIONS_CACHE_SECONDS * 5
    answer = status_of_history(client)
    while answer[0] != status and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = status_of_history(client)
    return answer


def test_a_route_whose_function_lost_its_grant_fails_and_serves_again_once_given_back(
    served_api, cassandra_session
):
    with served_api.client() as client:
        # Given the player sessions route serving under its function's role
        status, body = status_of_history(client)
        assert (status, body["sessions"]) == (200, [])
        # When its history's grant (Select on completed_sessions_by_player) is revoked
        revoke(
            cassandra_session, PLAYER_SESSIONS, Access.SELECT, "completed_sessions_by_player", TEST_KEYSPACE
        )
        try:
            status, body = wait_for_status(client, 503)
            # Then the route answers 503, naming what could not be done (Cassandra refused the read)
            assert status == 503
            assert "read the player's sessions" in body["message"]
        finally:
            # When the grant is given back (as the schema tool gives it) / Then the route serves again
            grant_function_roles(cassandra_session, TEST_KEYSPACE, [PLAYER_SESSIONS])
        assert wait_for_status(client, 200)[0] == 200
