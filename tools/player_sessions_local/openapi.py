"""The OpenAPI 3.1 document of the whole API, generated from the functions' resolvers.

    python -m player_sessions_local.openapi --write   # refresh the checked-in docs/openapi.json
    python -m player_sessions_local.openapi           # print it

Each function's APIGatewayRestResolver knows its routes, parameters and response models; this merges them.
The batch body of POST /events is read by hand (so that one bad event cannot fail the batch), so its schema is
added here from the EventIn model.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from player_sessions.models import EventIn
from player_sessions.routes import FUNCTIONS, PLAYER_EVENTS_PATH, ROUTES, STUDIO_EVENTS_PATH, Caller
from player_sessions.settings import Settings

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
TITLE = "Player session service"
VERSION = "1.0.0"


def build_openapi_document() -> dict[str, Any]:
    settings = Settings()
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Collects player session events; answers starts per country and players' last "
            "completed sessions. Timestamps are RFC 3339 in UTC. Every route needs an API key (`x-api-key`) "
            "and its caller's proof of identity: a game client's player token on `POST /events`, a SigV4 "
            "signature elsewhere: with the studio's AWS credentials (StudioAccessPolicy), or on the privacy "
            "routes with the administration's (AdminAccessPolicy).",
        },
        "servers": [{"url": "http://127.0.0.1:3000", "description": "local gateway (make serve)"}],
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"ApiKey": []}],
    }
    for function in FUNCTIONS:
        try:
            module = importlib.import_module(function.handler_module)
        except ModuleNotFoundError:
            continue
        part = json.loads(module.app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for path, operations in part.get("paths", {}).items():
            for operation in operations.values():
                # Parameter problems answer 400 (player_sessions.http), never Powertools' default 422.
                operation["responses"].pop("422", None)
            document["paths"].setdefault(path, {}).update(operations)
        document["components"]["schemas"].update(part.get("components", {}).get("schemas", {}))
    _describe_event_batch(document, settings)
    _describe_callers(document)
    document["paths"] = dict(sorted(document["paths"].items()))
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


THROTTLED: dict[str, Any] = {
    "description": "Refused before any function ran, nothing stored: past the API key's usage plan (its rate, "
    "burst or daily quota), or past the functions' concurrency (locally, every execution environment busy: "
    "`Retry-After: 1`). Retry with backoff.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}
"""API Gateway's answer on every route when it throttles (its body the service's error shape: infra_cdk.api)."""


_CALLER_SCHEMES = {Caller.PLAYER: "playerToken", Caller.STUDIO: "sigv4", Caller.ADMIN: "adminSigv4"}
"""The security scheme of each caller's proof of identity."""


def _describe_callers(document: dict[str, Any]) -> None:
    """Each operation's proof of identity, from the route table's callers (docs/security.md)."""
    document["components"]["securitySchemes"] |= {
        "playerToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A game client's short-lived token from the studio's login; its subject is the only "
            "player whose events the client may send.",
        },
        "sigv4": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "AWS Signature Version 4 (service execute-api) with the studio's IAM credentials "
            "(a role holding the stack's StudioAccessPolicy).",
        },
        "adminSigv4": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "AWS Signature Version 4 (service execute-api) with the administration's IAM "
            "credentials (a role holding the stack's AdminAccessPolicy); the studio's are refused.",
        },
    }
    for route in ROUTES:
        operation = document["paths"].get(route.path, {}).get(route.method.lower())
        if operation is not None:
            # Both at once: the API key (the game title's quota) and the caller's proof of identity.
            operation["security"] = [{"ApiKey": [], _CALLER_SCHEMES[route.caller]: []}]
            operation["responses"]["429"] = THROTTLED


def _describe_event_batch(document: dict[str, Any], settings: Settings) -> None:
    event_schema = EventIn.model_json_schema(ref_template="#/components/schemas/{model}")
    document["components"]["schemas"]["EventIn"] = event_schema
    for path in (PLAYER_EVENTS_PATH, STUDIO_EVENTS_PATH):
        operation = document["paths"].get(path, {}).get("post")
        if operation is not None:
            operation["requestBody"] = _batch_body(settings)


def _batch_body(settings: Settings) -> dict[str, Any]:
    return {
        "required": True,
        "description": f"1 to {settings.max_batch_events} events; at most {settings.max_body_bytes} bytes.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.max_batch_events,
                    "items": {"$ref": "#/components/schemas/EventIn"},
                }
            }
        },
    }


def render() -> str:
    return json.dumps(build_openapi_document(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"write {CHECKED_IN}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        CHECKED_IN.write_text(text)
        print(f"wrote {CHECKED_IN}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
