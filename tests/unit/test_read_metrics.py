"""Every read route reports the Cassandra rows and partitions it read, as the EMF metrics RowsRead and
PartitionsRead (the bounds the data model promises, watched deployed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import Response

from functions.country_starts.handler import app, lambda_handler
from functions.player_sessions.handler import lambda_handler as player_sessions_handler
from player_sessions import observability
from player_sessions.bootstrap import use_services
from player_sessions.domain.ingest import ingest_batch
from player_sessions.observability import metrics, reads_reported
from player_sessions.read_counts import count_read, metered
from player_sessions_local.gateway.in_process import LocalLambdaContext
from tests.fakes import in_memory_services

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_the_middleware_reports_what_the_route_read():
    # Given a route that reads seven rows of two partitions in two statements
    def route(_app: Any) -> Response[str]:
        count_read(rows=4, partitions=1)
        count_read(rows=3, partitions=1)
        return Response(status_code=200, body="{}")

    metrics.clear_metrics()
    try:
        # When it runs behind the middleware
        response = reads_reported(app, route)
        reported = {name: entry["Value"] for name, entry in metrics.metric_set.items()}
    finally:
        metrics.clear_metrics()
    # Then its answer is passed on and both counts are reported once
    assert response.status_code == 200
    assert reported == {"RowsRead": [7], "PartitionsRead": [2]}


@pytest.fixture
def reported(monkeypatch) -> list[tuple[int, int]]:
    """The (rows, partitions) each invocation reports (the EMF line itself is checked by the first test: a
    process may have metrics disabled)."""
    reports: list[tuple[int, int]] = []
    monkeypatch.setattr(
        observability, "report_reads", lambda tally: reports.append((tally.rows, tally.partitions))
    )
    return reports


def test_a_country_route_reports_its_reads(reported):
    # Given services on the in-memory stores (which count their reads as the Cassandra repositories do), and
    # the reads reported recorded (the EMF line itself is checked above: a process may have metrics disabled)
    services = in_memory_services(datetime(2026, 11, 28, tzinfo=UTC))
    event = json.loads((EVENTS / "country_starts_counts.json").read_text())
    with metered() as expected:
        services.country_starts.counts(int(event["queryStringParameters"]["hours"]))
    with use_services(services):
        # When the function answers the same count
        response = lambda_handler(event, LocalLambdaContext(function_name="country_starts"))
    # Then the route reported, once, what the count read
    assert response["statusCode"] == 200
    assert expected.partitions > 0
    assert reported == [(expected.rows, expected.partitions)]


def test_every_function_reports_its_reads_not_only_the_country_routes(reported):
    # Given a player with a completed session in the in-memory stores, and the reads reported recorded
    services = in_memory_services(datetime(2026, 11, 28, tzinfo=UTC))
    event = json.loads((EVENTS / "player_sessions_query.json").read_text())
    player_id = event["pathParameters"]["player_id"]
    ingest_event = json.loads((EVENTS / "ingest_events_valid_batch.json").read_text())
    batch = [e for e in json.loads(ingest_event["body"]) if e["player_id"] == player_id]
    assert {e["event"] for e in batch} == {"start", "end"}
    ingest_batch(batch, store=services.sessions, clock=services.clock, settings=services.settings)
    with use_services(services):
        # When the player's history is asked for through the function
        response = player_sessions_handler(event, LocalLambdaContext(function_name="player_sessions"))
    # Then it answered the session, and reported the one partition it read, once
    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])["sessions"]) >= 1
    assert reported == [(len(json.loads(response["body"])["sessions"]), 1)]
