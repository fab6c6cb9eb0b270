"""A cursor pins its first page's window, but never past the retention: a start that has left the retention
since the first page is not listed by a later one, cached or not (SPEC.md: queries never return data older than
the retention, even before TTL removal happens)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions.clock import FixedClock
from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.builder import RollupBuilder
from player_sessions.domain.ingest import ingest_batch
from player_sessions.errors import BadRequestError
from player_sessions.settings import Settings
from tests.fakes import InMemoryReadCache, InMemorySessionStore, InMemoryStartsStore

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
SETTINGS = Settings(retention_days=30)


def start(ts: datetime) -> dict:
    return {
        "event": "start",
        "player_id": uuid.uuid4().hex,
        "session_id": str(uuid.uuid4()),
        "country": "IS",
        "ts": ts.isoformat(),
    }


def stored(*stamps: datetime) -> tuple[InMemoryStartsStore, FixedClock]:
    sessions = InMemorySessionStore()
    starts = InMemoryStartsStore(sessions)
    clock = FixedClock(T0)
    assert (
        ingest_batch([start(ts) for ts in stamps], store=sessions, clock=clock, settings=SETTINGS).stored == 2
    )
    clock.moment = T0 + timedelta(seconds=5)
    RollupBuilder(starts, clock, SETTINGS).fold_every_part(max_slots=1_000)
    return starts, clock


@pytest.mark.parametrize("cached", [True, False])
def test_a_later_page_leaves_out_a_start_that_left_the_retention_since_the_first(cached):
    # Given a start 25 s from leaving a 30-day retention and one an hour old
    edge, recent = T0 - SETTINGS.retention + timedelta(seconds=25), T0 - timedelta(hours=1)
    starts, clock = stored(edge, recent)
    cache = InMemoryReadCache() if cached else None
    listing = (
        CountryStarts(starts, clock, SETTINGS, cache) if cache else CountryStarts(starts, clock, SETTINGS)
    )
    first = listing.page("IS", 8760, limit=1)
    second = listing.page("IS", 8760, limit=1, cursor=first.next_cursor)
    assert [s.ts for s in first.starts + second.starts] == [recent, edge]
    # When the second page is asked for again, after the edge start has left the retention
    clock.moment = T0 + timedelta(seconds=30)
    again = listing.page("IS", 8760, limit=1, cursor=first.next_cursor)
    # Then it lists nothing, ends the listing, and its window starts at the retention's start
    assert (again.starts, again.next_cursor) == ([], None)
    assert again.window.start == clock.moment - SETTINGS.retention
    assert again.window.end == first.window.end


def test_a_cursor_whose_whole_window_left_the_retention_lists_nothing():
    # Given a cursor of a one-hour window
    starts, clock = stored(T0 - timedelta(minutes=10), T0 - timedelta(minutes=20))
    first = CountryStarts(starts, clock, SETTINGS).page("IS", 1, limit=1)
    # When it is followed after the retention has passed that hour
    clock.moment = T0 + SETTINGS.retention + timedelta(hours=2)
    later = CountryStarts(starts, clock, SETTINGS).page("IS", 1, limit=1, cursor=first.next_cursor)
    # Then the page is empty and last, its window empty at the pinned end
    assert (later.starts, later.next_cursor) == ([], None)
    assert later.window.start == later.window.end == first.window.end


@pytest.mark.parametrize(("country", "hours"), [("IS", 48), ("NO", 1)])
def test_a_cursor_is_refused_for_another_window_length_or_country(country, hours):
    # Given a first page of a one-hour listing of IS, with a next page
    starts, clock = stored(T0 - timedelta(minutes=10), T0 - timedelta(minutes=20))
    listing = CountryStarts(starts, clock, SETTINGS)
    first = listing.page("IS", 1, limit=1)
    assert first.next_cursor is not None
    # When its cursor is sent with another X or another country
    with pytest.raises(BadRequestError) as refused:
        listing.page(country, hours, limit=1, cursor=first.next_cursor)
    # Then it is refused, naming the cursor and the query it was issued for
    assert refused.value.errors == [
        {"parameter": "cursor", "in": "query", "reason": "issued for country=IS&hours=1"}
    ]


def test_a_start_that_leaves_the_retention_before_its_fold_is_not_counted_nor_its_buckets_written():
    # Given two starts stored together: one a second from leaving the retention, one an hour old
    sessions = InMemorySessionStore()
    starts = InMemoryStartsStore(sessions)
    clock = FixedClock(T0)
    events = [start(T0 - SETTINGS.retention + timedelta(seconds=1)), start(T0 - timedelta(hours=1))]
    assert ingest_batch(events, store=sessions, clock=clock, settings=SETTINGS).stored == 2
    # When the builders fold them five seconds later, after the first has left the retention
    clock.moment = T0 + timedelta(seconds=5)
    report = RollupBuilder(starts, clock, SETTINGS).fold_every_part(max_slots=1_000)
    # Then only the hour-old start is counted, and the listing of the whole retention holds it alone
    assert report.starts_counted == 1
    listed = CountryStarts(starts, clock, SETTINGS).page("IS", 8760, limit=10).starts
    assert [s.ts for s in listed] == [T0 - timedelta(hours=1)]
    assert dict(CountryStarts(starts, clock, SETTINGS).counts(8760).counts) == {"IS": 1}
