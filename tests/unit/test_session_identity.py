"""A session is one player's, starts once and ends once (domain.session_identity), through the ingest path on
an in-memory store: what contradicts a stored session is rejected naming it; an exact re-send is harmless."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions.clock import FixedClock
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.session_identity import ANOTHER_PLAYERS_SESSION
from player_sessions.settings import Settings
from tests.fakes import InMemorySessionStore
from tests.unit.test_ingest_domain import end, start

NOW = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
SETTINGS = Settings()
STARTED = NOW - timedelta(minutes=30)


@pytest.fixture
def store() -> InMemorySessionStore:
    return InMemorySessionStore()


def ingest(store, events, signed_in_player=None):
    return ingest_batch(
        events, store=store, clock=FixedClock(NOW), settings=SETTINGS, signed_in_player=signed_in_player
    )


def start_rows(store, session_id) -> list[tuple]:
    """The session's rows in session_starts: (country, ts, player)."""
    return sorted((c, ts, p) for (_h, _s, c, ts, sid, p) in store.db.starts if sid == session_id)


def problems(outcome) -> list[tuple[int, str, str]]:
    return [(p.index, p.field, p.reason) for p in outcome.problems]


@pytest.mark.parametrize(
    "second",
    [
        {"ts": STARTED + timedelta(seconds=1), "country": "fi"},
        {"ts": STARTED, "country": "se"},
    ],
    ids=["another-ts", "another-country"],
)
def test_a_second_start_that_contradicts_the_stored_one_is_rejected_and_the_first_kept(store, second):
    # Given a stored start
    session_id = uuid.uuid4()
    ingest(store, [start(session_id, STARTED)])
    # When the same session starts again with another ts or country
    outcome = ingest(store, [start(session_id, second["ts"], country=second["country"])])
    # Then it is rejected, naming the session and the start stored, and the session has its one start row
    assert (outcome.stored, outcome.rejected) == (0, 1)
    [(index, field, reason)] = problems(outcome)
    assert (index, field) == (0, "session_id")
    assert "already started at 2026-11-28T12:00:00Z in FI" in reason
    assert start_rows(store, session_id) == [("FI", STARTED, "p1")]


def test_an_exact_re_send_is_stored_again_harmlessly(store):
    session_id = uuid.uuid4()
    batch = [start(session_id, STARTED), end(session_id, NOW)]
    assert ingest(store, batch).stored == 2
    # When the whole batch is re-sent (a client retry)
    outcome = ingest(store, batch)
    # Then nothing is rejected and nothing is doubled
    assert (outcome.stored, outcome.rejected) == (2, 0)
    assert start_rows(store, session_id) == [("FI", STARTED, "p1")]
    assert store.sessions[session_id]["end_ts"] == NOW


def test_an_end_that_contradicts_the_stored_end_is_rejected(store):
    session_id = uuid.uuid4()
    ingest(store, [start(session_id, STARTED), end(session_id, NOW - timedelta(minutes=1))])
    outcome = ingest(store, [end(session_id, NOW)])
    assert outcome.rejected == 1
    assert "already ended at 2026-11-28T12:29:00Z" in outcome.problems[0].reason
    assert store.sessions[session_id]["end_ts"] == NOW - timedelta(minutes=1)


def test_another_players_start_or_end_of_a_stored_session_is_rejected_and_the_session_stays_theirs(store):
    # Given player a's started session
    session_id = uuid.uuid4()
    ingest(store, [start(session_id, STARTED, player="player-a")])
    # When player b's game client sends a start of that session (same ts and country), then an end of it
    taken = ingest(store, [start(session_id, STARTED, player="player-b")], signed_in_player="player-b")
    ended = ingest(store, [end(session_id, NOW, player="player-b")], signed_in_player="player-b")
    # Then both are rejected as another player's session, without saying whose
    assert problems(taken) == [(0, "session_id", ANOTHER_PLAYERS_SESSION)]
    assert problems(ended) == [(0, "session_id", ANOTHER_PLAYERS_SESSION)]
    assert "player-a" not in ANOTHER_PLAYERS_SESSION
    # And the session is still a's, unended
    assert start_rows(store, session_id) == [("FI", STARTED, "player-a")]
    assert store.sessions[session_id]["player_id"] == "player-a"
    assert "end_ts" not in store.sessions[session_id]


def test_within_one_batch_the_first_start_of_a_session_is_kept_and_a_contradicting_one_rejected(store):
    session_id = uuid.uuid4()
    other = uuid.uuid4()
    outcome = ingest(
        store,
        [
            start(session_id, STARTED),
            start(other, STARTED),
            start(session_id, STARTED + timedelta(seconds=5)),
            start(session_id, STARTED),
        ],
    )
    # The third contradicts the first; the fourth repeats it
    assert (outcome.stored, outcome.rejected) == (3, 1)
    assert [(index, field) for index, field, _ in problems(outcome)] == [(2, "session_id")]
    assert start_rows(store, session_id) == [("FI", STARTED, "p1")]


def test_an_end_stored_before_its_start_leaves_the_player_to_the_first_start(store):
    # Given an end that arrived before its start (an end half records no player: the start decides)
    session_id = uuid.uuid4()
    ingest(store, [end(session_id, NOW, player="player-a")])
    # When the start arrives, then another player's start of that session
    first = ingest(store, [start(session_id, STARTED, player="player-a")])
    second = ingest(store, [start(session_id, STARTED, player="player-b")])
    # Then the first completes the session and the second is rejected
    assert first.completed_sessions == 1
    assert problems(second) == [(0, "session_id", ANOTHER_PLAYERS_SESSION)]
    assert start_rows(store, session_id) == [("FI", STARTED, "player-a")]
