"""A reader's environment keeps the arrivals of settled slots between requests (domain.country_starts.settled):
the next request reads only the slots after them, and its answer is the one a whole read gives."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

from player_sessions.domain.country_starts import CountryStarts
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.ingest import ingest_batch
from player_sessions.read_counts import metered
from player_sessions.settings import Settings
from player_sessions.time_buckets import last_foldable_slot, slot_of
from tests.fakes import InMemorySessionStore
from tests.unit.test_tail_cap import T0, stored_seconds


def test_a_second_request_reads_only_the_arrivals_not_settled_at_the_first():
    # Given 50 seconds of unfolded starts, 3 a second, and an environment's kept arrivals
    settings = Settings()
    starts, clock, sent = stored_seconds(50, 3, settings)
    settled = SettledArrivals()
    reader = CountryStarts(starts, clock, settings, settled_arrivals=settled)
    clock.moment = T0 + timedelta(seconds=49, milliseconds=300)
    # When counted twice at the same moment, and once with nothing kept
    with metered() as first:
        counted_first = reader.counts(1)
    with metered() as second:
        counted_second = reader.counts(1)
    with metered() as whole:
        counted_whole = CountryStarts(starts, clock, settings).counts(1)
    # Then the three answers are the starts stored
    expected = dict(Counter(country for _, _, country in sent))
    assert dict(counted_first.counts) == dict(counted_second.counts) == dict(counted_whole.counts) == expected
    # and the second read again only the slots not settled at the first (those after 46.0 s: 3 of them)
    unsettled = slot_of(T0 + timedelta(seconds=49)) - last_foldable_slot(clock.moment)
    assert unsettled == 3
    assert first.rows == whole.rows
    assert first.rows - second.rows == 150 - 3 * unsettled


def test_starts_stored_since_are_read_and_counted_with_the_kept_ones():
    # Given the starts above counted once with kept arrivals
    settings = Settings()
    starts, clock, sent = stored_seconds(50, 3, settings)
    settled = SettledArrivals()
    reader = CountryStarts(starts, clock, settings, settled_arrivals=settled)
    clock.moment = T0 + timedelta(seconds=55)
    reader.counts(1)
    # When ten more arrive, five seconds later, and a country is counted and listed
    clock.moment = T0 + timedelta(seconds=60)
    batch = [
        {
            "event": "start",
            "player_id": "p",
            "session_id": str(uuid.uuid4()),
            "ts": (clock.moment - timedelta(minutes=n)).isoformat(),
            "country": "NZ",
        }
        for n in range(10)
    ]
    ingest_batch(batch, store=InMemorySessionStore(starts.db), clock=clock, settings=settings)
    clock.moment = T0 + timedelta(seconds=61)
    counts = reader.counts(1)
    page = reader.page("NZ", 1, limit=1000)
    # Then each is counted and listed once, beside the kept ones
    assert dict(counts.counts) == {**dict(Counter(country for _, _, country in sent)), "NZ": 10}
    assert sorted(str(row.session_id) for row in page.starts) == sorted(
        event["session_id"] for event in batch
    )


def test_past_the_cap_the_kept_slots_give_the_same_partial_answer_and_stay_within_it():
    # Given 250 seconds of unfolded starts, 3 a second, readers allowed 100 unfolded arrivals
    settings = Settings(tail_arrivals_read_at_most=100)
    starts, clock, sent = stored_seconds(250, 3, settings)
    clock.moment = T0 + timedelta(seconds=260)
    settled = SettledArrivals()
    reader = CountryStarts(starts, clock, settings, settled_arrivals=settled)
    # When counted twice with kept arrivals
    with metered() as first:
        counted_first = reader.counts(1)
    with metered() as second:
        counted_second = reader.counts(1)
    # Then both keep the oldest 33 seconds that fit and say from when starts may be missing, as a whole read does
    cut = T0 + timedelta(seconds=33)
    expected = dict(Counter(country for _, ts, country in sent if ts < cut))
    for counted in (counted_first, counted_second):
        assert counted.unread_from == cut
        assert dict(counted.counts) == expected
    # and the second read only the one row past the cap (the 34th second's first), its kept slots no more
    assert first.rows - second.rows == 99
    assert sum(len(arrivals) for arrivals in settled._families["starts"].slots.values()) == 99
