"""Schemathesis against the OpenAPI document the gateway serves: generated requests, valid and invalid, never
get a 5xx, and every answer matches the document (status, content type, headers, body schema); an invalid
parameter is refused with a 4xx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.callers import RequestsCaller
from tests.faults.conftest import API_KEY, ServedApi

pytestmark = pytest.mark.faults

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Not for POST /events: a batch is answered event by event, so a body the schema refuses may rightly get 207,
# or 200 (a malformed country on an end event is ignored, as the spec says); test_hostile_input.py covers
# hostile bodies one by one.
REFUSES_INVALID_INPUT = [negative_data_rejection]
EXAMPLES_PER_OPERATION = 40
CALLER = RequestsCaller("fuzzing-player")
"""A game client's token on POST /events, the studio's signature on every other route: the fuzzing goes past
the checks of the caller to the functions (tests/e2e/test_who_may_call.py covers the checks)."""
REQUEST_TIMEOUT_SECONDS = 30


# The API key is sent with every request: every route lists the 403 of a missing key, and
# test_http_api.py checks each route's 403; here the fuzzing goes to the functions. Unexpected methods, TRACE
# included, get API Gateway's 403.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"with-security-parameters": False},
        "phases": {"coverage": {"unexpected-methods": ["put", "patch", "delete", "options", "trace"]}},
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def fuzzed_api(hostile_api: ServedApi, test_settings) -> ServedApi:
    """The served gateway, checked to serve the document the cases come from, with its rollups built.

    The first count over a long window on a fresh keyspace builds every rollup of the year (about 30 s here),
    longer than the function's 10 s timeout, after which its environment is killed (API Gateway answers 502):
    built up front, in this process, as the loader's command does after a bulk load."""
    from player_sessions.bootstrap import build_services
    from player_sessions_local.load import build_rollups

    services = build_services(test_settings)
    try:
        build_rollups(services)
    finally:
        services.cassandra.close()
        if services.redis is not None:
            services.redis.close()
    with hostile_api.client() as client:
        assert client.get("/openapi.json").json() == DOCUMENT
        warm = client.get("/countries/starts?hours=8760")
        assert warm.status_code == 200, warm.text
    return hostile_api


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_generated_requests_get_no_5xx_and_answers_that_match_the_document(case, fuzzed_api):
    checks = CHECKS if case.operation.path.endswith("/events") else CHECKS + REFUSES_INVALID_INPUT
    response = case.call_and_validate(
        base_url=fuzzed_api.base_url,
        headers={"x-api-key": API_KEY},
        auth=CALLER,
        checks=checks,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    # The caller's proof was accepted: a request of the operation's own method reached the function (another
    # method gets API Gateway's 403 before any check of the caller).
    if case.method.upper() == case.operation.method.upper():
        assert response.status_code not in (401, 403), response.text


def test_the_document_describes_the_answer_to_an_all_rejected_batch(hostile_api):
    # Given the answer to a batch whose every event is rejected
    with hostile_api.client() as client:
        answer = client.post("/studio/events", json=[[None]])
    assert answer.status_code == 400
    # When it is checked against what the document declares for that status
    response = DOCUMENT["paths"]["/studio/events"]["post"]["responses"]["400"]
    declared = response["content"]["application/json"]["schema"]
    references = [option["$ref"] for option in declared.get("anyOf", [declared])]
    models = [DOCUMENT["components"]["schemas"][reference.rsplit("/", 1)[1]] for reference in references]
    # Then it has every field that one of the declared models requires (the ingest result, here)
    assert any(set(model["required"]) <= set(answer.json()) for model in models)
    assert {"stored", "discarded", "rejected", "errors"} <= set(answer.json())
