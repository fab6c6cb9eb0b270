"""What a warm environment's log lines carry: the keys one request appended never reach the next one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from functions.player_sessions.handler import lambda_handler, logger
from player_sessions.bootstrap import use_services
from player_sessions_local.gateway.in_process import LocalLambdaContext
from tests.fakes import in_memory_services

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_a_request_that_fails_validation_is_not_logged_with_the_previous_requests_player():
    services = in_memory_services(datetime(2026, 11, 28, tzinfo=UTC))
    query = json.loads((EVENTS / "player_sessions_query.json").read_text())
    bad_limit = json.loads((EVENTS / "player_sessions_bad_limit.json").read_text())
    bad_limit["pathParameters"]["player_id"] = bad_limit["path"].split("/")[2] = "someone_else"
    with use_services(services):
        # Given a warm environment that answered a player's history (its logger then carries the player's id)
        assert lambda_handler(query, LocalLambdaContext(function_name="player_sessions"))["statusCode"] == 200
        assert logger.get_current_keys()["player_id"] == query["pathParameters"]["player_id"]
        # When its next request is refused before the route runs
        response = lambda_handler(bad_limit, LocalLambdaContext(function_name="player_sessions"))
    # Then that request's log keys name no player
    assert response["statusCode"] == 400
    assert "player_id" not in logger.get_current_keys()
