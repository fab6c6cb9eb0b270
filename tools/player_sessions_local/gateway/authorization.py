"""API Gateway's authorization step, locally, before the API key and the integration (docs/security.md):

- a route for game clients (``Caller.PLAYER``) runs the authorizer function, through the same invoker as the
  routes' functions (a pool of its environments under `make serve`), with API Gateway's TOKEN event, honours
  the policy it returns, keeps the answer for one token ``AUTHORIZER_CACHE_SECONDS``, and hands its context to
  the integration as ``requestContext.authorizer``;
- a route for the studio or for administration checks the request's SigV4 signature against the local access
  keys (player_sessions_local.local_auth), and the signer's right to the route, as IAM does.

``PLAYER_SESSIONS_LOCAL_AUTH=off`` serves without any of it, for quick experiments and scripts.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from infra_cdk.constants import AUTHORIZER_FAILED_MESSAGE
from player_sessions.player_tokens import AUTHORIZATION_HEADER_PATTERN
from player_sessions.routes import AUTHORIZER, AUTHORIZER_CACHE_SECONDS, Caller, Route
from player_sessions_local.gateway.answers import HttpResponse, gateway_response, too_many_requests
from player_sessions_local.gateway.invocation import Invoker, Outcome
from player_sessions_local.gateway.routing import ACCOUNT_ID, API_ID, REGION, STAGE, HttpRequest, header_value
from player_sessions_local.gateway.sigv4 import RefusedSignatureError, SignedBy, SigningKey, verify

LOCAL_AUTH_VARIABLE = "PLAYER_SESSIONS_LOCAL_AUTH"
SIGNED_SERVICE = "execute-api"


class AuthMode(StrEnum):
    ON = "on"
    """As deployed: every route checks its caller's proof of identity (the default)."""
    OFF = "off"
    """No check at all: anyone may call anything, ``POST /events`` for any player."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> AuthMode:
        value = environ.get(LOCAL_AUTH_VARIABLE, "").strip().lower() or cls.ON.value
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{LOCAL_AUTH_VARIABLE} is 'on' (the default) or 'off', not {value!r}") from None


@dataclass(frozen=True)
class Granted:
    """What the integration learns about the caller."""

    authorizer: dict[str, Any] | None = None
    """The authorizer's context and principal (``requestContext.authorizer``)."""
    signed_by: SignedBy | None = None
    """The signing identity (``requestContext.identity``)."""


OPEN = Granted()


@dataclass(frozen=True)
class _Policy:
    principal_id: str
    allowed: bool
    context: dict[str, str]


def unauthorized() -> HttpResponse:
    return gateway_response(HTTPStatus.UNAUTHORIZED, "Unauthorized", "UnauthorizedException")


def access_denied() -> HttpResponse:
    return gateway_response(
        HTTPStatus.FORBIDDEN, "User is not authorized to access this resource", "AccessDeniedException"
    )


def authorizer_failure() -> HttpResponse:
    """API Gateway's answer when the authorizer fails or returns what it cannot read."""
    return HttpResponse(
        status=HTTPStatus.INTERNAL_SERVER_ERROR,
        headers=[
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", "AuthorizerConfigurationException"),
        ],
        # (API Gateway's own message is null here; the stack's gateway response gives it one)
        body=json.dumps({"message": AUTHORIZER_FAILED_MESSAGE, "errors": []}).encode("utf-8"),
    )


def method_arn(method: str, raw_path: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{method}{raw_path}"


class Authorization:
    """The checks of one gateway: its invoker runs the authorizer function; ``keys`` are the signing keys IAM
    knows, each with the callers it may act as (its policies)."""

    def __init__(
        self,
        invoker: Invoker,
        keys: Mapping[str, tuple[SigningKey, frozenset[Caller]]],
        *,
        cache_seconds: float = AUTHORIZER_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._invoker = invoker
        self._keys = {key_id: key for key_id, (key, _) in keys.items()}
        self._may_call = {key.user_arn: callers for key, callers in keys.values()}
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, _Policy]] = {}
        self._lock = threading.Lock()
        self.authorizer_invocations = 0
        """How often the authorizer function ran (its answers are cached per token)."""

    def check(self, request: HttpRequest, route: Route) -> Granted | HttpResponse:
        if route.caller is Caller.PLAYER:
            return self._player(request)
        return self._signed(request, route)

    def _signed(self, request: HttpRequest, route: Route) -> Granted | HttpResponse:
        try:
            signed_by = verify(
                method=request.method,
                raw_path=request.raw_path,
                query=request.query,
                headers=request.headers,
                body=request.body,
                keys=self._keys,
                region=REGION,
                service=SIGNED_SERVICE,
                now=self._now(),
            )
        except RefusedSignatureError as refusal:
            error_type = (
                "MissingAuthenticationTokenException"
                if str(refusal) == "Missing Authentication Token"
                else "InvalidSignatureException"
            )
            return gateway_response(HTTPStatus.FORBIDDEN, str(refusal), error_type)
        if route.caller not in self._may_call.get(signed_by.user_arn, frozenset()):
            return gateway_response(
                HTTPStatus.FORBIDDEN,
                f"User: {signed_by.user_arn} is not authorized to perform: execute-api:Invoke on resource: "
                f"{method_arn(request.method, request.raw_path)}",
                "AccessDeniedException",
            )
        return Granted(signed_by=signed_by)

    def _player(self, request: HttpRequest) -> Granted | HttpResponse:
        token = header_value(request.headers, "authorization")
        # API Gateway answers 401 itself, without calling the authorizer, when the identity source is missing
        # or does not match the authorizer's validation expression.
        if token is None or not AUTHORIZATION_HEADER_PATTERN.fullmatch(token):
            return unauthorized()
        arn = method_arn(request.method, request.raw_path)
        policy = self._cached(token)
        if policy is None:
            answer = self._run_authorizer(token, arn)
            if isinstance(answer, HttpResponse):
                return answer
            policy = answer
            with self._lock:
                self._cache[token] = (self._clock() + self._cache_seconds, policy)
        if not policy.allowed:
            return access_denied()
        return Granted(authorizer={**policy.context, "principalId": policy.principal_id})

    def _cached(self, token: str) -> _Policy | None:
        with self._lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            expires, policy = entry
            if self._clock() >= expires:
                del self._cache[token]
                return None
            return policy

    def _run_authorizer(self, token: str, arn: str) -> _Policy | HttpResponse:
        self.authorizer_invocations += 1
        invocation = self._invoker.invoke(
            AUTHORIZER.name,
            {"type": "TOKEN", "authorizationToken": token, "methodArn": arn},
            request_id=str(uuid.uuid4()),
        )
        if (
            invocation.outcome is Outcome.FUNCTION_ERROR
            and invocation.detail.partition(": ")[2] == "Unauthorized"
        ):
            return unauthorized()
        if invocation.outcome is Outcome.THROTTLED:
            # Past the pool's capacity the caller is refused at once, as any route is (answers.too_many_requests).
            return too_many_requests()
        if invocation.outcome is not Outcome.RETURNED:
            return authorizer_failure()
        return _read_policy(invocation.result, arn) or authorizer_failure()


def _read_policy(result: Any, arn: str) -> _Policy | None:
    """The authorizer's answer for ``arn``: allowed when a statement allows invoking it and none denies it;
    None when the answer is not a policy API Gateway can read."""
    if not isinstance(result, dict) or not isinstance(result.get("principalId"), str):
        return None
    document = result.get("policyDocument")
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        return None
    context = result.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(v, dict | list) for v in context.values()):
        return None
    applies = [
        s
        for s in statements
        if _matches(s.get("Action"), "execute-api:Invoke") and _matches(s.get("Resource"), arn)
    ]
    allowed = any(s.get("Effect") == "Allow" for s in applies) and not any(
        s.get("Effect") == "Deny" for s in applies
    )
    return _Policy(result["principalId"], allowed, {str(k): _context_value(v) for k, v in context.items()})


def _matches(patterns: Any, value: str) -> bool:
    listed = [patterns] if isinstance(patterns, str) else patterns if isinstance(patterns, list) else []
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value, p) for p in listed)


def _context_value(value: Any) -> str:
    """API Gateway hands every context value to the integration as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
