"""HTTP concerns shared by the handlers: the resolver, reading a JSON batch, and errors mapped to statuses.

This is the one place where the exception hierarchy becomes HTTP.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from re import Match, Pattern
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel

from player_sessions.errors import (
    BadRequestError,
    DatabaseUnavailableError,
    ErrorDetail,
    PayloadTooLargeError,
    PlayerSessionsError,
    UnsupportedMediaTypeError,
)
from player_sessions.models import ErrorOut, json_object
from player_sessions.models.fields import RULE_OF_PATTERN
from player_sessions.observability import MetricUnit, logger, metrics, reads_reported
from player_sessions.settings import Settings


def documented(description: str, model: Any) -> OpenAPIResponse:
    """One answer of a route in the OpenAPI document: what it means and its JSON body's model."""
    return {"description": description, "content": {"application/json": {"model": model}}}


ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    400: documented("A parameter or the body is invalid; `errors` names each one and why", ErrorOut),
    403: documented(
        "Missing or wrong `x-api-key`; or, on a route of the studio's, a request not signed (SigV4) by an "
        "identity allowed to call it",
        ErrorOut,
    ),
    413: documented("Body over the size limit, or more events than a batch may hold", ErrorOut),
    415: documented("The body is not declared as application/json", ErrorOut),
    500: documented(
        "Unexpected failure: `message` carries the request id to quote; the stack is logged", ErrorOut
    ),
    503: documented("Cassandra is unreachable; retry after `Retry-After` seconds", ErrorOut),
}


def read_responses(description: str, model: Any) -> dict[int, OpenAPIResponse]:
    """A read route's answers: its 200 (``model``) and the errors every read may give (400, 403, 503)."""
    return {
        200: documented(description, model),
        **{status: ERROR_RESPONSES[status] for status in (400, 403, 503)},
    }


class DecodedPathRestResolver(APIGatewayRestResolver):
    """The REST resolver, with path parameters percent-decoded as API Gateway's own ``pathParameters`` are.

    A REST API hands the function ``path`` still percent-encoded, and Powertools takes path parameters from it:
    decoded, a parameter is validated and looked up as the client meant it (``a%7Cb`` is ``a|b``; ``%00`` is a
    NUL, refused).
    """

    def _convert_matches_into_route_keys(self, match: Match[str]) -> dict[str, str]:
        encoded = super()._convert_matches_into_route_keys(match)
        return {name: unquote(value) for name, value in encoded.items()}

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> Pattern[str]:
        """Routes as API Gateway routes them: a path parameter is any non-empty segment. Powertools takes only
        some characters in one, and a path with another (a raw ``é`` the gateway passed on) matched no route:
        a 500, where the parameter's own rule gives a 400 that names it."""
        return re.compile(base_regex.format(re.sub(r"(<\w+>)", r"(?P\1[^/]+)", rule)))


ModelT = TypeVar("ModelT", bound=BaseModel)
_ErrorHandler = TypeVar("_ErrorHandler", bound=Callable[..., Response[str]])


def _exception_handler(
    app: APIGatewayRestResolver, exc_class: type[Exception]
) -> Callable[[_ErrorHandler], _ErrorHandler]:
    """``app.exception_handler``, typed: Powertools leaves it unannotated; it registers the function and
    returns it unchanged."""
    return cast("Callable[[_ErrorHandler], _ErrorHandler]", app.exception_handler(exc_class))


def build_resolver() -> APIGatewayRestResolver:
    """A resolver that validates parameters, answers every error as ``{"message", "errors"}``, and reports
    each answered request's Cassandra reads (observability.reads_reported)."""
    app = DecodedPathRestResolver(enable_validation=True)
    app.use(middlewares=[reads_reported])

    @_exception_handler(app, RequestValidationError)
    def invalid_parameters(error: RequestValidationError) -> Response[str]:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        problems = [_describe_validation_problem(problem) for problem in error.errors()]
        summary = "; ".join(f"{p['parameter']}: {p['reason']}" for p in problems)
        return error_response(400, f"invalid request: {summary}", problems)

    @_exception_handler(app, PlayerSessionsError)
    def service_error(error: PlayerSessionsError) -> Response[str]:
        headers: dict[str, str] = {}
        metrics.add_metric(
            name="ClientErrors" if error.status_code < 500 else "ServerErrors", unit=MetricUnit.Count, value=1
        )
        if isinstance(error, DatabaseUnavailableError):
            # The driver's own error names the hosts tried and what each answered: for the log, not the client.
            cause = repr(error.__cause__)[:1000] if error.__cause__ else None
            logger.warning("database unavailable", extra={"reason": error.message, "driver_error": cause})
            headers["Retry-After"] = str(error.retry_after_seconds)
        return error_response(error.status_code, error.message, error.errors, headers)

    @_exception_handler(app, Exception)
    def unexpected_error(error: Exception) -> Response[str]:
        # Anything else is a bug: its stack goes to the log, the client gets the request id to report it by.
        request_id = app.lambda_context.aws_request_id if app.lambda_context else "unknown"
        logger.exception("unexpected error", extra={"error_type": type(error).__name__})
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        return error_response(
            500,
            f"internal error (request id {request_id})",
            [{"parameter": "request", "in": "request", "reason": f"request id {request_id}"}],
        )

    return app


def error_response(
    status: int,
    message: str,
    errors: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"message": message, "errors": errors or []}),
        headers=headers or {},
    )


def model_response(status: int, body: ModelT, headers: dict[str, str] | None = None) -> Response[ModelT]:
    """A route's typed answer with a status of its choosing (the resolver validates and serializes it)."""
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def read_json_batch(event: APIGatewayProxyEvent, settings: Settings) -> list[Any]:
    """The request body as a list of 1..max_batch_events decoded JSON values, or the error that says why not."""
    header = _lower_keys(event.headers).get("content-type", "")
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json, got {header or 'none'}",
            [{"parameter": "Content-Type", "in": "header", "reason": "must be application/json"}],
        )
    charset = _charset(header)
    if charset not in (None, "utf-8", "utf8"):
        raise UnsupportedMediaTypeError(
            f"the body must be UTF-8, got charset={charset}",
            [{"parameter": "Content-Type", "in": "header", "reason": "charset must be utf-8 (RFC 8259)"}],
        )
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8", "surrogatepass")
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLargeError(
            f"body is {len(body)} bytes; the limit is {settings.max_body_bytes}",
            [{"parameter": "body", "in": "body", "reason": f"larger than {settings.max_body_bytes} bytes"}],
        )
    try:
        # UTF-8 only (RFC 8259), a leading byte order mark allowed: json.loads would guess UTF-16 and UTF-32 too.
        items = json.loads(body.decode("utf-8-sig"), parse_constant=_not_json, object_pairs_hook=json_object)
    except (ValueError, RecursionError) as error:
        raise BadRequestError(
            "body is not valid JSON", [{"parameter": "body", "in": "body", "reason": _json_error(error)}]
        ) from None
    if not isinstance(items, list):
        raise BadRequestError(
            "body must be a JSON array of events",
            [{"parameter": "body", "in": "body", "reason": "must be a JSON array"}],
        )
    if not items:
        raise BadRequestError(
            "body must hold at least one event",
            [{"parameter": "body", "in": "body", "reason": "empty array"}],
        )
    if len(items) > settings.max_batch_events:
        raise PayloadTooLargeError(
            f"batch holds {len(items)} events; the limit is {settings.max_batch_events}",
            [{"parameter": "body", "in": "body", "reason": f"more than {settings.max_batch_events} events"}],
        )
    return items


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _lower_keys(headers: dict[str, str] | None) -> dict[str, str]:
    return {key.lower(): value for key, value in (headers or {}).items()}


def _not_json(constant: str) -> Any:
    """Python reads NaN, Infinity and -Infinity as numbers; JSON has no such values (RFC 8259)."""
    raise ValueError(f"{constant} is not a JSON value")


def _json_error(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8: byte {error.start} cannot be decoded"
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return str(error)[:200] or type(error).__name__


def _describe_validation_problem(problem: dict[str, Any]) -> ErrorDetail:
    location = [str(part) for part in problem.get("loc", ())]
    where = location[0] if location else "request"
    parameter = location[-1] if len(location) > 1 else where
    return {"parameter": parameter, "in": where, "reason": _reason(problem)}


def _reason(problem: dict[str, Any]) -> str:
    """Pydantic's message, said as the field's rule where it would show a regular expression or a list."""
    if isinstance(problem.get("input"), list):
        return "given more than once"
    if problem.get("type") == "string_pattern_mismatch":
        rule = RULE_OF_PATTERN.get(str(problem.get("ctx", {}).get("pattern")))
        if rule:
            return f"must be {rule}"
    return str(problem.get("msg", "invalid")).removeprefix("Value error, ")
