"""The method requests of the REST API, read from the OpenAPI document the handlers generate: which operation a
route is, and which parameters API Gateway requires before it calls the function. Used by the CDK app and by the
local gateway's validator (without importing the CDK)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra_cdk.constants import OPENAPI_DOCUMENT
from player_sessions.routes import Route

PARAMETER_LOCATIONS = {"path": "path", "query": "querystring", "header": "header"}


def load_openapi(path: Path = OPENAPI_DOCUMENT) -> dict[str, Any]:
    return json.loads(path.read_text())


def openapi_operation(openapi: Mapping[str, Any], route: Route) -> Mapping[str, Any]:
    try:
        return openapi["paths"][route.path][route.method.lower()]
    except KeyError:
        raise ValueError(
            f"{route.method} {route.path} is in the route table but not in {OPENAPI_DOCUMENT.name}: "
            "regenerate it with `make openapi`"
        ) from None


def request_parameters(operation: Mapping[str, Any]) -> dict[str, bool]:
    """API Gateway's method request parameters (``method.request.querystring.hours``: required or not)."""
    return {
        f"method.request.{PARAMETER_LOCATIONS[parameter['in']]}.{parameter['name']}": bool(
            parameter.get("required", False)
        )
        for parameter in operation.get("parameters", [])
        if parameter["in"] in PARAMETER_LOCATIONS
    }
