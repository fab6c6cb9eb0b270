"""The counts' order, as SPEC.md gives it: most starts first, countries of equal counts by code."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from player_sessions.domain.ingest import ingest_batch
from tests.fakes import in_memory_services

NOW = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)


def test_countries_with_as_many_starts_are_listed_by_code_after_those_with_more():
    # Given two starts in ZA, two in AR and three in FI, stored in that order, ZA's with the lower session ids
    services = in_memory_services(NOW)
    ids = iter(uuid.UUID(int=n) for n in range(1, 8))
    for country, how_many in [("ZA", 2), ("AR", 2), ("FI", 3)]:
        for _ in range(how_many):
            start = {"player_id": "p-order", "event": "start", "session_id": str(next(ids))}
            start |= {"ts": (NOW - timedelta(minutes=5)).isoformat(), "country": country}
            ingest_batch([start], store=services.sessions, clock=services.clock, settings=services.settings)
    # When the last hour is counted, before and after the builders fold the starts
    unfolded = services.country_starts.counts(1).counts
    services.clock.advance(seconds=5)
    builder = services.rollup_builder()
    for part in range(services.settings.partition.parts):
        builder.fold(part)
    folded = services.country_starts.counts(1).counts
    # Then FI comes first, and AR before ZA
    assert unfolded == folded == [("FI", 3), ("AR", 2), ("ZA", 2)]
