"""The local gateway behaves like API Gateway (REST API, proxy payload v1) in front of fake handlers, over
HTTP: each test serves the gateway on a free local port and talks to it with an HTTP client.

No Cassandra or Redis: handlers are injected. Routing and the proxy event itself are checked without a server
in tests/unit/test_gateway_routing.py.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from player_sessions.routes import ROUTES, Caller, LambdaFunction, Route
from player_sessions_local.gateway import create_server
from player_sessions_local.gateway.throttling import TokenBucket, usage_plan_bucket
from tests.tools.test_gateway_routing import assert_nothing_but_the_route

pytestmark = pytest.mark.e2e

OK_RESPONSE = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


class RecordingHandler:
    """A stand-in lambda_handler: remembers what it was called with, answers with a canned result."""

    def __init__(self, result: Any = OK_RESPONSE, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.calls: list[tuple[dict[str, Any], Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.calls.append((event, context))
        if self.error is not None:
            raise self.error
        return self.result

    @property
    def event(self) -> dict[str, Any]:
        return self.calls[-1][0]

    @property
    def context(self) -> Any:
        return self.calls[-1][1]


@contextmanager
def running_gateway(
    handler: Callable[[dict[str, Any], Any], Any] | None = None,
    api_key: str | None = None,
    routes: tuple[Route, ...] = ROUTES,
    usage_plan: TokenBucket | None = None,
) -> Iterator[httpx.Client]:
    """A gateway on a free port, serving in a background thread, with one handler behind every function."""
    handlers = None if handler is None else {route.function.name: handler for route in routes}
    server = create_server("127.0.0.1", 0, routes=routes, api_key=api_key, handlers=handlers)
    if usage_plan is not None:
        server.usage_plan = usage_plan
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as client:
            yield client
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def assert_gateway_error(response: httpx.Response, status: int, message: str, error_type: str) -> None:
    assert response.status_code == status
    assert response.json() == {"message": message, "errors": []}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-amzn-errortype"] == error_type


# --- The proxy event the function receives ---------------------------------------------------------------


def test_handler_receives_the_resource_template_and_decoded_path_parameters():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a player's sessions are requested with a percent-encoded id
        client.get("/players/abc%20d%2Be/sessions")
    # Then the event names the template, keeps the path as sent, and decodes the parameter
    assert handler.event["resource"] == "/players/{player_id}/sessions"
    assert handler.event["path"] == "/players/abc%20d%2Be/sessions"
    assert handler.event["httpMethod"] == "GET"
    assert handler.event["pathParameters"] == {"player_id": "abc d+e"}


def test_repeated_query_parameters_arrive_as_last_value_and_as_all_values():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a query repeats a name and has a blank value
        client.get("/players/p1/sessions?limit=5&tag=a&tag=b%20c&empty=")
    # Then the single-value view keeps the last value and the multi-value view keeps all, decoded
    assert handler.event["queryStringParameters"] == {"limit": "5", "tag": "b c", "empty": ""}
    assert handler.event["multiValueQueryStringParameters"] == {
        "limit": ["5"],
        "tag": ["a", "b c"],
        "empty": [""],
    }


def test_absent_query_path_parameters_and_body_arrive_as_null():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a route without parameters is requested with no query and no body
        client.get("/health")
    # Then those fields are null, as API Gateway sends them
    assert_nothing_but_the_route(handler.event)


def test_repeated_headers_arrive_as_last_value_and_as_all_values():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a request repeats a header
        client.get("/health", headers=[("X-Client-Version", "1.0"), ("X-Client-Version", "1.1")])
    # Then the single-value view keeps the last value, the multi-value view all of them
    assert handler.event["headers"]["X-Client-Version"] == "1.1"
    assert handler.event["multiValueHeaders"]["X-Client-Version"] == ["1.0", "1.1"]


def test_gateway_adds_the_forwarding_and_trace_headers_api_gateway_adds():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a client that is itself behind a proxy calls
        client.get("/health", headers={"X-Forwarded-For": "198.51.100.7"})
    # Then the caller's address is appended to the chain and a trace id is present
    headers = handler.event["headers"]
    assert headers["X-Forwarded-For"] == "198.51.100.7, 127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert headers["X-Forwarded-Port"] == str(client.base_url.port)


def test_text_body_arrives_as_a_string():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    payload = [{"event": "start", "player_id": "p1", "country": "fi"}]
    with running_gateway(handler) as client:
        # When a JSON batch is posted
        client.post("/events", json=payload)
    # Then the handler gets the body as text, not base64, with the client's content type
    assert json.loads(handler.event["body"]) == payload
    assert handler.event["isBase64Encoded"] is False
    sent_headers = {name.lower(): value for name, value in handler.event["headers"].items()}
    assert sent_headers["content-type"] == "application/json"


def test_body_that_is_not_utf8_arrives_base64_encoded():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    raw = b"\xff\xfe\x00binary"
    with running_gateway(handler) as client:
        # When bytes that are not UTF-8 are posted
        client.post("/events", content=raw, headers={"Content-Type": "application/octet-stream"})
    # Then they arrive base64-encoded and flagged so
    assert handler.event["isBase64Encoded"] is True
    assert base64.b64decode(handler.event["body"]) == raw


def test_request_context_describes_the_stage_the_request_and_the_caller():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        before_ms = int(datetime.now(UTC).timestamp() * 1000)
        # When a player's sessions are requested
        client.get("/players/p1/sessions", headers={"User-Agent": "game-client/9"})
        after_ms = int(datetime.now(UTC).timestamp() * 1000)
    # Then the request context is API Gateway's, for the local stage
    context = handler.event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == "local"
    assert context["stage"] == "local"
    assert context["resourcePath"] == "/players/{player_id}/sessions"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/local/players/p1/sessions"
    assert context["protocol"] == "HTTP/1.1"
    assert uuid.UUID(context["requestId"]).version == 4
    assert context["extendedRequestId"]
    assert context["resourceId"]
    assert before_ms - 1000 <= context["requestTimeEpoch"] <= after_ms
    request_time = datetime.strptime(context["requestTime"], "%d/%b/%Y:%H:%M:%S %z")
    assert int(request_time.timestamp()) == context["requestTimeEpoch"] // 1000
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "game-client/9"
    assert context["identity"]["apiKey"] is None


def test_each_request_gets_its_own_request_id():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When the same request is made twice
        client.get("/health")
        client.get("/health")
    # Then each event carries a different request id
    first, second = (event["requestContext"]["requestId"] for event, _ in handler.calls)
    assert first != second


def test_event_passes_powertools_rest_proxy_event_model():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a batch is posted with a query string
        client.post("/events?dry=1", json=[{"event": "end"}])
    # Then Powertools' own model of a REST proxy event accepts the event
    model = APIGatewayProxyEventModel.model_validate(handler.event)
    assert model.resource == "/events"
    assert model.queryStringParameters == {"dry": "1"}


def test_handler_receives_a_lambda_context_with_the_functions_deployed_timeout_and_memory():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When the ingest route is called
        client.post("/events", json=[{}])
    # Then the context names the function and counts down from its deployed timeout (10 s), with its memory
    context = handler.context
    assert context.function_name == "ingest_events"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:ingest_events"
    assert context.memory_limit_in_mb == 1024
    assert context.log_group_name == "/aws/lambda/ingest_events"
    assert "[$LATEST]" in context.log_stream_name
    assert uuid.UUID(context.aws_request_id)
    assert context.aws_request_id != handler.event["requestContext"]["requestId"]
    assert 8_000 < context.get_remaining_time_in_millis() <= 10_000


def test_handler_module_is_imported_on_first_use_and_then_reused(monkeypatch):
    # Given a route to a function whose handler module counts its calls (no handler injected)
    calls: list[str] = []
    module = types.ModuleType("functions.fake_function.handler")
    module.lambda_handler = lambda event, context: calls.append(event["path"]) or OK_RESPONSE
    monkeypatch.setitem(sys.modules, "functions.fake_function.handler", module)
    routes = (Route("GET", "/fake", LambdaFunction("fake_function", "a fake"), Caller.STUDIO),)
    with running_gateway(routes=routes) as client:
        # When the route is called twice
        first = client.get("/fake")
        second = client.get("/fake")
    # Then the module's lambda_handler answered both
    assert (first.json(), second.json()) == ({"ok": True}, {"ok": True})
    assert calls == ["/fake", "/fake"]


# --- The function's response -----------------------------------------------------------------------------


def test_handler_status_headers_and_body_come_back_to_the_client():
    # Given a handler that answers 207 with single and multi-value headers
    handler = RecordingHandler(
        result={
            "statusCode": 207,
            "headers": {"Content-Type": "application/json", "Retry-After": 5},
            "multiValueHeaders": {"X-Warning": ["first", "second"]},
            "body": '{"stored": 1, "rejected": 1}',
            "isBase64Encoded": False,
        }
    )
    with running_gateway(handler) as client:
        # When the route is called
        response = client.post("/events", json=[{}])
    # Then the client gets exactly that status, those headers and that body
    assert response.status_code == 207
    assert response.json() == {"stored": 1, "rejected": 1}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "5"
    assert response.headers.get_list("x-warning") == ["first", "second"]
    # And the request id the client sees is the one the function was given (its logs carry it)
    assert response.headers["x-amzn-requestid"] == handler.event["requestContext"]["requestId"]


def test_base64_response_body_is_decoded_for_the_client():
    # Given a handler that answers with a base64-encoded binary body
    raw = b"\x89PNG\r\n\x1a\n"
    handler = RecordingHandler(
        result={
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        }
    )
    with running_gateway(handler) as client:
        # When the route is called
        response = client.get("/health")
    # Then the client gets the decoded bytes
    assert response.content == raw
    assert response.headers["content-type"] == "image/png"


def test_response_without_content_type_is_labelled_json_like_api_gateway_does():
    # Given a handler that sets no Content-Type
    handler = RecordingHandler(result={"statusCode": 200, "body": "[]"})
    with running_gateway(handler) as client:
        # When the route is called
        response = client.get("/health")
    # Then the response carries API Gateway's default content type
    assert response.headers["content-type"] == "application/json"
    assert response.json() == []


# --- What API Gateway answers itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),  # a path no route defines
        ("DELETE", "/events"),  # a known path, a method it does not define
        ("TRACE", "/events"),  # methods API Gateway has no route for: a 403, not a 501
        ("CONNECT", "/events"),
        ("BREW", "/events"),
        ("GET", "/players//sessions"),  # an empty segment fills no path parameter
    ],
)
def test_a_request_no_route_matches_answers_missing_authentication_token(method, path):
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a request matches no route
        response = client.request(method, path)
    # Then API Gateway's 403 comes back and no function runs
    assert_gateway_error(response, 403, "Missing Authentication Token", "MissingAuthenticationTokenException")
    assert handler.calls == []


def test_handler_exception_answers_internal_server_error(caplog):
    # Given a handler that raises
    handler = RecordingHandler(error=RuntimeError("database on fire"))
    with running_gateway(handler) as client:
        # When its route is called
        response = client.get("/health")
    # Then API Gateway's 502 comes back, without the error's details, and the traceback is logged
    assert_gateway_error(response, 502, "Internal server error", "InternalServerErrorException")
    assert "database on fire" not in response.text
    assert "RuntimeError: database on fire" in caplog.text


@pytest.mark.parametrize(
    "result",
    [
        None,
        "a plain string",
        {"body": "{}"},
        {"statusCode": "200", "body": "{}"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "{}", "unexpected": True},
        {"statusCode": 200, "headers": ["not", "an", "object"], "body": "{}"},
        {"statusCode": 200, "multiValueHeaders": {"X-A": "not a list"}, "body": "{}"},
        {"statusCode": 200, "body": "***", "isBase64Encoded": True},
        {"statusCode": 42, "body": "{}"},
        {"statusCode": 200, "body": "{}", "headers": {"X-When": datetime(2026, 1, 1)}},
    ],
    ids=[
        "null",
        "string",
        "no-status",
        "status-as-string",
        "body-not-string",
        "unknown-key",
        "headers-not-object",
        "multi-value-not-list",
        "bad-base64",
        "status-out-of-range",
        "not-json-serialisable",
    ],
)
def test_result_that_is_not_a_proxy_response_answers_internal_server_error(result):
    # Given a handler whose result API Gateway cannot map
    handler = RecordingHandler(result=result)
    with running_gateway(handler) as client:
        # When its route is called
        response = client.get("/health")
    # Then API Gateway's 502 comes back
    assert_gateway_error(response, 502, "Internal server error", "InternalServerErrorException")


def test_body_over_the_payload_limit_answers_request_too_long():
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with (
        running_gateway(handler) as client,
        socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as connection,
    ):
        # When a request announces a body one byte over 10 MiB
        connection.sendall(
            b"POST /events HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485761\r\n\r\n"
        )
        reply = _read_until_closed(connection)
    # Then API Gateway's 413 comes back without the body being read, and no function runs
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body) == {"message": "Request Too Long", "errors": []}
    assert handler.calls == []


HEADERS = b"POST /studio/events HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
SHORT_BODY = HEADERS + b"Content-Length: 5000\r\n\r\n[1]"
"""A request that declares 5,000 bytes of body and sends 3."""
SHORT_CHUNKED_BODY = HEADERS + b"Transfer-Encoding: chunked\r\n\r\n3\r\n[{}"
"""A chunked request that sends a chunk of 3 bytes and then nothing: neither the chunk's line end nor the last
chunk comes."""


def _reply_to_short_body(
    client: httpx.Client, request: bytes, *, client_closes: bool, drip: int = 0
) -> tuple[bytes, bytes]:
    """The gateway's status line and headers, and body, for a request that stops short (its side closed or left
    open); with ``drip``, it first sends up to that many more bytes of body one at a time, 0.1 s apart, and stops
    as soon as the gateway has answered (which must come before the drip runs out)."""
    with socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as connection:
        connection.sendall(request)
        for dripped in range(drip + 1 if drip else 0):
            if select.select([connection], [], [], 0.1)[0]:
                break
            assert dripped < drip, "the gateway waited for the whole drip"
            connection.sendall(b" ")
        if client_closes:
            connection.shutdown(socket.SHUT_WR)
        head, _, body = _read_until_closed(connection).partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("request_bytes", "client_closes", "drip", "answer"),
    [
        (SHORT_BODY, False, 0, (b"408", "Request Timeout")),
        (SHORT_BODY, True, 0, (b"400", "Bad Request")),
        (SHORT_BODY, False, 100, (b"408", "Request Timeout")),
        (SHORT_CHUNKED_BODY, False, 0, (b"408", "Request Timeout")),
    ],
    ids=[
        "left open: 408 after the read timeout",
        "closed by the client: 400",
        "a byte at a time: 408 when the body's whole time is up",
        "chunked, left open: 408",
    ],
)
def test_a_body_that_stops_short_is_refused(monkeypatch, request_bytes, client_closes, drip, answer):
    status, message = answer
    # Given a gateway that waits a short time for a declared body
    monkeypatch.setattr("player_sessions_local.gateway.server.BODY_READ_TIMEOUT_SECONDS", 0.3)
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a request sends less than it declares, then nothing more (its side left open, or closed), or
        # drips its body slower than the whole body's time allows
        head, body = _reply_to_short_body(client, request_bytes, client_closes=client_closes, drip=drip)
    # Then the gateway refuses it in the service's error shape and closes, and no function runs
    assert head.split(b" ")[1] == status
    assert json.loads(body) == {"message": message, "errors": []}
    assert handler.calls == []


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /countries/starts?hours=1 HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
    ids=["request line", "header too large"],
)
def test_requests_http_server_cannot_read_are_refused_in_the_error_shape_not_html(request_bytes, status):
    handler = RecordingHandler()
    with (
        running_gateway(handler) as client,
        socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as connection,
    ):
        connection.sendall(request_bytes)
        reply = _read_until_closed(connection)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == status
    assert b"content-type: application/json" in head.lower()
    assert set(json.loads(body)) == {"message", "errors"} and json.loads(body)["errors"] == []
    assert handler.calls == []


def test_concurrent_requests_never_run_two_invocations_at_once():
    # Given a handler that records how many invocations overlap (Powertools keeps the current request on the
    # resolver class, so overlapping invocations would read each other's body, as a Lambda environment never does)
    running, overlaps, lock = [0], [0], threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            running[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
        threading.Event().wait(0.01)
        with lock:
            running[0] -= 1
        return OK_RESPONSE

    with running_gateway(handler) as client:
        url = str(client.base_url)

        def send_requests() -> None:
            with httpx.Client(base_url=url, trust_env=False, timeout=10) as own_client:
                for _ in range(5):
                    assert own_client.get("/health").status_code == 200

        # When four clients send requests at the same time
        clients = [threading.Thread(target=send_requests) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
    # Then the function ran one invocation at a time
    assert overlaps[0] == 1


def _read_until_closed(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# --- API key ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-the-key"}], ids=["missing", "wrong"])
def test_request_without_the_configured_api_key_is_forbidden(headers):
    # Given a gateway that requires an API key
    handler = RecordingHandler()
    with running_gateway(handler, api_key="s3cret") as client:
        # When a route is called without the right key
        response = client.get("/health", headers=headers)
    # Then API Gateway's 403 Forbidden comes back and no function runs
    assert_gateway_error(response, 403, "Forbidden", "ForbiddenException")
    assert handler.calls == []


def test_request_with_the_configured_api_key_reaches_the_function():
    # Given a gateway that requires an API key
    handler = RecordingHandler()
    with running_gateway(handler, api_key="s3cret") as client:
        # When a route is called with the key
        response = client.get("/health", headers={"X-Api-Key": "s3cret"})
    # Then the function answers, and the event names the key API Gateway validated
    assert response.json() == {"ok": True}
    assert handler.event["requestContext"]["identity"]["apiKey"] == "s3cret"
    assert handler.event["requestContext"]["identity"]["apiKeyId"]


def test_the_usage_plan_refuses_past_its_burst_until_its_rate_refills_it():
    # Given a gateway requiring a key, whose usage plan allows a burst of 2 and 1 request a second (a clock we move)
    now = [0.0]
    handler = RecordingHandler()
    plan = TokenBucket(rate=1, burst=2, clock=lambda: now[0])
    with running_gateway(handler, api_key="s3cret", usage_plan=plan) as client:
        # When four requests come at once, then one a second later
        at_once = [client.get("/health", headers={"x-api-key": "s3cret"}) for _ in range(4)]
        now[0] += 1.0
        later = client.get("/health", headers={"x-api-key": "s3cret"})
    # Then the burst is served, the rest refused as API Gateway refuses them, and the refilled token served
    assert [r.status_code for r in at_once] == [200, 200, 429, 429]
    assert_gateway_error(at_once[3], 429, "Too Many Requests", "TooManyRequestsException")
    assert at_once[3].headers["retry-after"] == "1"
    assert later.status_code == 200
    assert len(handler.calls) == 3
    assert plan.refused == 2


def test_a_gateway_requiring_a_key_throttles_with_the_deployed_usage_plan():
    # Given the deployed usage plan's limits (infra_cdk.constants)
    from infra_cdk.constants import USAGE_PLAN_BURST_LIMIT, USAGE_PLAN_RATE_LIMIT

    # When a gateway requires a key and is given no plan of its own
    server = create_server("127.0.0.1", 0, api_key="s3cret", handlers={})
    server.server_close()
    # Then it throttles with the deployed plan's rate and burst; without a key, nothing throttles
    assert server.usage_plan is not None
    assert (server.usage_plan.rate, server.usage_plan.burst) == (
        USAGE_PLAN_RATE_LIMIT,
        USAGE_PLAN_BURST_LIMIT,
    )
    assert (usage_plan_bucket().rate, usage_plan_bucket().burst) == (
        USAGE_PLAN_RATE_LIMIT,
        USAGE_PLAN_BURST_LIMIT,
    )
    keyless = create_server("127.0.0.1", 0, handlers={})
    keyless.server_close()
    assert keyless.usage_plan is None


def test_no_api_key_is_checked_when_none_is_configured():
    # Given a gateway without an API key
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a route is called without a key
        response = client.get("/health")
    # Then the function answers
    assert response.json() == {"ok": True}
    assert len(handler.calls) == 1


def test_unknown_route_answers_missing_authentication_token_before_the_api_key_check():
    # Given a gateway that requires an API key
    with running_gateway(RecordingHandler(), api_key="s3cret") as client:
        # When an unknown path is called without a key
        response = client.get("/nowhere")
    # Then the route check answers first, as in API Gateway
    assert_gateway_error(response, 403, "Missing Authentication Token", "MissingAuthenticationTokenException")


# --- The OpenAPI document --------------------------------------------------------------------------------


@pytest.fixture
def fake_openapi_module(monkeypatch) -> dict[str, Any]:
    """Stands in for player_sessions_local.openapi, so these tests don't depend on the real document."""
    document = {"openapi": "3.1.0", "info": {"title": "fake", "version": "0"}, "paths": {}}
    module = types.ModuleType("player_sessions_local.openapi")
    module.build_openapi_document = lambda: document
    monkeypatch.setitem(sys.modules, "player_sessions_local.openapi", module)
    return document


def test_openapi_document_is_served_by_the_gateway_without_an_api_key(fake_openapi_module):
    # Given a gateway that requires an API key
    handler = RecordingHandler()
    with running_gateway(handler, api_key="s3cret") as client:
        # When the OpenAPI document is requested without a key
        response = client.get("/openapi.json")
    # Then the gateway serves the generated document itself, and no function runs
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == fake_openapi_module
    assert handler.calls == []


# --- The request validator ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?hours=", "?hours=%20", "?other=1"])
def test_a_required_parameter_missing_or_blank_is_refused_before_the_function_runs(query):
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When the starts are asked for without an hours value
        response = client.get(f"/countries/starts{query}")
    # Then API Gateway's validator answers, naming the parameter, and the function never runs
    assert_gateway_error(response, 400, "Missing required request parameters: [hours]", "BadRequestException")
    assert handler.calls == []


@pytest.mark.parametrize("query", ["?hours=abc", "?hours=0"])
def test_a_present_parameter_of_the_wrong_form_goes_to_the_function(query):
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When hours is present but not a valid number
        response = client.get(f"/countries/starts{query}")
    # Then the validator lets it through: the function decides (and names the rule)
    assert response.status_code == 200
    assert len(handler.calls) == 1


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{}", {"Content-Type": "application/json"}),
        (b"not json", {"Content-Type": "application/json"}),
        (b"[" + b" " * 17_000 + b"]", {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "text/plain"}),
        (b"{}", {}),
        (b"", {"Content-Type": "application/json"}),
    ],
)
def test_every_body_goes_to_the_function(body, headers):
    # Given a gateway in front of a recording handler
    handler = RecordingHandler()
    with running_gateway(handler) as client:
        # When a body of any shape, media type or size under API Gateway's own limit is posted
        response = client.post("/events", content=body, headers=headers)
    # Then the function judges it (415, 413 and 400 in SPEC.md's order are the handler's), not the gateway
    assert response.status_code == 200
    assert len(handler.calls) == 1


def test_a_burst_of_new_connections_waits_in_the_listen_queue_not_refused():
    # Given a gateway that listens but has not yet accepted anything (all its threads busy, as in a burst)
    server = create_server(
        "127.0.0.1", 0, handlers={route.function.name: RecordingHandler() for route in ROUTES}
    )
    host, port = server.socket.getsockname()[:2]
    try:
        # When 64 clients connect at once
        clients = [socket.create_connection((host, port), timeout=2) for _ in range(64)]
        # Then every connection is established (socketserver's backlog of 5 let the kernel drop the rest)
        assert len(clients) == 64
        for client in clients:
            client.close()
    finally:
        server.server_close()
