"""Each scheduled run of the builder folds until just before its part's next run is due, counted from when
EventBridge scheduled it, so that a part goes unfolded for a handoff margin each minute, not for whatever a
fixed run time leaves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions.rollup_builder.handler import lambda_handler
from player_sessions.bootstrap import use_services
from player_sessions.domain.country_starts.schedule import (
    HANDOFF_MARGIN,
    SCHEDULE_PERIOD,
    fold_until,
    scheduled_at,
)
from player_sessions.domain.ingest import ingest_batch
from player_sessions_local.gateway.in_process import LocalLambdaContext
from tests.fakes import in_memory_services

NOW = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"part": 0, "scheduled_at": "2026-11-28T10:00:00Z"}, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ({"part": 0, "scheduled_at": "2026-11-28T11:00:00+01:00"}, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ({"part": 0, "scheduled_at": "2026-11-28T10:00:00"}, datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ({"part": 0}, None),
        ({"part": 0, "scheduled_at": "soon"}, None),
        ({"part": 0, "scheduled_at": 1764324000}, None),
    ],
)
def test_a_run_reads_when_it_was_scheduled_from_its_event(event, expected):
    assert scheduled_at(event) == expected


def test_a_run_stops_folding_a_handoff_margin_before_its_parts_next_run_is_due():
    scheduled = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    # Delivered on time or late, a run stops at the same moment: before the next run of its part arrives
    for delivered_after in (timedelta(0), timedelta(seconds=2), timedelta(seconds=40)):
        assert fold_until(scheduled, scheduled + delivered_after) == scheduled + timedelta(seconds=58.5)
    # A run whose event says nothing of its schedule, or one not yet due by this clock, counts from now
    assert fold_until(None, NOW) == NOW + timedelta(seconds=58.5)
    assert fold_until(NOW + timedelta(seconds=1), NOW) == NOW + timedelta(seconds=58.5)


def _stored_start(services) -> None:
    start = {
        "player_id": "p-schedule",
        "event": "start",
        "session_id": str(uuid.UUID(int=7)),
        "ts": (NOW - timedelta(seconds=20)).isoformat(),
        "country": "FI",
    }
    services.clock.advance(seconds=-10)
    ingest_batch([start], store=services.sessions, clock=services.clock, settings=services.settings)
    services.clock.advance(seconds=10)


def _run_every_part(services, event_extra: dict[str, str]) -> int:
    folded = 0
    with use_services(services):
        for part in services.settings.partition.all_parts:
            report = lambda_handler(
                {"part": part, **event_extra},
                LocalLambdaContext(function_name="rollup_builder", timeout_ms=60_000),
            )
            folded += report["starts_counted"]
    return folded


def test_a_run_delivered_when_its_parts_next_one_is_due_folds_nothing_and_leaves_it_to_that_one():
    # Given a start stored ten seconds ago (its slot long settled)
    services = in_memory_services(NOW)
    _stored_start(services)
    # When each part's run arrives a whole period after it was scheduled
    late = (NOW - SCHEDULE_PERIOD).isoformat()
    # Then none folds (the next run of the part is due), and the next, on time, counts the start once
    assert _run_every_part(services, {"scheduled_at": late}) == 0
    almost_over = (NOW - SCHEDULE_PERIOD + HANDOFF_MARGIN + timedelta(seconds=0.2)).isoformat()
    assert _run_every_part(services, {"scheduled_at": almost_over}) == 1
    assert services.country_starts.counts(1).counts == [("FI", 1)]
