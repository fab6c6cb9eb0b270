"""What API Gateway answers: the function's proxy response mapped to HTTP, or API Gateway's own answer when
it, not the function, decides (unknown route, missing key, a failed or timed-out integration, a body too
long)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from player_sessions_local.gateway.invocation import Invocation, Outcome

_PROXY_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
_LOGGER = logging.getLogger(__name__)


def answer_invocation(function_name: str, invocation: Invocation) -> HttpResponse:
    """The client's answer to an integration: the function's response, or API Gateway's 502 or 504."""
    if invocation.outcome is Outcome.THROTTLED:
        return too_many_requests()
    if invocation.outcome is Outcome.NOT_STARTED:
        _LOGGER.error(
            "function %s: no environment free within the integration timeout; answering 504", function_name
        )
        return endpoint_request_timed_out()
    if invocation.outcome is not Outcome.RETURNED:
        _LOGGER.error(
            "function %s %s in %s (%s); answering 502 like API Gateway",
            function_name,
            invocation.outcome,
            invocation.environment or "this process",
            invocation.detail,
        )
        return internal_server_error()
    try:
        return proxy_result_to_response(invocation.result)
    except MalformedProxyResponseError as error:
        _LOGGER.error(
            "function %s returned a malformed proxy response (%s); answering 502", function_name, error
        )
        return internal_server_error()


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
    """A response API Gateway itself generates, with its error-type header, in the service's error shape as the
    stack's gateway responses give it (infra_cdk.api: ``{"message": ..., "errors": []}``)."""
    return HttpResponse(
        status=status,
        headers=[("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)],
        body=json.dumps({"message": message, "errors": []}).encode("utf-8"),
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


THROTTLE_RETRY_AFTER_SECONDS = 1


def too_many_requests() -> HttpResponse:
    """API Gateway's throttle answer (its usage plan's limits, or a function throttled past its concurrency):
    at once, with a hint to retry shortly."""
    response = gateway_response(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests", "TooManyRequestsException")
    response.headers.append(("Retry-After", str(THROTTLE_RETRY_AFTER_SECONDS)))
    return response


def endpoint_request_timed_out() -> HttpResponse:
    """API Gateway's answer when the integration has not answered within its 29 s."""
    return gateway_response(
        HTTPStatus.GATEWAY_TIMEOUT, "Endpoint request timed out", "InternalServerErrorException"
    )
