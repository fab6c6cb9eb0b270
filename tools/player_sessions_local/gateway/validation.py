"""API Gateway's request validator, as the stack sets it on every method (infra_cdk.api, "parameters"): before
the function runs, a required query parameter that is missing or blank is answered 400 by API Gateway itself
("Missing required request parameters: [hours]"). Which parameters are required comes from the OpenAPI document
the template's method requests are built from. Bodies are not validated by the gateway, deployed or here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from infra_cdk.constants import OPENAPI_DOCUMENT
from player_sessions.routes import Route
from player_sessions_local.gateway.answers import HttpResponse, gateway_response
from player_sessions_local.gateway.routing import HttpRequest


def refused_by_validator(
    route: Route, request: HttpRequest, document: Path = OPENAPI_DOCUMENT
) -> HttpResponse | None:
    """API Gateway's 400 for ``request``, or None when its validator lets it through to the function."""
    operation = _operations(document).get((route.method.lower(), route.path))
    if operation is None:
        return None
    present = parse_qs(request.query, keep_blank_values=True)
    missing = [
        parameter["name"]
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "query"
        and parameter.get("required")
        and not any(value.strip() for value in present.get(parameter["name"], []))
    ]
    if not missing:
        return None
    return gateway_response(
        HTTPStatus.BAD_REQUEST,
        f"Missing required request parameters: [{', '.join(missing)}]",
        "BadRequestException",
    )


@cache
def _operations(document: Path) -> Mapping[tuple[str, str], Mapping[str, Any]]:
    paths = json.loads(document.read_text())["paths"]
    return {(method, path): operation for path, item in paths.items() for method, operation in item.items()}
