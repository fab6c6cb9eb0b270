"""Ingest rules with a fixed clock, against an in-memory store."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions.clock import FixedClock
from player_sessions.domain.completion import completed_session
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.models import SessionHalves, format_timestamp
from player_sessions.retention import ttl_seconds
from player_sessions.settings import Settings
from player_sessions.time_buckets import Level, slot_of
from tests.fakes import InMemoryReadCache, InMemorySessionStore, OnceAfter

NOW = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
SETTINGS = Settings()


def start(session_id, ts, player="p1", country="fi"):
    return {
        "event": "start",
        "player_id": player,
        "session_id": str(session_id),
        "ts": ts.isoformat(),
        "country": country,
    }


def end(session_id, ts, player="p1"):
    return {"event": "end", "player_id": player, "session_id": str(session_id), "ts": ts.isoformat()}


@pytest.fixture
def store() -> InMemorySessionStore:
    return InMemorySessionStore()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def test_valid_events_are_stored_and_the_ttl_is_retention_minus_age(store, clock):
    # Given a start 100 days old
    session_id = uuid.uuid4()
    # When it is ingested
    outcome = ingest_batch(
        [start(session_id, NOW - timedelta(days=100))], store=store, clock=clock, settings=SETTINGS
    )
    # Then it is stored with a TTL of 265 days
    assert (outcome.stored, outcome.discarded, outcome.rejected) == (1, 0, 0)
    assert store.ttls[(session_id, "start")] == 265 * 86_400


def test_event_older_than_retention_is_discarded_and_not_stored(store, clock):
    # Given a start one second older than the 365-day retention
    session_id = uuid.uuid4()
    # When it is ingested
    outcome = ingest_batch(
        [start(session_id, NOW - timedelta(days=365, seconds=1))], store=store, clock=clock, settings=SETTINGS
    )
    # Then it is discarded, naming the timestamp and the retention, and nothing is stored
    assert (outcome.stored, outcome.discarded) == (0, 1)
    assert outcome.problems[0].status == "discarded"
    assert outcome.problems[0].field == "ts"
    assert "365-day retention" in outcome.problems[0].reason
    assert session_id not in store.sessions


def test_event_at_the_edge_of_retention_is_still_stored(store, clock):
    # Given a start two seconds inside the retention
    # When it is ingested
    outcome = ingest_batch(
        [start(uuid.uuid4(), NOW - timedelta(days=365) + timedelta(seconds=2))],
        store=store,
        clock=clock,
        settings=SETTINGS,
    )
    # Then it is stored
    assert outcome.stored == 1


def test_event_with_less_than_a_second_of_retention_left_is_discarded_not_stored_forever(store, clock):
    # Given a start half a second inside the retention: its TTL, rounded down, would be 0, which Cassandra reads
    # as "never expires"
    session_id = uuid.uuid4()
    edge = NOW - timedelta(days=365) + timedelta(milliseconds=500)
    # When it is ingested
    outcome = ingest_batch([start(session_id, edge)], store=store, clock=clock, settings=SETTINGS)
    # Then it is discarded as past the retention, with no error, and nothing is stored
    assert (outcome.stored, outcome.discarded, outcome.rejected) == (0, 1, 0)
    assert outcome.problems[0].status == "discarded"
    assert session_id not in store.sessions
    assert store.ttls == {}


def test_event_beyond_the_clock_skew_is_rejected_but_within_it_is_stored(store, clock):
    # Given a start one second beyond the five minutes of allowed clock skew, and one right at it
    too_far, just_ok = uuid.uuid4(), uuid.uuid4()
    # When both are ingested
    outcome = ingest_batch(
        [start(too_far, NOW + timedelta(minutes=5, seconds=1)), start(just_ok, NOW + timedelta(minutes=5))],
        store=store,
        clock=clock,
        settings=SETTINGS,
    )
    # Then the first is rejected as in the future, the second stored
    assert (outcome.stored, outcome.rejected) == (1, 1)
    assert outcome.problems[0].index == 0 and outcome.problems[0].field == "ts"
    assert "in the future" in outcome.problems[0].reason
    assert f"server time is {format_timestamp(NOW)}" in outcome.problems[0].reason  # RFC 3339, with Z
    assert too_far not in store.sessions and just_ok in store.sessions


def test_valid_events_are_kept_when_others_in_the_batch_are_rejected(store, clock):
    # Given a batch with a valid start between two invalid items
    session_id = uuid.uuid4()
    # When it is ingested
    outcome = ingest_batch(
        [{"event": "pause"}, start(session_id, NOW - timedelta(hours=1)), "x"],
        store=store,
        clock=clock,
        settings=SETTINGS,
    )
    # Then the start is stored and each invalid item is rejected by its index
    assert (outcome.stored, outcome.rejected) == (1, 2)
    assert [problem.index for problem in outcome.problems] == [0, 2]
    assert session_id in store.sessions


@pytest.mark.parametrize("order", ["start first", "end first", "same batch"])
def test_a_session_completes_whatever_the_arrival_order(store, clock, order):
    # Given a session's start and end
    session_id = uuid.uuid4()
    events = [start(session_id, NOW - timedelta(hours=2)), end(session_id, NOW - timedelta(hours=1))]
    # When they arrive in the given order
    if order == "same batch":
        ingest_batch(events, store=store, clock=clock, settings=SETTINGS)
    else:
        for event in events if order == "start first" else reversed(events):
            ingest_batch([event], store=store, clock=clock, settings=SETTINGS)
    # Then the player has exactly that completed session
    sessions = last_completed_sessions("p1", 20, store=store, clock=clock, settings=SETTINGS)
    assert [(s.session_id, s.country, s.duration_seconds) for s in sessions] == [(session_id, "FI", 3600.0)]


def test_a_resent_batch_changes_nothing(store, clock):
    # Given a batch holding a whole session
    session_id = uuid.uuid4()
    batch = [start(session_id, NOW - timedelta(hours=2)), end(session_id, NOW - timedelta(hours=1))]
    # When it is sent three times
    for _ in range(3):
        outcome = ingest_batch(batch, store=store, clock=clock, settings=SETTINGS)
    # Then each send is acknowledged in full, and one session, one start and one arrival are stored
    assert outcome.stored == 2
    assert len(store.completed) == 1
    assert len(store.db.starts) == 1
    assert sum(len(keys) for keys in store.db.arrivals.values()) == 1


def test_an_end_before_its_start_does_not_complete_the_session():
    # Given a session whose end is one second before its start
    halves = SessionHalves(uuid.uuid4(), "p1", "FI", NOW, NOW - timedelta(seconds=1))
    # When it is completed
    completed = completed_session(halves, NOW, SETTINGS.retention)
    # Then there is no completed session
    assert completed is None


def test_a_session_whose_start_left_the_retention_is_not_completed():
    # Given a session that started 366 days ago and ended within the retention
    halves = SessionHalves(uuid.uuid4(), "p1", "FI", NOW - timedelta(days=366), NOW - timedelta(days=300))
    # When it is completed
    completed = completed_session(halves, NOW, SETTINGS.retention)
    # Then there is no completed session
    assert completed is None


def test_completed_session_ttl_follows_its_start(store, clock):
    # Given a session started 10 days ago and ended 9 days ago
    session_id = uuid.uuid4()
    # When it is ingested
    ingest_batch(
        [start(session_id, NOW - timedelta(days=10)), end(session_id, NOW - timedelta(days=9))],
        store=store,
        clock=clock,
        settings=SETTINGS,
    )
    # Then the completed session expires with its start: retention minus 10 days
    ((_, ttl),) = store.completed.values()
    assert ttl == ttl_seconds(NOW - timedelta(days=10), NOW, SETTINGS.retention) == 355 * 86_400


def test_history_returns_the_newest_ends_first_up_to_the_limit(store, clock):
    # Given 25 completed sessions of one player, each ending a minute after the previous one
    ids = [uuid.uuid4() for _ in range(25)]
    for minutes, session_id in enumerate(ids):
        ingest_batch(
            [
                start(session_id, NOW - timedelta(hours=5)),
                end(session_id, NOW - timedelta(hours=4) + timedelta(minutes=minutes)),
            ],
            store=store,
            clock=clock,
            settings=SETTINGS,
        )
    # When the player's last 20 sessions are read
    sessions = last_completed_sessions("p1", 20, store=store, clock=clock, settings=SETTINGS)
    # Then they are the 20 newest, newest end first; a smaller limit is kept, and an unknown player has none
    assert [s.session_id for s in sessions] == list(reversed(ids))[:20]
    assert len(last_completed_sessions("p1", 3, store=store, clock=clock, settings=SETTINGS)) == 3
    assert last_completed_sessions("nobody", 20, store=store, clock=clock, settings=SETTINGS) == []


def test_a_cached_history_answers_only_the_limit_it_was_read_for(store, clock):
    # Given a player with 5 completed sessions, whose last 3 were read through the cache
    cache = InMemoryReadCache()
    ids = [uuid.uuid4() for _ in range(5)]
    for minutes, session_id in enumerate(ids):
        batch = [
            start(session_id, NOW - timedelta(hours=2)),
            end(session_id, NOW - timedelta(minutes=60 - minutes)),
        ]
        ingest_batch(batch, store=store, clock=clock, settings=SETTINGS, cache=cache)
    history = {"store": store, "clock": clock, "settings": SETTINGS, "cache": cache}
    assert len(last_completed_sessions("p1", 3, **history)) == 3
    # When the same player's last 20 are read, and the last 3 again
    twenty = last_completed_sessions("p1", 20, **history)
    three = last_completed_sessions("p1", 3, **history)
    # Then each answer holds what its own limit asks, newest end first (the second 3 from the cache)
    assert [s.session_id for s in twenty] == list(reversed(ids))
    assert [s.session_id for s in three] == list(reversed(ids))[:3]
    assert cache.hits >= 1


def test_every_stored_start_is_logged_as_an_arrival_after_its_start_row(store, clock):
    # Given a live start, a late one, one stamped two minutes ahead of the server, and an end
    live, late, ahead, ended = (uuid.uuid4() for _ in range(4))
    batch = [
        start(live, NOW - timedelta(seconds=3)),
        start(late, NOW - timedelta(days=2)),
        start(ahead, NOW + timedelta(minutes=2)),
        end(ended, NOW),
    ]
    # When the batch is ingested
    ingest_batch(batch, store=store, clock=clock, settings=SETTINGS)
    # Then each start has one arrival, in the current second, or in its own second when stamped ahead
    slots = {key.session_id: slot for slot, keys in store.db.arrivals.items() for key in keys}
    assert slots == {live: slot_of(NOW), late: slot_of(NOW), ahead: slot_of(NOW + timedelta(minutes=2))}
    assert store.db.arrival_minutes == {
        Level.MINUTE.floor(NOW),
        Level.MINUTE.floor(NOW + timedelta(minutes=2)),
    }


def test_an_arrival_acknowledged_too_late_for_its_slot_is_written_into_a_newer_one(clock):
    # Given a store whose arrival write takes five seconds
    class SlowStore(InMemorySessionStore):
        def write_events(self, writes, arrivals):
            super().write_events(writes, arrivals)
            clock.advance(seconds=5)

    slow = SlowStore()
    session_id = uuid.uuid4()
    # When a start is ingested
    ingest_batch([start(session_id, NOW - timedelta(seconds=1))], store=slow, clock=clock, settings=SETTINGS)
    # Then it arrived twice: in the slot it was first written into, and in the slot of the acknowledgement
    assert sorted(slot for slot, keys in slow.db.arrivals.items() for key in keys) == [
        slot_of(NOW),
        slot_of(NOW) + 5,
    ]


def test_stored_starts_invalidate_their_countries_pages_and_completions_their_players(store, clock):
    # Given a cache
    cache = InMemoryReadCache()
    session_id = uuid.uuid4()
    # When a batch completes a session in FI and starts one in PK
    ingest_batch(
        [
            start(session_id, NOW - timedelta(hours=1)),
            end(session_id, NOW),
            start(uuid.uuid4(), NOW, player="p2", country="pk"),
        ],
        store=store,
        clock=clock,
        settings=SETTINGS,
        cache=cache,
    )
    # Then exactly those scopes changed
    assert cache.generations == Counter({"starts:FI": 1, "starts:PK": 1, "player:p1": 1})


def test_a_history_row_deleted_again_for_an_erased_player_takes_their_cached_history_with_it(store, clock):
    # Given the player's history cached, and the player erased right after the batch writes its history row
    # (after its checks; a history read in between could cache the row)
    cache = InMemoryReadCache()
    cache.store(cache.lookup(["player:p1"], "history")[0], "history", b"the row", 300)
    session_id = uuid.uuid4()
    erase = lambda: store.db.erased.__setitem__(SETTINGS.player_hash("p1"), (NOW, uuid.uuid4()))  # noqa: E731
    racing = OnceAfter(store, "write_completed", erase)
    # When the batch completes the session
    outcome = ingest_batch(
        [start(session_id, NOW - timedelta(hours=1)), end(session_id, NOW)],
        store=racing,
        clock=clock,
        settings=SETTINGS,
        cache=cache,
    )
    # Then the row is deleted again, and so is the player's cached history
    assert outcome.completed_sessions == 0
    assert store.db.completed == {}
    assert cache.lookup(["player:p1"], "history")[1] is None
    assert cache.values == {}


@pytest.mark.parametrize(
    ("ts", "counted"),
    [
        ("0001-01-01T00:00:00+01:00", (1, 0, 1)),  # year 0 once in UTC
        ("9999-12-31T23:30:00-01:00", (1, 0, 1)),  # year 10000 once in UTC
        ("9999-12-31T23:59:59.999999Z", (1, 0, 1)),  # in the future
        ("0001-01-01T00:00:00Z", (1, 1, 0)),  # older than the retention
    ],
)
def test_a_timestamp_at_the_ends_of_the_calendar_costs_nothing_but_its_own_event(store, clock, ts, counted):
    # Given a batch of a start whose ts lies at (or beyond, once in UTC) an end of the calendar, and a valid start
    kept = uuid.uuid4()
    hostile = {**start(uuid.uuid4(), NOW), "ts": ts}
    # When it is ingested
    outcome = ingest_batch(
        [hostile, start(kept, NOW - timedelta(hours=1))], store=store, clock=clock, settings=SETTINGS
    )
    # Then the hostile event is rejected naming its ts (or discarded as too old), and the valid one is stored
    assert (outcome.stored, outcome.discarded, outcome.rejected) == counted
    assert [(p.index, p.field) for p in outcome.problems] == [(0, "ts")]
    assert kept in store.sessions


def test_a_game_clients_batch_keeps_its_players_events_and_rejects_the_others(store, clock):
    # Given a batch from a client signed in as p1, with one event of p2 in the middle
    own, other = uuid.uuid4(), uuid.uuid4()
    batch = [
        start(own, NOW - timedelta(minutes=30)),
        start(other, NOW - timedelta(minutes=20), player="p2"),
        end(own, NOW - timedelta(minutes=5)),
    ]
    # When it is ingested for the signed-in player p1
    outcome = ingest_batch(batch, store=store, clock=clock, settings=SETTINGS, signed_in_player="p1")
    # Then p2's event is rejected, naming the field, and p1's session is stored and completed
    assert (outcome.stored, outcome.rejected, outcome.completed_sessions) == (2, 1, 1)
    assert [(p.index, p.field) for p in outcome.problems] == [(1, "player_id")]
    assert "signed-in player" in outcome.problems[0].reason
    assert (other, "start") not in store.ttls
    assert (own, "start") in store.ttls


def test_the_studios_batch_may_hold_any_player(store, clock):
    batch = [start(uuid.uuid4(), NOW - timedelta(minutes=9), player=f"p{n}") for n in range(3)]

    outcome = ingest_batch(batch, store=store, clock=clock, settings=SETTINGS, signed_in_player=None)

    assert (outcome.stored, outcome.rejected) == (3, 0)
