"""What a warm environment's log lines carry: no player id (personal data, erased on request, while logs are
kept a year), and the keys one request appended never reach the next one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from functions.country_starts import handler as country_starts
from functions.player_sessions import handler as player_sessions
from player_sessions.bootstrap import use_services
from player_sessions_local.gateway.in_process import LocalLambdaContext
from tests.fakes import in_memory_services

EVENTS = Path(__file__).resolve().parents[2] / "events"


def fixture(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def test_a_players_history_is_answered_without_the_player_id_in_the_log_keys():
    services = in_memory_services(datetime(2026, 11, 28, tzinfo=UTC))
    query = fixture("player_sessions_query")
    with use_services(services):
        # When a player's history is asked
        response = player_sessions.lambda_handler(query, LocalLambdaContext(function_name="player_sessions"))
    # Then the keys every line of the request carries do not name the player
    assert response["statusCode"] == 200
    player_id = query["pathParameters"]["player_id"]
    assert player_id not in json.dumps(player_sessions.logger.get_current_keys())


def test_a_request_that_fails_validation_is_not_logged_with_the_previous_requests_country():
    services = in_memory_services(datetime(2026, 11, 28, tzinfo=UTC))
    page = fixture("country_starts_page")
    bad_hours = fixture("country_starts_bad_hours")
    context = LocalLambdaContext(function_name="country_starts")
    with use_services(services):
        # Given a warm environment that answered a country's page (its logger then carries the country)
        assert country_starts.lambda_handler(page, context)["statusCode"] == 200
        assert (
            country_starts.logger.get_current_keys()["country"] == page["pathParameters"]["country"].upper()
        )
        # When its next request is refused before the route runs
        response = country_starts.lambda_handler(bad_hours, context)
    # Then that request's log keys name no country
    assert response["statusCode"] == 400
    assert "country" not in country_starts.logger.get_current_keys()
