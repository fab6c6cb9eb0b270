"""The checked-in OpenAPI document (docs/openapi.json) is the one the functions' resolvers generate: building
it needs no service, so a handler change that forgets `make openapi` fails here, in the unit tier."""

from __future__ import annotations

import json
import os

from player_sessions_local.openapi import CHECKED_IN, build_openapi_document


def test_checked_in_openapi_document_matches_the_one_generated_from_the_handlers(monkeypatch):
    # Given the checked-in document, and the service's default settings (the limits it states come from them)
    checked_in = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    for name in list(os.environ):
        if name.startswith("PLAYER_SESSIONS_"):
            monkeypatch.delenv(name)
    # When the document is generated from the functions' resolvers
    generated = build_openapi_document()
    # Then it is the checked-in one (refresh it with `make openapi`)
    assert generated == checked_in, "docs/openapi.json is out of date: run `make openapi`"


def test_every_route_documents_the_throttling_answer_in_the_error_shape():
    # Given the generated document / When each route's answers are read
    from player_sessions.routes import ROUTES

    document = build_openapi_document()
    # Then each names 429 with the error shape the gateway answers it in (message, errors)
    for route in ROUTES:
        throttled = document["paths"][route.path][route.method.lower()]["responses"]["429"]
        assert throttled["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert set(document["components"]["schemas"]["ErrorOut"]["properties"]) == {"message", "errors"}
