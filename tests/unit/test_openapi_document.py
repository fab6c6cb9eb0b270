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
