"""The real handlers, invoked with the events/ fixtures (as `sam local invoke -e` would), on the real Cassandra.

The clock is fixed just after the fixtures' timestamps, so their retention and clock-skew outcomes are exact.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from functions.country_starts.handler import lambda_handler as country_handler
from functions.ingest_events.handler import lambda_handler as ingest_handler
from functions.player_sessions.handler import lambda_handler as player_sessions_handler
from functions.rollup_builder.handler import lambda_handler as builder_handler
from player_sessions.bootstrap import build_services, use_services
from player_sessions.clock import FixedClock
from player_sessions.models import CountryStartsOut, OnlineOut, SessionLengthsOut, StartsByCountryOut
from player_sessions_local.gateway.in_process import LocalLambdaContext

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
FIXTURES_NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fixture(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def services(cassandra_connection, test_settings):
    settings = test_settings.model_copy(update={"cache_enabled": False})
    built = build_services(settings, FixedClock(FIXTURES_NOW), cassandra_connection)
    with use_services(built):
        yield built


def invoke(handler, name: str) -> tuple[int, dict]:
    response = handler(fixture(name), LocalLambdaContext(function_name=name))
    return response["statusCode"], json.loads(response["body"])


def test_valid_batch_fixture_is_stored_and_completes_both_sessions(services):
    # When the valid batch fixture is invoked twice (a retry)
    for _ in range(2):
        status, body = invoke(ingest_handler, "ingest_events_valid_batch")
        # Then all 4 events are stored each time
        assert (status, body) == (200, {"stored": 4, "discarded": 0, "rejected": 0, "errors": []})
    # And the player's query fixture returns the completed session, once
    status, body = invoke(player_sessions_handler, "player_sessions_query")
    assert status == 200
    assert body["player_id"] == "d6313e1fb7d247a6a034e2aadc30ab3f"
    assert body["sessions"] == [
        {
            "session_id": "674606b1-2270-4285-928f-eef4a6b90a60",
            "country": "PK",
            "start_ts": "2026-11-27T10:00:00Z",
            "end_ts": "2026-11-27T10:30:00Z",
            "duration_seconds": 1800.0,
        }
    ]


def test_mixed_batch_fixture_is_207_with_a_reason_per_bad_event(services):
    status, body = invoke(ingest_handler, "ingest_events_mixed_batch")
    assert status == 207
    assert (body["stored"], body["discarded"], body["rejected"]) == (1, 1, 2)
    assert [(e["index"], e["status"], e["field"]) for e in body["errors"]] == [
        (1, "rejected", "player_id"),
        (2, "discarded", "ts"),
        (3, "rejected", "event"),
    ]


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("ingest_events_malformed_body", 400, "body is not valid JSON"),
        ("ingest_events_wrong_content_type", 415, "Content-Type must be application/json"),
        ("player_sessions_bad_limit", 400, "invalid request: limit"),
    ],
)
def test_refused_request_fixtures_answer_with_their_status_and_reason(services, name, status, message):
    handler = player_sessions_handler if name.startswith("player_sessions") else ingest_handler
    answered, body = invoke(handler, name)
    assert answered == status
    assert body["message"].startswith(message)
    assert body["errors"]


def test_health_fixture_reports_cassandra_up(services):
    status, body = invoke(player_sessions_handler, "health")
    assert status == 200
    assert body["cassandra"]["status"] == "up"
    assert body["cache"]["status"] == "disabled"


@pytest.fixture
def counting_services(counts_connection, counts_settings, counts_stores):
    """On the counts keyspace (emptied): the fixtures' clock is days behind the other tests' builders."""
    settings = counts_settings.model_copy(update={"cache_enabled": False})
    built = build_services(settings, FixedClock(FIXTURES_NOW), counts_connection)
    with use_services(built):
        yield built


def test_country_fixtures_count_and_list_the_valid_batch_starts(counting_services):
    # Given the valid batch stored (a PK and an FI start), and folded by the builder
    assert invoke(ingest_handler, "ingest_events_valid_batch")[0] == 200
    counting_services.clock.advance(seconds=5)
    counting_services.rollup_builder().fold_every_part()
    # When the country fixtures are invoked
    status, counts = invoke(country_handler, "country_starts_counts")
    page_status, page = invoke(country_handler, "country_starts_page")
    # Then the counts and the page hold them, in the documented shapes
    assert status == 200 and page_status == 200, (counts, page)
    assert StartsByCountryOut.model_validate(counts).total == 2
    assert [(c["country"], c["starts"]) for c in counts["countries"]] == [("FI", 1), ("PK", 1)]
    listed = CountryStartsOut.model_validate(page)
    assert (listed.country, len(listed.sessions), listed.next_cursor) == ("FI", 1, None)
    assert page["sessions"][0] == {
        "session_id": "0b9e2a53-5c1c-4f7e-9d45-3a3a6f6b2c10",
        "player_id": "6a0c3e8ce1f14a54b3f3a6f0d3b6e7a1",
        "ts": "2026-11-27T09:15:30.250Z",
    }
    # And the live-ops fixtures: both sessions ended (none online), lasting 30 min and 29 min 29.75 s
    status, online = invoke(country_handler, "country_starts_online")
    assert status == 200 and OnlineOut.model_validate(online).total == 0
    assert online["late_starts"] == 2  # stamped hours before they were stored
    status, lengths = invoke(country_handler, "country_starts_session_lengths")
    assert status == 200
    figures = {c.country: c for c in SessionLengthsOut.model_validate(lengths).countries}
    assert (figures["PK"].sessions, figures["PK"].mean_seconds) == (1, 1800.0)
    assert (figures["FI"].sessions, figures["FI"].mean_seconds) == (1, 1769.75)
    assert lengths["total"]["mean_seconds"] == 1784.875


def test_each_scheduled_builder_leaves_the_buckets_every_part_has_folded_into_compacted(
    counting_services, counts_connection
):
    # Given the valid batch stored (two sessions, started and ended), and two seconds later the mixed batch (its
    # US start in the same hour, day and month as the valid batch's PK start: their deltas come from two folds)
    assert invoke(ingest_handler, "ingest_events_valid_batch")[0] == 200
    counting_services.clock.advance(seconds=2)
    assert invoke(ingest_handler, "ingest_events_mixed_batch")[0] == 207
    # (long enough after it that the parts without arrivals move their watermarks too)
    counting_services.clock.advance(seconds=15)
    # When each part's scheduled builder runs, one after another (short invocations: a second of folding)
    for part in counting_services.settings.partition.all_parts:
        builder_handler({"part": part}, LocalLambdaContext(function_name="rollup_builder", timeout_ms=6_000))
    # Then the starts are counted and every bucket the folds wrote to is one row for readers to add up: a base
    # where two folds wrote deltas (none left beside it), the one delta where a single fold did
    rows = list(
        counts_connection.session().execute(
            "SELECT level, period, bucket, base, counts FROM start_count_rollups"
        )
    )
    assert Counter((row.level, row.period, row.bucket) for row in rows).most_common(1)[0][1] == 1
    month = next(row for row in rows if row.level == "mo")
    assert month.base and json.loads(month.counts) == {"FI": 1, "PK": 1, "US": 1, "~late": 3}
    day = next(row for row in rows if row.level == "d")
    assert day.base and json.loads(day.counts) == json.loads(month.counts)
    seconds = [row for row in rows if row.level == "s"]
    assert len(seconds) == 3 and not any(row.base for row in seconds)


def test_country_fixture_with_zero_hours_is_refused_naming_hours(counting_services):
    status, body = invoke(country_handler, "country_starts_bad_hours")
    assert status == 400
    assert body["errors"][0]["parameter"] == "hours"


def test_privacy_fixtures_export_erase_and_answer_an_unknown_receipt(services):
    from functions.player_data.handler import lambda_handler as privacy_handler

    # Given the valid and mixed batches stored (PLAYER_PK's session, PLAYER_US's start)
    invoke(ingest_handler, "ingest_events_valid_batch")
    invoke(ingest_handler, "ingest_events_mixed_batch")
    # When the export fixture is invoked
    status, body = invoke(privacy_handler, "player_data_export")
    # Then PLAYER_PK's session is there with its two events and their retention dates
    assert status == 200 and body["player_id"] == "d6313e1fb7d247a6a034e2aadc30ab3f"
    (session,) = body["sessions"]
    assert session["session_id"] == "674606b1-2270-4285-928f-eef4a6b90a60" and session["completed"] is True
    assert {(e["event"], e["ts"], e["retained_until"]) for e in session["events"]} == {
        ("start", "2026-11-27T10:00:00Z", "2027-11-27T10:00:00Z"),
        ("end", "2026-11-27T10:30:00Z", "2027-11-27T10:30:00Z"),
    }
    # When the erasure fixture is invoked (PLAYER_US), then it answers 202 with its finished receipt
    status, receipt = invoke(privacy_handler, "player_data_erasure")
    assert status == 202 and receipt["status"] == "finished"
    assert receipt["stores"]["cassandra"]["player_id_removed"]["session_starts"] >= 1
    assert receipt["events_discarded_before"] == "2026-11-27T12:00:00Z"
    # And a receipt nobody was given is 404, naming the parameter
    status, body = invoke(privacy_handler, "player_data_unknown_receipt")
    assert status == 404 and body["errors"][0]["parameter"] == "erasure_id"
