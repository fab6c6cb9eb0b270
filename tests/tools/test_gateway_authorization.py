"""The local gateway's authorization step without a server: SigV4 signatures made by botocore's signer (the AWS
SDKs' and the CLI's) verified against the local access keys, and the player token authorizer's answers honoured
and cached as API Gateway does. The same through the served gateway is in tests/e2e/test_who_may_call.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from player_sessions.routes import ROUTES, STUDIO_EVENTS_PATH, Caller, Route
from player_sessions_local import local_auth
from player_sessions_local.gateway.answers import HttpResponse
from player_sessions_local.gateway.authorization import AuthMode, Authorization, Granted, method_arn
from player_sessions_local.gateway.invocation import Invocation, Outcome
from player_sessions_local.gateway.routing import HttpRequest

HOST = "127.0.0.1:3000"
READ = next(route for route in ROUTES if route.path == "/countries/starts")
STUDIO_POST = next(route for route in ROUTES if route.path == STUDIO_EVENTS_PATH)
PLAYER_POST = next(route for route in ROUTES if route.caller is Caller.PLAYER)
ADMIN_ROUTE = Route("POST", "/players/{player_id}/erasure", READ.function, Caller.ADMIN)


@pytest.fixture(autouse=True)
def _own_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_AUTH_DIR", str(tmp_path / "auth"))


class FakeAuthorizer:
    """The authorizer function's answers, scripted; counts its invocations."""

    def __init__(self, answer: Invocation) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []

    def invoke(
        self, function_name: str, event: dict[str, Any], *, request_id: str, trace_id=None
    ) -> Invocation:
        assert function_name == "authorizer"
        self.events.append(event)
        return self.answer

    def close(self) -> None:
        pass


def allow(player: str, resource: str = "arn:aws:execute-api:*", effect: str = "Allow") -> Invocation:
    return Invocation(
        Outcome.RETURNED,
        result={
            "principalId": player,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
            },
            "context": {"player_id": player, "tier": 3, "beta": True},
        },
    )


def signed(
    method: str, url: str, body: bytes = b"", signer=local_auth.Signer.STUDIO, **headers: str
) -> HttpRequest:
    parts = urlsplit(url)
    sent = local_auth.sign(method, url, body or None, headers, signer)
    return HttpRequest(
        method=method,
        raw_path=parts.path,
        query=parts.query,
        headers=[("Host", HOST), *sent.items()],
        body=body,
        source_ip="127.0.0.1",
    )


def gateway(authorizer: FakeAuthorizer | None = None, now=None, clock=None) -> Authorization:
    extra: dict[str, Any] = {}
    if now is not None:
        extra["now"] = now
    if clock is not None:
        extra["clock"] = clock
    return Authorization(authorizer or FakeAuthorizer(allow("p")), local_auth.signing_keys(), **extra)


def refusal(answer: Granted | HttpResponse) -> tuple[int, str]:
    assert isinstance(answer, HttpResponse), answer
    import json

    return answer.status, json.loads(answer.body)["message"]


def test_a_request_signed_by_the_studio_is_granted_with_its_identity():
    request = signed("GET", f"http://{HOST}/countries/starts?hours=24&b=x%2Fy")

    granted = gateway().check(request, READ)

    assert isinstance(granted, Granted)
    assert granted.signed_by is not None
    assert granted.signed_by.user_arn == "arn:aws:iam::123456789012:user/studio"
    assert granted.signed_by.access_key_id == local_auth.access_key().access_key_id


def test_a_signed_post_covers_its_body_and_content_type():
    body = b'[{"event": "start"}]'
    request = signed(
        "POST", f"http://{HOST}{STUDIO_EVENTS_PATH}", body, **{"Content-Type": "application/json"}
    )

    assert isinstance(gateway().check(request, STUDIO_POST), Granted)


def tampered(request: HttpRequest, **changes: Any) -> HttpRequest:
    fields = {**request.__dict__, **changes}
    return HttpRequest(**fields)


@pytest.mark.parametrize(
    "change",
    [
        {"body": b'[{"event": "end"}]'},
        {"raw_path": "/countries/FI/starts"},
        {"query": "hours=25"},
        {"method": "PUT"},
    ],
    ids=["body", "path", "query", "method"],
)
def test_a_request_changed_after_signing_is_refused(change):
    body = b'[{"event": "start"}]'
    request = signed("POST", f"http://{HOST}/countries/starts?hours=24", body)

    status, message = refusal(gateway().check(tampered(request, **change), READ))

    assert status == 403
    assert message.startswith("The request signature we calculated does not match")


def test_a_signature_older_than_five_minutes_is_refused():
    request = signed("GET", f"http://{HOST}/countries/starts?hours=1")
    later = datetime.now(UTC) + timedelta(minutes=6)

    status, message = refusal(gateway(now=lambda: later).check(request, READ))

    assert (status, message.split(":")[0]) == (403, "Signature expired")


def test_an_unknown_access_key_and_a_missing_or_bearer_header_are_refused():
    request = signed("GET", f"http://{HOST}/countries/starts?hours=1")
    header = dict(request.headers)["Authorization"]
    unknown = header.replace(local_auth.access_key().access_key_id, "AKIAUNKNOWNKEY000000")

    def check(headers: list[tuple[str, str]]) -> tuple[int, str]:
        return refusal(gateway().check(tampered(request, headers=headers), READ))

    without = [(name, value) for name, value in request.headers if name != "Authorization"]
    assert check([*without, ("Authorization", unknown)]) == (
        403,
        "The security token included in the request is invalid.",
    )
    assert check(without) == (403, "Missing Authentication Token")
    status, message = check([*without, ("Authorization", f"Bearer {local_auth.token('p')}")])
    assert status == 403
    assert "Authorization header requires 'Credential' parameter" in message


def test_each_signer_may_call_only_the_routes_its_policy_allows():
    studio_on_admin = signed("POST", f"http://{HOST}/players/p/erasure")
    admin_on_read = signed("GET", f"http://{HOST}/countries/starts?hours=1", signer=local_auth.Signer.ADMIN)
    admin_on_admin = signed("POST", f"http://{HOST}/players/p/erasure", signer=local_auth.Signer.ADMIN)

    status, message = refusal(gateway().check(studio_on_admin, ADMIN_ROUTE))
    assert status == 403
    assert message.startswith("User: arn:aws:iam::123456789012:user/studio is not authorized")
    assert refusal(gateway().check(admin_on_read, READ))[0] == 403
    assert isinstance(gateway().check(admin_on_admin, ADMIN_ROUTE), Granted)


def player_post(authorization: str | None) -> HttpRequest:
    headers = [("Host", HOST)] + ([("Authorization", authorization)] if authorization is not None else [])
    return HttpRequest("POST", "/events", "", headers, b"[]", "127.0.0.1")


def test_a_player_token_the_authorizer_allows_hands_its_context_to_the_integration_as_strings():
    authorizer = FakeAuthorizer(allow("p-1"))

    granted = gateway(authorizer).check(player_post("Bearer a.b.c"), PLAYER_POST)

    assert granted == Granted(
        authorizer={"player_id": "p-1", "tier": "3", "beta": "true", "principalId": "p-1"}
    )
    assert authorizer.events == [
        {"type": "TOKEN", "authorizationToken": "Bearer a.b.c", "methodArn": method_arn("POST", "/events")}
    ]


def test_the_authorizers_answer_is_kept_for_one_token_until_the_cache_expires():
    authorizer = FakeAuthorizer(allow("p-1"))
    now = [0.0]
    checks = gateway(authorizer, clock=lambda: now[0])

    for _ in range(3):
        checks.check(player_post("Bearer a.b.c"), PLAYER_POST)
    checks.check(player_post("Bearer d.e.f"), PLAYER_POST)
    now[0] = 61.0
    checks.check(player_post("Bearer a.b.c"), PLAYER_POST)

    assert [event["authorizationToken"] for event in authorizer.events] == [
        "Bearer a.b.c",
        "Bearer d.e.f",
        "Bearer a.b.c",
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Invocation(Outcome.FUNCTION_ERROR, detail="UnauthorizedError: Unauthorized"), (401, "Unauthorized")),
        (allow("p", effect="Deny"), (403, "User is not authorized to access this resource")),
        (allow("p", resource="arn:aws:execute-api:us-east-1:123456789012:local/local/GET/*"), (403, None)),
        (Invocation(Outcome.FUNCTION_ERROR, detail="KeyError: 'x'"), (500, "Internal server error")),
        (Invocation(Outcome.RETURNED, result={"allow": True}), (500, "Internal server error")),
        (Invocation(Outcome.TIMED_OUT, detail="3 s"), (500, "Internal server error")),
        (Invocation(Outcome.THROTTLED), (429, "Too Many Requests")),
    ],
    ids=["unauthorized", "deny", "another resource", "crash", "not a policy", "timeout", "pool full"],
)
def test_the_authorizers_other_answers_are_api_gateways_refusals(answer, expected):
    status, message = refusal(gateway(FakeAuthorizer(answer)).check(player_post("Bearer a.b.c"), PLAYER_POST))

    assert status == expected[0]
    assert isinstance(message, str) and message
    if expected[1] is not None:
        assert message == expected[1]


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcg==", "Bearer", "Bearer a b"])
def test_no_bearer_token_is_401_without_calling_the_authorizer(header):
    authorizer = FakeAuthorizer(allow("p"))

    assert refusal(gateway(authorizer).check(player_post(header), PLAYER_POST)) == (401, "Unauthorized")
    assert authorizer.events == []


@pytest.mark.parametrize(
    ("value", "mode"), [(None, AuthMode.ON), ("", AuthMode.ON), ("on", AuthMode.ON), ("OFF", AuthMode.OFF)]
)
def test_checks_are_on_unless_the_variable_says_off(value, mode):
    environ = {} if value is None else {"PLAYER_SESSIONS_LOCAL_AUTH": value}
    assert AuthMode.from_environment(environ) is mode


def test_a_misspelt_mode_is_an_error_not_a_silent_default():
    with pytest.raises(ValueError, match="PLAYER_SESSIONS_LOCAL_AUTH"):
        AuthMode.from_environment({"PLAYER_SESSIONS_LOCAL_AUTH": "of"})


@pytest.mark.parametrize(
    "path",
    [
        "/players/a%20b/sessions",
        "/players/%C3%A9t%C3%A9/sessions",
        "/players/a~b/sessions",
        "/countries//starts",
        "/players/x/../y/sessions",
        "/players/./p/sessions",
        "/health/",
    ],
)
def test_a_path_is_canonicalised_as_botocore_signs_it(path):
    request = signed("GET", f"http://{HOST}{path}?limit=3")

    assert isinstance(gateway().check(request, READ), Granted)


@pytest.mark.parametrize("given", ["environment", "option"])
def test_the_signing_command_sends_the_api_key_a_keyed_gateway_requires(tmp_path, given):
    # Given a server that records what it is sent, and the key a gateway started with PLAYER_SESSIONS_API_KEY
    # would require (in the variable, or as --api-key)
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, list[tuple[str, str]]]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append((self.path, list(self.headers.items())))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    environment = {**os.environ, "LOCAL_AUTH_DIR": str(tmp_path / "auth")}
    environment.pop(local_auth.API_KEY_VARIABLE, None)
    option: list[str] = []
    if given == "environment":
        environment[local_auth.API_KEY_VARIABLE] = "studio-key-1"
    else:
        option = ["--api-key", "studio-key-1"]
    # When the README's signing command sends a read
    try:
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "player_sessions_local.local_auth",
                "request",
                "GET",
                f"http://{host}/countries/starts?hours=24",
                *option,
            ],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()
    # Then the request carries the key, and its signature (which covers it) is one the gateway grants
    assert sent.returncode == 0, sent.stderr
    ((path, headers),) = received
    assert ("x-api-key", "studio-key-1") in [(name.lower(), value) for name, value in headers]
    parts = urlsplit(f"http://{host}{path}")
    request = HttpRequest(
        method="GET", raw_path=parts.path, query=parts.query, headers=headers, body=b"", source_ip="127.0.0.1"
    )
    granted = gateway().check(request, READ)  # the keys of LOCAL_AUTH_DIR (_own_keys), as the command's
    assert isinstance(granted, Granted), granted
    assert granted.signed_by is not None and granted.signed_by.user_arn.endswith(":user/studio")
