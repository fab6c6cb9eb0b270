"""An honest local API Gateway (REST API, Lambda proxy integration, payload v1).

It routes with the same table as the deployed API (player_sessions.routes.ROUTES), builds the full proxy
event API Gateway would send, calls the function's real ``lambda_handler`` with a Lambda-like context, and
answers the way API Gateway does when it, not the function, decides: 403 for an unknown route or a missing
API key, 502 when the function crashes or returns something that is not a proxy response.

    python -m player_sessions_local.gateway [--host 127.0.0.1] [--port 3000]

The API key, when wanted, comes from PLAYER_SESSIONS_API_KEY (through the service's settings).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import importlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from player_sessions.routes import ROUTES, Route

LambdaHandler = Callable[[dict[str, Any], Any], Any]

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
API_ID = "local"
STAGE = "local"
DEFAULT_PORT = 3000
OPENAPI_PATH = "/openapi.json"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""API Gateway's payload limit for REST APIs."""
INTEGRATION_TIMEOUT_MS = 29_000
"""API Gateway's integration timeout: the most time a function behind it ever gets."""
FUNCTION_MEMORY_MB = 256

_PROXY_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_LOGGER = logging.getLogger(__name__)


# --- Routing ---------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class RequestStamp:
    """What API Gateway adds to each request: its ids, its clock, the API key it validated."""

    request_id: str
    extended_request_id: str
    received_at: datetime
    api_key: str | None = None

    @classmethod
    def fresh(cls, api_key: str | None = None) -> RequestStamp:
        return cls(
            request_id=str(uuid.uuid4()),
            extended_request_id=extended_request_id(secrets.token_bytes(12)),
            received_at=datetime.now(UTC),
            api_key=api_key,
        )


def extended_request_id(seed: bytes) -> str:
    """Shaped like API Gateway's: 12 bytes, base64."""
    return base64.b64encode(seed[:12]).decode("ascii")


def build_proxy_event(request: HttpRequest, match: RouteMatch, stamp: RequestStamp) -> dict[str, Any]:
    """The REST API (payload v1) Lambda proxy event for a routed request."""
    headers, multi_value_headers = _single_and_multi_value(request.headers)
    query, multi_value_query = _single_and_multi_value(parse_qsl(request.query, keep_blank_values=True))
    body, is_base64_encoded = _event_body(request.body)
    user_agent = _header(request.headers, "user-agent")
    host = _header(request.headers, "host") or "localhost"
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
            "identity": _identity(request.source_ip, user_agent, stamp.api_key),
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


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
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


def _identity(source_ip: str, user_agent: str | None, api_key: str | None) -> dict[str, str | None]:
    return {
        "cognitoIdentityPoolId": None,
        "cognitoIdentityId": None,
        "apiKey": api_key,
        "principalOrgId": None,
        "cognitoAuthenticationType": None,
        "userArn": None,
        "apiKeyId": _api_key_id(api_key),
        "userAgent": user_agent,
        "accountId": None,
        "caller": None,
        "sourceIp": source_ip,
        "accessKey": None,
        "cognitoAuthenticationProvider": None,
        "user": None,
    }


def _api_key_id(api_key: str | None) -> str | None:
    return None if api_key is None else uuid.uuid5(uuid.NAMESPACE_OID, api_key).hex[:10]


# --- The Lambda context ----------------------------------------------------------------------------------


@dataclass
class LocalLambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools use."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = INTEGRATION_TIMEOUT_MS
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = FUNCTION_MEMORY_MB
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        started = datetime.now(UTC).strftime("%Y/%m/%d")
        return f"{started}/[{self.function_version}]{uuid.uuid5(uuid.NAMESPACE_OID, self.aws_request_id).hex}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- Handlers --------------------------------------------------------------------------------------------


class HandlerRegistry:
    """Each function's ``lambda_handler``: injected, or imported once on first use (like a cold start)."""

    def __init__(self, routes: Iterable[Route], handlers: Mapping[str, LambdaHandler] | None = None) -> None:
        self._modules = {route.function.name: route.function.handler_module for route in routes}
        self._handlers: dict[str, LambdaHandler] = dict(handlers or {})
        self._lock = threading.Lock()

    def get(self, function_name: str) -> LambdaHandler:
        handler = self._handlers.get(function_name)
        if handler is not None:
            return handler
        with self._lock:
            if function_name not in self._handlers:
                module = importlib.import_module(self._modules[function_name])
                self._handlers[function_name] = module.lambda_handler
            return self._handlers[function_name]


def invoke_handler(handler: LambdaHandler, event: dict[str, Any], function_name: str) -> Any:
    """Calls a handler as the Lambda runtime would: event and result pass through JSON, with a fresh context.

    A result that JSON cannot carry raises here, as the runtime's marshalling error fails the invocation.
    """
    result = handler(json.loads(json.dumps(event)), LocalLambdaContext(function_name=function_name))
    return json.loads(json.dumps(result))


# --- The response ----------------------------------------------------------------------------------------


class MalformedProxyResponseError(ValueError):
    """The function's result is not a Lambda proxy response: API Gateway answers 502."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def proxy_result_to_response(result: Any) -> HttpResponse:
    """Maps a Lambda proxy response to HTTP, rejecting what API Gateway rejects."""
    if not isinstance(result, dict):
        raise MalformedProxyResponseError(f"result is a {type(result).__name__}, not an object")
    unknown = result.keys() - _PROXY_RESPONSE_KEYS
    if unknown:
        raise MalformedProxyResponseError(f"unexpected keys {sorted(unknown)}")
    status = result.get("statusCode")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponseError(f"statusCode {status!r} is not an HTTP status")
    headers = _response_headers(result.get("headers"), result.get("multiValueHeaders"))
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status=status, headers=headers, body=_response_body(result))


def _response_headers(headers: Any, multi_value_headers: Any) -> list[tuple[str, str]]:
    """Merges both header maps; a name in multiValueHeaders takes its values from there only."""
    merged: dict[str, list[str]] = {}
    for name, value in _checked_mapping(headers, "headers").items():
        merged[name] = [_header_value(name, value)]
    for name, values in _checked_mapping(multi_value_headers, "multiValueHeaders").items():
        if not isinstance(values, list):
            raise MalformedProxyResponseError(f"multiValueHeaders[{name!r}] is not a list")
        merged[name] = [_header_value(name, value) for value in values]
    return [(name, value) for name, values in merged.items() for value in values]


def _checked_mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedProxyResponseError(f"{key} is not an object")
    return value


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedProxyResponseError(f"header {name!r} has a value of type {type(value).__name__}")
    return str(value)


def _response_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    is_base64_encoded = result.get("isBase64Encoded", False)
    if not isinstance(is_base64_encoded, bool):
        raise MalformedProxyResponseError("isBase64Encoded is not a boolean")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedProxyResponseError(f"body is a {type(body).__name__}, not a string")
    if not is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as error:
        raise MalformedProxyResponseError("body is not valid base64") from error


def gateway_response(status: HTTPStatus, message: str, error_type: str) -> HttpResponse:
    """A response API Gateway itself generates, in its JSON shape and with its error-type header."""
    return HttpResponse(
        status=status,
        headers=[("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)],
        body=json.dumps({"message": message}).encode("utf-8"),
    )


def missing_authentication_token() -> HttpResponse:
    return gateway_response(
        HTTPStatus.FORBIDDEN, "Missing Authentication Token", "MissingAuthenticationTokenException"
    )


def forbidden() -> HttpResponse:
    return gateway_response(HTTPStatus.FORBIDDEN, "Forbidden", "ForbiddenException")


def internal_server_error() -> HttpResponse:
    return gateway_response(HTTPStatus.BAD_GATEWAY, "Internal server error", "InternalServerErrorException")


def bad_request() -> HttpResponse:
    return gateway_response(HTTPStatus.BAD_REQUEST, "Bad Request", "BadRequestException")


def request_too_long() -> HttpResponse:
    return gateway_response(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long", "RequestEntityTooLargeException"
    )


# --- The server ------------------------------------------------------------------------------------------


class LocalApiGateway(ThreadingHTTPServer):
    """An HTTP server that answers like a deployed REST API stage."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        routes: Sequence[Route] = ROUTES,
        api_key: str | None = None,
        handlers: Mapping[str, LambdaHandler] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self.api_key = api_key
        self.handlers = HandlerRegistry(self.routes, handlers)
        # One invocation at a time in this process, as in one Lambda execution environment. Powertools keeps
        # the request being resolved on the resolver *class* (BaseRouter.current_event), shared by every
        # handler here: two invocations at once read each other's body and parameters (measured before this
        # lock: 5% of concurrent POSTs answered and stored another request's batch). Lambda serves concurrency
        # with more environments; here, with more gateway processes (the benchmark runs one per client).
        self._invocation_lock = threading.Lock()
        super().__init__(address, _GatewayRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def respond(self, request: HttpRequest) -> HttpResponse:
        """The whole of API Gateway's decision for one request, in its order: route, API key, integration."""
        if request.method == "GET" and request.raw_path == OPENAPI_PATH:
            return self._openapi_document()
        match = match_route(self.routes, request.method, request.raw_path)
        if match is None or match.route is None:
            return missing_authentication_token()
        if self.api_key is not None and not _presents_api_key(request, self.api_key):
            return forbidden()
        stamp = RequestStamp.fresh(api_key=self.api_key)
        return self._integrate(match.route, build_proxy_event(request, match, stamp))

    def _integrate(self, route: Route, event: dict[str, Any]) -> HttpResponse:
        name = route.function.name
        try:
            with self._invocation_lock:
                result = invoke_handler(self.handlers.get(name), event, name)
        except Exception:
            _LOGGER.exception("function %s raised; answering 502 like API Gateway", name)
            return internal_server_error()
        try:
            return proxy_result_to_response(result)
        except MalformedProxyResponseError as error:
            _LOGGER.error("function %s returned a malformed proxy response (%s); answering 502", name, error)
            return internal_server_error()

    def _openapi_document(self) -> HttpResponse:
        try:
            from player_sessions_local.openapi import build_openapi_document

            document = build_openapi_document()
        except Exception:
            _LOGGER.exception("could not build the OpenAPI document")
            return internal_server_error()
        return HttpResponse(
            status=HTTPStatus.OK,
            headers=[("Content-Type", "application/json")],
            body=json.dumps(document, indent=2).encode("utf-8"),
        )


def _presents_api_key(request: HttpRequest, api_key: str) -> bool:
    presented = _header(request.headers, "x-api-key")
    return presented is not None and hmac.compare_digest(presented.encode(), api_key.encode())


class _UnreadableBodyError(ValueError):
    """The request's framing (Content-Length or chunked encoding) cannot be read."""


class _BodyTooLongError(ValueError):
    """The body is over API Gateway's payload limit."""


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    """Reads the HTTP request, lets the server decide, writes the answer; every method goes the same way."""

    server: LocalApiGateway
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without TCP_NODELAY, Nagle's algorithm holds the body back until
    # the client's delayed ACK (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "player-sessions-local-gateway"
    sys_version = ""

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            body = self._read_body()
        except _BodyTooLongError:
            self.close_connection = True
            self._send(request_too_long(), request_id)
            return
        except _UnreadableBodyError:
            self.close_connection = True
            self._send(bad_request(), request_id)
            return
        target = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            raw_path=target.path,
            query=target.query,
            headers=self._forwarded_headers(),
            body=body,
            source_ip=self.client_address[0],
        )
        self._send(self.server.respond(request), request_id)

    def _read_body(self) -> bytes:
        """The whole body, never more than MAX_REQUEST_BYTES of it (an oversized one is left unread)."""
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            return self._read_chunked_body()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise _UnreadableBodyError("Content-Length is not a number") from error
        if length < 0:
            raise _UnreadableBodyError("Content-Length is negative")
        if length > MAX_REQUEST_BYTES:
            raise _BodyTooLongError(length)
        return self.rfile.read(length) if length else b""

    def _read_chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            except ValueError as error:
                raise _UnreadableBodyError("bad chunk size") from error
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > MAX_REQUEST_BYTES:
                raise _BodyTooLongError(len(body) + size)
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _forwarded_headers(self) -> list[tuple[str, str]]:
        """The client's headers plus those API Gateway adds on the way to the function."""
        headers = list(self.headers.items())
        client_chain = _header(headers, "x-forwarded-for")
        source_ip = self.client_address[0]
        trace_id = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        added = {
            "X-Amzn-Trace-Id": trace_id,
            "X-Forwarded-For": f"{client_chain}, {source_ip}" if client_chain else source_ip,
            "X-Forwarded-Port": str(self.server.server_address[1]),
            "X-Forwarded-Proto": "http",
        }
        replaced = {name.lower() for name in added}
        kept = [(name, value) for name, value in headers if name.lower() not in replaced]
        return kept + list(added.items())

    def _send(self, response: HttpResponse, request_id: str) -> None:
        """Writes the response with API Gateway's request-id header and an exact length (keep-alive)."""
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        _LOGGER.info("%s %s", self.address_string(), format % args)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, an invented one) goes the same way: no route defines it, so the
        # answer is API Gateway's 403, not http.server's 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


def create_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    routes: Sequence[Route] = ROUTES,
    api_key: str | None = None,
    handlers: Mapping[str, LambdaHandler] | None = None,
) -> LocalApiGateway:
    """A bound gateway, not yet serving; port 0 picks a free port (see ``.url``)."""
    return LocalApiGateway((host, port), routes=routes, api_key=api_key, handlers=handlers)


def ensure_repository_root_on_path() -> None:
    """Lets ``functions.*`` import when run from a checkout without the package installed."""
    root = Path(__file__).resolve().parents[2]
    if (root / "functions").is_dir() and str(root) not in sys.path:
        sys.path.insert(0, str(root))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m player_sessions_local.gateway",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    arguments = parser.parse_args(argv)

    from player_sessions.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    ensure_repository_root_on_path()
    api_key = get_settings().api_key
    server = create_server(arguments.host, arguments.port, api_key=api_key)
    print(f"Serving the player session API at {server.url} (API key {'required' if api_key else 'off'})")
    print(f"OpenAPI document: {server.url}{OPENAPI_PATH}", flush=True)
    signal.signal(signal.SIGTERM, _stop_serving)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _stop_serving(signum: int, frame: Any) -> None:
    """SIGTERM (make, a process manager) stops the server the same clean way Ctrl-C does."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
