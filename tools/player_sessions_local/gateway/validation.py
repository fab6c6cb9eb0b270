"""API Gateway's request validator, as the stack sets it on every method (infra_cdk.api, "parameters"): before
the function runs, a required query parameter that is missing or blank is answered 400 by API Gateway itself
("Missing required request parameters: [hours]"). The required parameters are the template's method request
parameters (infra_cdk.method_requests). Bodies are not validated by the gateway, deployed or here.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from infra_cdk.constants import OPENAPI_DOCUMENT
from infra_cdk.method_requests import load_openapi, openapi_operation, request_parameters
from player_sessions.routes import Route
from player_sessions_local.gateway.answers import HttpResponse, gateway_response
from player_sessions_local.gateway.routing import HttpRequest

QUERY_PARAMETER = "method.request.querystring."


def refused_by_validator(
    route: Route, request: HttpRequest, document: Path = OPENAPI_DOCUMENT
) -> HttpResponse | None:
    """API Gateway's 400 for ``request``, or None when its validator lets it through to the function."""
    required = _required_query_parameters(document, route)
    if not required:
        return None
    present = parse_qs(request.query, keep_blank_values=True)
    missing = [name for name in required if not any(value.strip() for value in present.get(name, []))]
    if not missing:
        return None
    return gateway_response(
        HTTPStatus.BAD_REQUEST,
        f"Missing required request parameters: [{', '.join(missing)}]",
        "BadRequestException",
    )


@cache
def _required_query_parameters(document: Path, route: Route) -> tuple[str, ...]:
    """The route's required query parameters; none for a route the document does not hold (the gateway's own
    tests serve made-up ones)."""
    try:
        operation = openapi_operation(_document(document), route)
    except ValueError:
        return ()
    return tuple(
        name.removeprefix(QUERY_PARAMETER)
        for name, required in request_parameters(operation).items()
        if required and name.startswith(QUERY_PARAMETER)
    )


@cache
def _document(path: Path) -> dict[str, Any]:
    return load_openapi(path)
