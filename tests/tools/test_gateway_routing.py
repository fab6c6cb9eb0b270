"""API Gateway's side of a request before the integration, without a server: which resource and method a path
matches, and the REST API (payload v1) proxy event the function receives. The same over HTTP, through the
served gateway, is in tests/e2e/test_local_gateway_http.py."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from player_sessions.routes import ROUTES, Caller, LambdaFunction, Route
from player_sessions_local.gateway.routing import (
    HttpRequest,
    RequestStamp,
    build_proxy_event,
    extended_request_id,
    match_route,
)

STAMP = RequestStamp(
    request_id="2f1c6b8e-9d3a-4c57-8e1f-0a2b3c4d5e6f",
    extended_request_id=extended_request_id(b"fixed-seed-1"),
    received_at=datetime(2026, 11, 28, 10, 0, 0, 250_000, tzinfo=UTC),
)


def http_request(
    raw_path: str,
    *,
    method: str = "GET",
    query: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> HttpRequest:
    return HttpRequest(
        method=method, raw_path=raw_path, query=query, headers=headers, body=body, source_ip="198.51.100.7"
    )


def proxy_event(request: HttpRequest, stamp: RequestStamp = STAMP) -> dict[str, Any]:
    """The event for a request that the real route table routes to a function."""
    match = match_route(ROUTES, request.method, request.raw_path)
    assert match is not None and match.route is not None, "the request must route to a function"
    return build_proxy_event(request, match, stamp)


# --- Routing ---------------------------------------------------------------------------------------------


def test_literal_segment_wins_over_a_path_parameter():
    # Given a route table with a literal resource and a parameter resource at the same place
    function = LambdaFunction("any", "any")
    routes = (
        Route("GET", "/countries/{country}", function, Caller.STUDIO),
        Route("GET", "/countries/starts", function, Caller.STUDIO),
    )
    # When /countries/starts is routed
    match = match_route(routes, "GET", "/countries/starts")
    # Then the literal resource is chosen, with no path parameters
    assert match is not None
    assert match.resource == "/countries/starts"
    assert match.path_parameters == {}


@pytest.mark.parametrize("path", ["/nowhere", "/players//sessions", "players/p1/sessions"])
def test_a_path_no_resource_defines_matches_nothing(path):
    # Given the route table
    # When a path that no resource template fits is routed (an unknown one, an empty parameter, no slash)
    match = match_route(ROUTES, "GET", path)
    # Then there is no match at all
    assert match is None


def test_a_known_path_with_a_method_it_does_not_define_matches_the_resource_but_no_route():
    # Given the route table, where /events is POST only
    # When DELETE /events is routed
    match = match_route(ROUTES, "DELETE", "/events")
    # Then the resource is found, without a route to a function
    assert match is not None
    assert (match.resource, match.route) == ("/events", None)


# --- The proxy event -------------------------------------------------------------------------------------


def test_event_names_the_resource_template_keeps_the_path_as_sent_and_decodes_the_parameter():
    # Given a request for a player's sessions with a percent-encoded id
    request = http_request("/players/abc%20d%2Be/sessions")
    # When its proxy event is built
    event = proxy_event(request)
    # Then the event names the template, keeps the path as sent, and decodes the parameter
    assert event["resource"] == "/players/{player_id}/sessions"
    assert event["path"] == "/players/abc%20d%2Be/sessions"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"player_id": "abc d+e"}


def test_repeated_query_names_and_headers_give_the_last_value_and_every_value():
    # Given a request that repeats a query name and a header, with a blank query value
    request = http_request(
        "/players/p1/sessions",
        query="limit=5&tag=a&tag=b%20c&empty=",
        headers=[("X-Client-Version", "1.0"), ("X-Client-Version", "1.1")],
    )
    # When its proxy event is built
    event = proxy_event(request)
    # Then the single-value views keep the last value and the multi-value views keep all, decoded
    assert event["queryStringParameters"] == {"limit": "5", "tag": "b c", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"limit": ["5"], "tag": ["a", "b c"], "empty": [""]}
    assert event["headers"] == {"X-Client-Version": "1.1"}
    assert event["multiValueHeaders"] == {"X-Client-Version": ["1.0", "1.1"]}


def test_absent_query_path_parameters_and_body_are_null():
    # Given a request to a route without parameters, with no query and no body
    request = http_request("/health")
    # When its proxy event is built
    event = proxy_event(request)
    # Then those fields are null, as API Gateway sends them
    assert_nothing_but_the_route(event)


def assert_nothing_but_the_route(event: dict) -> None:
    """No query, path parameter, stage variable or body: null, as API Gateway sends them."""
    nulls = (
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "body",
    )
    assert {name: event[name] for name in nulls} == dict.fromkeys(nulls)
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("body", "expected_body", "is_base64_encoded"),
    [
        (b'[{"event": "end"}]', '[{"event": "end"}]', False),
        (b"\xff\xfe\x00binary", base64.b64encode(b"\xff\xfe\x00binary").decode(), True),
    ],
    ids=["utf-8-text", "not-utf-8"],
)
def test_a_text_body_is_passed_as_a_string_and_any_other_base64_encoded(
    body, expected_body, is_base64_encoded
):
    # Given a posted batch whose body is UTF-8 text, or bytes that are not
    request = http_request("/events", method="POST", body=body)
    # When its proxy event is built
    event = proxy_event(request)
    # Then text arrives as it is, other bytes base64-encoded and flagged so
    assert (event["body"], event["isBase64Encoded"]) == (expected_body, is_base64_encoded)


def test_request_context_carries_the_stage_the_stamps_ids_and_clock_and_the_caller():
    # Given a request through a host name, from a game client
    request = http_request(
        "/players/p1/sessions",
        headers=[("Host", "abc123.execute-api.local"), ("User-Agent", "game-client/9")],
    )
    # When its proxy event is built with a stamp API Gateway gave it
    context = proxy_event(request)["requestContext"]
    # Then the request context is API Gateway's for the local stage, with the stamp's ids and time
    assert (context["accountId"], context["apiId"], context["stage"]) == ("123456789012", "local", "local")
    assert context["resourcePath"] == "/players/{player_id}/sessions"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/local/players/p1/sessions"
    assert context["protocol"] == "HTTP/1.1"
    assert context["requestId"] == STAMP.request_id
    assert context["extendedRequestId"] == STAMP.extended_request_id
    assert context["requestTimeEpoch"] == 1_795_860_000_250
    assert context["requestTime"] == "28/Nov/2026:10:00:00 +0000"
    assert (context["domainName"], context["domainPrefix"]) == ("abc123.execute-api.local", "abc123")
    assert context["identity"]["sourceIp"] == "198.51.100.7"
    assert context["identity"]["userAgent"] == "game-client/9"
    assert (context["identity"]["apiKey"], context["identity"]["apiKeyId"]) == (None, None)


def test_the_api_key_api_gateway_validated_is_named_in_the_identity():
    # Given a stamp carrying the API key the gateway checked
    stamp = RequestStamp(
        request_id=STAMP.request_id,
        extended_request_id=STAMP.extended_request_id,
        received_at=STAMP.received_at,
        api_key="s3cret",
    )
    # When a request's proxy event is built with it
    identity = proxy_event(http_request("/health"), stamp)["requestContext"]["identity"]
    # Then the identity names the key and an id for it
    assert identity["apiKey"] == "s3cret"
    assert identity["apiKeyId"]


def test_event_passes_powertools_rest_proxy_event_model():
    # Given a posted batch with a query string
    request = http_request(
        "/events",
        method="POST",
        query="dry=1",
        headers=[("Content-Type", "application/json")],
        body=b'[{"event": "end"}]',
    )
    # When its proxy event is built
    event = proxy_event(request)
    # Then Powertools' own model of a REST proxy event accepts it
    model = APIGatewayProxyEventModel.model_validate(event)
    assert model.resource == "/events"
    assert model.queryStringParameters == {"dry": "1"}
