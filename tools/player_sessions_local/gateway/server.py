"""The local API Gateway's HTTP server: reads each request, decides in API Gateway's order (route, API key,
integration) and writes the answer. The integration runs the function in a pool of execution environments
(`make serve`), or in this process (unit tests, and ``--in-process`` for the one-environment comparison).

    python -m player_sessions_local.gateway [--host 127.0.0.1] [--port 3000] [--max-concurrency N]
                                            [--idle-timeout SECONDS] [--in-process]

The API key, when wanted, comes from PLAYER_SESSIONS_API_KEY (through the service's settings).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from player_sessions.routes import ROUTES, Route
from player_sessions_local.gateway.answers import (
    HttpResponse,
    answer_invocation,
    bad_request,
    forbidden,
    gateway_response,
    internal_server_error,
    missing_authentication_token,
    request_too_long,
    too_many_requests,
)
from player_sessions_local.gateway.authorization import OPEN, Authorization
from player_sessions_local.gateway.in_process import InProcessInvoker, LambdaHandler
from player_sessions_local.gateway.invocation import Invoker
from player_sessions_local.gateway.routing import (
    HttpRequest,
    RequestStamp,
    build_proxy_event,
    header_value,
    match_route,
)
from player_sessions_local.gateway.throttling import TokenBucket, usage_plan_bucket
from player_sessions_local.gateway.validation import refused_by_validator

DEFAULT_PORT = 3000
OPENAPI_PATH = "/openapi.json"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""API Gateway's payload limit for REST APIs."""
BODY_READ_TIMEOUT_SECONDS = 10.0
"""How long the whole body a request declares (by length or in chunks) may take to arrive once its headers have:
a client that sends less is answered 408 and its connection closed, instead of holding a thread until it goes
away."""
_LOGGER = logging.getLogger(__name__)


class LocalApiGateway(ThreadingHTTPServer):
    """An HTTP server that answers like a deployed REST API stage."""

    daemon_threads = True
    request_queue_size = 1024
    """The listen backlog: a burst of new connections waits for a thread, not for the kernel to reset or delay
    it (socketserver's default is 5; API Gateway refuses nothing for want of a queue)."""

    def __init__(
        self,
        address: tuple[str, int],
        routes: Sequence[Route] = ROUTES,
        api_key: str | None = None,
        invoker: Invoker | None = None,
        usage_plan: TokenBucket | None = None,
        *,
        authorization: Callable[[Invoker], Authorization] | None = None,
    ) -> None:
        """``usage_plan``: the API key's throttle (default: the deployed usage plan's, when a key is required).
        ``authorization``: the checks of each route's caller, made on this gateway's invoker; None checks
        nobody (``PLAYER_SESSIONS_LOCAL_AUTH=off``, and the gateway's own unit tests)."""
        self.routes = tuple(routes)
        self.api_key = api_key
        self.usage_plan = usage_plan if usage_plan is not None or api_key is None else usage_plan_bucket()
        self.invoker: Invoker = invoker if invoker is not None else InProcessInvoker(self.routes)
        self.authorization = authorization(self.invoker) if authorization is not None else None
        super().__init__(address, _GatewayRequestHandler)

    @property
    def url(self) -> str:
        # What server_address holds once bound; the socket reports its host as a str.
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def respond(self, request: HttpRequest) -> HttpResponse:
        """The whole of API Gateway's decision for one request, in its order: route, the caller's proof of
        identity (authorizer or IAM), API key and usage plan, request validation, integration."""
        if request.method == "GET" and request.raw_path == OPENAPI_PATH:
            return self._openapi_document()
        match = match_route(self.routes, request.method, request.raw_path)
        if match is None or match.route is None:
            return missing_authentication_token()
        granted = OPEN if self.authorization is None else self.authorization.check(request, match.route)
        if isinstance(granted, HttpResponse):
            return granted
        refused = self._refused_before_integration(request, match.route)
        if refused is not None:
            return refused
        signer = granted.signed_by
        stamp = RequestStamp.fresh(
            api_key=self.api_key,
            request_id=request.request_id,
            authorizer=granted.authorizer,
            signer_arn=signer.user_arn if signer else None,
            signer_access_key=signer.access_key_id if signer else None,
        )
        event = build_proxy_event(request, match, stamp)
        name = match.route.function.name
        invocation = self.invoker.invoke(
            name,
            event,
            request_id=str(uuid.uuid4()),
            trace_id=header_value(request.headers, "x-amzn-trace-id"),
        )
        return answer_invocation(name, invocation)

    def _refused_before_integration(self, request: HttpRequest, route: Route) -> HttpResponse | None:
        """The API key, its usage plan, then the request validator."""
        if self.api_key is not None and not _presents_api_key(request, self.api_key):
            return forbidden()
        if self.usage_plan is not None and not self.usage_plan.take():
            return too_many_requests()
        return refused_by_validator(route, request)

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

    def server_close(self) -> None:
        super().server_close()
        self.invoker.close()


def _presents_api_key(request: HttpRequest, api_key: str) -> bool:
    presented = header_value(request.headers, "x-api-key")
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
        except TimeoutError:
            self.close_connection = True
            self._send(
                gateway_response(HTTPStatus.REQUEST_TIMEOUT, "Request Timeout", "RequestTimeout"), request_id
            )
            return
        target = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            raw_path=target.path,
            query=target.query,
            headers=self._forwarded_headers(),
            body=body,
            source_ip=self.client_address[0],
            request_id=request_id,
        )
        self._send(self.server.respond(request), request_id)

    def _read_body(self) -> bytes:
        """The whole body, never more than MAX_REQUEST_BYTES of it (an oversized one is left unread), within
        BODY_READ_TIMEOUT_SECONDS (TimeoutError otherwise)."""
        deadline = time.monotonic() + BODY_READ_TIMEOUT_SECONDS
        try:
            return self._read_framed_body(deadline)
        finally:
            self.connection.settimeout(None)

    def _within(self, deadline: float) -> None:
        """The next read may wait only for what is left of the body's time."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the body took too long")
        self.connection.settimeout(left)

    def _read_framed_body(self, deadline: float) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            return self._read_chunked_body(deadline)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise _UnreadableBodyError("Content-Length is not a number") from error
        if length < 0:
            raise _UnreadableBodyError("Content-Length is negative")
        if length > MAX_REQUEST_BYTES:
            raise _BodyTooLongError(length)
        return self._read_exactly(length, deadline)

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        """``size`` bytes of body, each read waiting no longer than the body's time left."""
        read = bytearray()
        while len(read) < size:
            self._within(deadline)
            piece = self.rfile.read1(size - len(read))
            if not piece:
                raise _UnreadableBodyError("the body ended before its declared length")
            read += piece
        return bytes(read)

    def _read_chunked_body(self, deadline: float) -> bytes:
        body = bytearray()
        while True:
            self._within(deadline)
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
            body += self._read_exactly(size, deadline)
            self._within(deadline)
            self.rfile.readline(1024)

    def _forwarded_headers(self) -> list[tuple[str, str]]:
        """The client's headers plus those API Gateway adds on the way to the function."""
        headers = list(self.headers.items())
        client_chain = header_value(headers, "x-forwarded-for")
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

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:  # noqa: ARG002  (http.server's signature; the detail is not shown)
        """http.server's own refusals (a request line or headers it cannot read, 400, 414, 431) in the service's
        error shape, as API Gateway's gateway responses give them, instead of an HTML page."""
        self.close_connection = True
        # (http.server would answer a request line it could not read as HTTP/0.9: a bare body, no status line)
        self.request_version = self.protocol_version
        phrase = message or HTTPStatus(code).phrase
        self._send(gateway_response(HTTPStatus(code), phrase, "BadRequestException"), str(uuid.uuid4()))

    def log_message(self, format: str, *args: Any) -> None:
        _LOGGER.info("%s %s", self.address_string(), format % args)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815  http.server dispatches to do_<METHOD>

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, an invented one) goes the same way: no route defines it, so the
        # answer is API Gateway's 403, not http.server's 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


def create_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    routes: Sequence[Route] = ROUTES,
    api_key: str | None = None,
    handlers: Mapping[str, LambdaHandler] | None = None,
    invoker: Invoker | None = None,
    authorization: Callable[[Invoker], Authorization] | None = None,
) -> LocalApiGateway:
    """A bound gateway, not yet serving; port 0 picks a free port (see ``.url``). Without an ``invoker`` the
    functions run in this process (``handlers`` injected, or imported on first use)."""
    if invoker is None:
        invoker = InProcessInvoker(routes, handlers)
    return LocalApiGateway(
        (host, port), routes=routes, api_key=api_key, invoker=invoker, authorization=authorization
    )


# --- Serving -------------------------------------------------------------------------------------------
