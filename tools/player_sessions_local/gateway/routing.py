"""API Gateway's side of a request before the integration: which resource and method it matches, and the
REST API (payload v1) Lambda proxy event it sends the function."""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from player_sessions.routes import Route

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
API_ID = "local"
STAGE = "local"


@dataclass(frozen=True)
class RouteMatch:
    resource: str
    """The matched API Gateway resource template, e.g. ``/players/{player_id}/sessions``."""
    route: Route | None
    """None when the resource exists but not with the request's method."""
    path_parameters: dict[str, str]


def match_route(routes: Iterable[Route], method: str, raw_path: str) -> RouteMatch | None:
    """Finds the resource for a percent-encoded request path, then the method on it, as API Gateway does.

    A literal segment beats a ``{name}`` segment at the same position, so ``/countries/starts`` wins over
    ``/countries/{country}``. Returns None when no resource matches the path.
    """
    if not raw_path.startswith("/"):
        return None
    segments = raw_path[1:].split("/")
    best: tuple[tuple[int, ...], str, dict[str, str]] | None = None
    for resource in dict.fromkeys(route.path for route in routes):
        template = resource[1:].split("/")
        parameters = _match_template(template, segments)
        if parameters is None:
            continue
        specificity = tuple(0 if part.startswith("{") else 1 for part in template)
        if best is None or specificity > best[0]:
            best = (specificity, resource, parameters)
    if best is None:
        return None
    _, resource, parameters = best
    route = next((r for r in routes if r.path == resource and r.method == method), None)
    return RouteMatch(resource=resource, route=route, path_parameters=parameters)


def _match_template(template: Sequence[str], segments: Sequence[str]) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    parameters: dict[str, str] = {}
    for part, segment in zip(template, segments, strict=True):
        if part.startswith("{") and part.endswith("}"):
            if not segment:
                return None
            parameters[part[1:-1]] = unquote(segment)
        elif part != segment:
            return None
    return parameters


# --- The proxy event -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One request as the gateway received it."""

    method: str
    raw_path: str
    """Percent-encoded, as sent: REST APIs hand ``path`` to the function without decoding it."""
    query: str
    headers: Sequence[tuple[str, str]]
    """In the order received; a name may repeat."""
    body: bytes
    source_ip: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """API Gateway's id of the request: its ``x-amzn-RequestId`` header and the event's ``requestContext``."""


@dataclass(frozen=True)
class RequestStamp:
    """What API Gateway adds to each request: its ids, its clock, the API key it validated."""

    request_id: str
    extended_request_id: str
    received_at: datetime
    api_key: str | None = None
    authorizer: dict[str, Any] | None = None
    """The authorizer's context and principal, for a route with a Lambda authorizer."""
    signer_arn: str | None = None
    """The IAM identity that signed the request, for a route with IAM authorization."""
    signer_access_key: str | None = None

    @classmethod
    def fresh(
        cls,
        api_key: str | None = None,
        *,
        request_id: str | None = None,
        authorizer: dict[str, Any] | None = None,
        signer_arn: str | None = None,
        signer_access_key: str | None = None,
    ) -> RequestStamp:
        return cls(
            request_id=request_id or str(uuid.uuid4()),
            extended_request_id=extended_request_id(secrets.token_bytes(12)),
            received_at=datetime.now(UTC),
            api_key=api_key,
            authorizer=authorizer,
            signer_arn=signer_arn,
            signer_access_key=signer_access_key,
        )


def extended_request_id(seed: bytes) -> str:
    """Shaped like API Gateway's: 12 bytes, base64."""
    return base64.b64encode(seed[:12]).decode("ascii")


def build_proxy_event(request: HttpRequest, match: RouteMatch, stamp: RequestStamp) -> dict[str, Any]:
    """The REST API (payload v1) Lambda proxy event for a routed request."""
    headers, multi_value_headers = _single_and_multi_value(request.headers)
    query, multi_value_query = _single_and_multi_value(parse_qsl(request.query, keep_blank_values=True))
    body, is_base64_encoded = _event_body(request.body)
    user_agent = header_value(request.headers, "user-agent")
    host = header_value(request.headers, "host") or "localhost"
    return {
        "resource": match.resource,
        "path": request.raw_path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_value_headers,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_value_query or None,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": _resource_id(match.resource),
            "resourcePath": match.resource,
            "httpMethod": request.method,
            "extendedRequestId": stamp.extended_request_id,
            "requestTime": stamp.received_at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{request.raw_path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": _domain_prefix(host),
            "requestTimeEpoch": int(stamp.received_at.timestamp() * 1000),
            "requestId": stamp.request_id,
            "identity": _identity(request.source_ip, user_agent, stamp),
            **({"authorizer": stamp.authorizer} if stamp.authorizer is not None else {}),
            "domainName": host,
            "apiId": API_ID,
        },
        "body": body,
        "isBase64Encoded": is_base64_encoded,
    }


def _single_and_multi_value(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway's two views of repeated names: the last value wins, or all values in order."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _event_body(raw: bytes) -> tuple[str | None, bool]:
    if not raw:
        return None, False
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), True


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The last value of a header, matched case-insensitively as HTTP requires."""
    found = None
    for header, value in headers:
        if header.lower() == name:
            found = value
    return found


def _domain_prefix(host: str) -> str:
    """The first label of the host name, as for ``{api-id}.execute-api...``; an IP address is kept whole."""
    hostname = urlsplit(f"//{host}").hostname or host
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return hostname.split(".")[0]
    return hostname


def _resource_id(resource: str) -> str:
    """A stable six-character id per resource, shaped like API Gateway's."""
    return uuid.uuid5(uuid.NAMESPACE_URL, resource).hex[:6]


def _identity(source_ip: str, user_agent: str | None, stamp: RequestStamp) -> dict[str, str | None]:
    signer = stamp.signer_arn
    principal = signer.rsplit("/", 1)[-1] if signer else None
    return {
        "cognitoIdentityPoolId": None,
        "cognitoIdentityId": None,
        "apiKey": stamp.api_key,
        "principalOrgId": None,
        "cognitoAuthenticationType": None,
        "userArn": signer,
        "apiKeyId": _api_key_id(stamp.api_key),
        "userAgent": user_agent,
        "accountId": ACCOUNT_ID if signer else None,
        "caller": principal,
        "sourceIp": source_ip,
        "accessKey": stamp.signer_access_key,
        "cognitoAuthenticationProvider": None,
        "user": principal,
    }


def _api_key_id(api_key: str | None) -> str | None:
    return None if api_key is None else uuid.uuid5(uuid.NAMESPACE_OID, api_key).hex[:10]
