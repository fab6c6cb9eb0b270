"""Each function runs as a Cassandra role holding exactly its deployed grants: take one grant away, and the route
that needs it fails through the served gateway as it would deployed; give it back, and the route serves again."""

from __future__ import annotations

import time
import uuid

import pytest

from player_sessions.repositories.cql import Access
from player_sessions.routes import PLAYER_SESSIONS
from player_sessions_local.cassandra_roles import expected_grants, grant_function_roles, revoke, role_of
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


def test_a_grant_on_the_whole_keyspace_or_every_keyspace_is_taken_back_by_the_sync(cassandra_session):
    # Given a function's role granted, by hand, reads on the whole keyspace and writes on every keyspace
    role = role_of(PLAYER_SESSIONS)
    cassandra_session.execute(f"GRANT SELECT ON KEYSPACE {TEST_KEYSPACE} TO {role}")
    cassandra_session.execute(f"GRANT MODIFY ON ALL KEYSPACES TO {role}")
    # When the roles are synced with the statement of access (as `make up` and the schema tool do)
    grant_function_roles(cassandra_session, TEST_KEYSPACE, [PLAYER_SESSIONS])
    # Then only its table grants are left
    held = {
        (row.permission, row.resource)
        for row in cassandra_session.execute(f"LIST ALL PERMISSIONS OF {role} NORECURSIVE")
    }
    assert {resource for _, resource in held if not resource.startswith("<table ")} == set()
    ours = {
        (p, r.removeprefix("<table ").removesuffix(">"))
        for p, r in held
        if r.startswith(f"<table {TEST_KEYSPACE}.")
    }
    assert ours == (expected_grants(TEST_KEYSPACE, PLAYER_SESSIONS))
