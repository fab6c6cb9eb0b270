"""Ingest and player history against the real local Cassandra: what ends up in the tables, with which TTL.

Every test uses its own random player and fresh session ids, so tests never see each other's rows and no
table is truncated. Stored values are read back with prepared SELECTs on the test keyspace.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cassandra import OperationTimedOut, ReadTimeout
from cassandra.cluster import Cluster, NoHostAvailable

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.clock import FixedClock
from player_sessions.domain.completion import ARRIVAL_TTL_SECONDS
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.models import SessionHalves
from player_sessions.read_counts import metered
from player_sessions.repositories import cassandra_store
from player_sessions.repositories.cassandra_store import PAGE_SLACK, CassandraSessionStore
from player_sessions.retention import ttl_seconds
from player_sessions.time_buckets import Level, slot_of, slot_start

pytestmark = pytest.mark.integration

SELECT_SESSION = "SELECT player_id, country, start_ts, end_ts FROM sessions WHERE session_id = ?"
SELECT_SESSION_TTL = (
    "SELECT TTL(start_ts) AS start_ttl, TTL(end_ts) AS end_ttl FROM sessions WHERE session_id = ?"
)
SELECT_COMPLETED = (
    "SELECT session_id, country, start_ts, end_ts FROM completed_sessions_by_player WHERE player_id = ?"
)
SELECT_COMPLETED_TTL = (
    "SELECT session_id, TTL(start_ts) AS start_ttl, TTL(country) AS country_ttl "
    "FROM completed_sessions_by_player WHERE player_id = ?"
)
SELECT_START_ROWS = (
    "SELECT session_id, player_id FROM session_starts WHERE hour = ? AND shard = ? AND country = ? AND ts = ?"
)
SELECT_START_TTL = (
    "SELECT TTL(player_id) AS player_ttl FROM session_starts "
    "WHERE hour = ? AND shard = ? AND country = ? AND ts = ? AND session_id = ?"
)
SELECT_ARRIVALS = (
    "SELECT session_id, ts, country, TTL(player_id) AS ttl FROM start_arrivals WHERE slot = ? AND shard = ?"
)
SELECT_ARRIVAL_MINUTE = "SELECT minute FROM arrival_minutes WHERE scope = 'all' AND minute = ?"

# Seconds a TTL read back may lag the TTL written: the time between the write and the read.
TTL_SLACK_SECONDS = 5


# ---- helpers ----


def fresh_player() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def store(cassandra_connection) -> CassandraSessionStore:
    return CassandraSessionStore(cassandra_connection)


@pytest.fixture
def clock() -> FixedClock:
    return now_clock()


def now_clock() -> FixedClock:
    """A clock fixed at the real current time (whole seconds), so the TTLs Cassandra counts down are meaningful."""
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


def start_event(player_id: str, session_id: uuid.UUID, ts: datetime, country: str = "FI") -> dict[str, Any]:
    return {
        "event": "start",
        "player_id": player_id,
        "session_id": str(session_id),
        "ts": ts.isoformat(),
        "country": country,
    }


def end_event(player_id: str, session_id: uuid.UUID, ts: datetime) -> dict[str, Any]:
    return {"event": "end", "player_id": player_id, "session_id": str(session_id), "ts": ts.isoformat()}


def utc(moment: datetime | None) -> datetime | None:
    # The driver returns naive datetimes that are in UTC.
    return None if moment is None else moment.replace(tzinfo=UTC)


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def read_one(cassandra_session, cql: str, params: tuple[Any, ...]):
    return cassandra_session.execute(cassandra_session.prepare(cql), params).one()


def read_all(cassandra_session, cql: str, params: tuple[Any, ...]) -> list:
    return list(cassandra_session.execute(cassandra_session.prepare(cql), params))


def start_rows_of(cassandra_session, settings, session_id: uuid.UUID, country: str, ts: datetime) -> list:
    """Every session_starts row of this session at (country, ts), looked up in each shard of ts's hour."""
    return [
        row
        for shard in range(settings.start_shards)
        for row in read_all(cassandra_session, SELECT_START_ROWS, (hour_start(ts), shard, country, ts))
        if row.session_id == session_id
    ]


def start_row_ttl(
    cassandra_session, settings, session_id: uuid.UUID, country: str, ts: datetime
) -> list[int]:
    return [
        row.player_ttl
        for shard in range(settings.start_shards)
        if (
            row := read_one(
                cassandra_session, SELECT_START_TTL, (hour_start(ts), shard, country, ts, session_id)
            )
        )
    ]


# ---- tests ----


def test_a_session_with_two_history_rows_is_listed_once_and_the_limit_still_filled(
    cassandra_connection, store, clock
):
    # Given a player's history where one session has two rows (two contradicting ends stored by concurrent
    # batches, each of which saw no other end), and two other completed sessions ending earlier
    player_id = fresh_player()
    now = clock.now()
    twice, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = cassandra_connection.prepare(cassandra_store.WRITE_COMPLETED.text)
    rows = [(twice, 1), (twice, 2), (second, 3), (third, 4)]
    for session_id, minutes_ago in rows:
        end = now - timedelta(minutes=minutes_ago)
        cassandra_connection.session().execute(
            insert, (player_id, end, session_id, end - timedelta(minutes=30), "FI", 3_600)
        )
    # When the last 3 are read
    history = store.last_completed_sessions(player_id, now - timedelta(days=365), 3)
    # Then each session is listed once, with its newest end, and the third place goes to the third session
    assert [(s.session_id, s.end_ts) for s in history] == [
        (twice, now - timedelta(minutes=1)),
        (second, now - timedelta(minutes=3)),
        (third, now - timedelta(minutes=4)),
    ]


def test_end_arriving_before_its_start_completes_the_session_once(
    store, clock, cassandra_session, test_settings
):
    # Given the end of a session was ingested alone, before its start
    player_id, session_id = fresh_player(), uuid.uuid4()
    start_ts = clock.now() - timedelta(hours=2, milliseconds=250)
    end_ts = clock.now() - timedelta(minutes=30)
    first = ingest_batch(
        [end_event(player_id, session_id, end_ts)], store=store, clock=clock, settings=test_settings
    )
    assert (first.stored, first.completed_sessions) == (1, 0)

    # When its start (lower-case country) arrives in a later batch
    second = ingest_batch(
        [start_event(player_id, session_id, start_ts, "fi")], store=store, clock=clock, settings=test_settings
    )

    # Then the session is completed once, and the player's history holds it with its values
    assert (second.stored, second.completed_sessions) == (1, 1)
    history = last_completed_sessions(player_id, 20, store=store, clock=clock, settings=test_settings)
    assert [(s.session_id, s.country, s.start_ts, s.end_ts) for s in history] == [
        (session_id, "FI", start_ts, end_ts)
    ]
    assert history[0].duration_seconds == (end_ts - start_ts).total_seconds() == 5400.25
    rows = read_all(cassandra_session, SELECT_COMPLETED, (player_id,))
    assert [(r.session_id, r.country, utc(r.start_ts), utc(r.end_ts)) for r in rows] == [
        (session_id, "FI", start_ts, end_ts)
    ]


def test_start_and_end_racing_from_two_threads_complete_each_session_exactly_once(
    cassandra_connection, cassandra_session, test_settings
):
    # Given 30 sessions of one player, and two writers (each with its own store, like two Lambda environments)
    clock = now_clock()
    player_id = fresh_player()
    sessions = [
        (uuid.uuid4(), clock.now() - timedelta(hours=3, minutes=i), clock.now() - timedelta(minutes=90 - i))
        for i in range(30)
    ]
    barrier = threading.Barrier(2, timeout=30)
    failures: list[BaseException] = []
    completions: Counter[str] = Counter()

    def writer(kind: str) -> None:
        store = CassandraSessionStore(cassandra_connection)
        try:
            for session_id, start_ts, end_ts in sessions:
                event = (
                    start_event(player_id, session_id, start_ts, "SE")
                    if kind == "start"
                    else end_event(player_id, session_id, end_ts)
                )
                barrier.wait()
                outcome = ingest_batch([event], store=store, clock=clock, settings=test_settings)
                completions[kind] += outcome.completed_sessions
        except BaseException as error:  # surfaced in the main thread below
            failures.append(error)
            barrier.abort()

    # When, for each session, its start and its end are ingested at the same moment by the two writers
    threads = [threading.Thread(target=writer, args=(kind,)) for kind in ("start", "end")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures

    # Then every session is completed (at least one writer saw both halves) and appears exactly once
    assert completions["start"] + completions["end"] >= len(sessions)
    rows = read_all(cassandra_session, SELECT_COMPLETED, (player_id,))
    appearances = Counter(row.session_id for row in rows)
    assert appearances == Counter({session_id: 1 for session_id, _, _ in sessions})
    stored = {row.session_id: (utc(row.start_ts), utc(row.end_ts), row.country) for row in rows}
    assert stored == {session_id: (start_ts, end_ts, "SE") for session_id, start_ts, end_ts in sessions}


def test_resending_the_same_batch_leaves_one_row_per_event(store, clock, cassandra_session, test_settings):
    # Given a batch with the start and the end of one session
    player_id, session_id = fresh_player(), uuid.uuid4()
    start_ts = clock.now() - timedelta(hours=5, seconds=7)
    end_ts = clock.now() - timedelta(hours=4)
    batch = [start_event(player_id, session_id, start_ts, "DE"), end_event(player_id, session_id, end_ts)]

    # When the client sends it three times (retries)
    outcomes = [ingest_batch(batch, store=store, clock=clock, settings=test_settings) for _ in range(3)]

    # Then each attempt reports both events stored, and the tables hold one start row and one completed row
    assert [(o.stored, o.discarded, o.rejected) for o in outcomes] == [(2, 0, 0)] * 3
    start_rows = start_rows_of(cassandra_session, test_settings, session_id, "DE", start_ts)
    assert [(row.session_id, row.player_id) for row in start_rows] == [(session_id, player_id)]
    completed = read_all(cassandra_session, SELECT_COMPLETED, (player_id,))
    assert [(r.session_id, utc(r.start_ts), utc(r.end_ts), r.country) for r in completed] == [
        (session_id, start_ts, end_ts, "DE")
    ]
    session_row = read_one(cassandra_session, SELECT_SESSION, (session_id,))
    assert (
        session_row.player_id,
        session_row.country,
        utc(session_row.start_ts),
        utc(session_row.end_ts),
    ) == (player_id, "DE", start_ts, end_ts)


def test_ttl_written_is_the_retention_minus_the_age_of_the_event(
    store, clock, cassandra_session, test_settings
):
    # Given a session that started 100 days ago and ended 99 days ago
    player_id, session_id = fresh_player(), uuid.uuid4()
    start_ts = clock.now() - timedelta(days=100)
    end_ts = clock.now() - timedelta(days=99)
    expected_start_ttl = test_settings.retention_seconds - 100 * 86_400
    expected_end_ttl = test_settings.retention_seconds - 99 * 86_400

    # When both events are ingested, in one batch (their halves go out as one single-partition batch)
    outcome = ingest_batch(
        [start_event(player_id, session_id, start_ts, "US"), end_event(player_id, session_id, end_ts)],
        store=store,
        clock=clock,
        settings=test_settings,
    )

    # Then the start's rows expire when the start leaves the retention
    assert (outcome.stored, outcome.completed_sessions) == (2, 1)
    sessions_ttl = read_one(cassandra_session, SELECT_SESSION_TTL, (session_id,))
    assert expected_start_ttl - TTL_SLACK_SECONDS <= sessions_ttl.start_ttl <= expected_start_ttl
    # And the end's half of the session row keeps its own, later expiry
    assert expected_end_ttl - TTL_SLACK_SECONDS <= sessions_ttl.end_ttl <= expected_end_ttl
    (start_row_ttl_left,) = start_row_ttl(cassandra_session, test_settings, session_id, "US", start_ts)
    assert expected_start_ttl - TTL_SLACK_SECONDS <= start_row_ttl_left <= expected_start_ttl
    # And the completed row follows the older of its two events, the start
    (completed,) = read_all(cassandra_session, SELECT_COMPLETED_TTL, (player_id,))
    assert completed.session_id == session_id
    assert expected_start_ttl - TTL_SLACK_SECONDS <= completed.start_ttl <= expected_start_ttl
    assert expected_start_ttl - TTL_SLACK_SECONDS <= completed.country_ttl <= expected_start_ttl


def test_two_different_ends_of_one_session_in_one_batch_keep_the_first_and_reject_the_second(
    store, clock, cassandra_session, test_settings
):
    # Given a start, and two contradicting ends of the same session, all in one batch
    player_id, session_id = fresh_player(), uuid.uuid4()
    start_ts = clock.now() - timedelta(hours=2)
    first_end, second_end = start_ts + timedelta(minutes=20), start_ts + timedelta(minutes=10)
    batch = [
        start_event(player_id, session_id, start_ts),
        end_event(player_id, session_id, first_end),
        end_event(player_id, session_id, second_end),
    ]
    # When it is ingested
    outcome = ingest_batch(batch, store=store, clock=clock, settings=test_settings)
    # Then a session ends once: the second end is rejected naming the session, and the row keeps the first
    assert (outcome.stored, outcome.rejected) == (2, 1)
    assert (outcome.problems[0].index, outcome.problems[0].field) == (2, "session_id")
    row = read_one(cassandra_session, SELECT_SESSION, (session_id,))
    assert (utc(row.start_ts), utc(row.end_ts)) == (start_ts, first_end)
    # And a second batch with the other end finds the stored one (read before it writes)
    again = ingest_batch([batch[2]], store=store, clock=clock, settings=test_settings)
    assert again.rejected == 1 and "already ended at" in again.problems[0].reason


def test_event_older_than_the_retention_is_discarded_and_not_stored(
    store, clock, cassandra_session, test_settings
):
    # Given a start whose ts is one minute past the retention
    player_id, session_id = fresh_player(), uuid.uuid4()
    too_old = clock.now() - test_settings.retention - timedelta(minutes=1)

    # When it is ingested
    outcome = ingest_batch(
        [start_event(player_id, session_id, too_old)], store=store, clock=clock, settings=test_settings
    )

    # Then it is reported discarded for its ts, and nothing of the session is stored
    assert (outcome.stored, outcome.discarded, outcome.rejected) == (0, 1, 0)
    assert [(p.index, p.status, p.field) for p in outcome.problems] == [(0, "discarded", "ts")]
    assert read_one(cassandra_session, SELECT_SESSION, (session_id,)) is None
    assert start_rows_of(cassandra_session, test_settings, session_id, "FI", too_old) == []


def test_event_beyond_the_clock_skew_is_rejected_while_valid_events_of_the_batch_are_stored(
    store, clock, cassandra_session, test_settings
):
    # Given a batch: a valid start, then an end more than the clock-skew allowance in the future
    player_id = fresh_player()
    valid_id, future_id = uuid.uuid4(), uuid.uuid4()
    valid_ts = clock.now() - timedelta(minutes=3)
    future_ts = clock.now() + test_settings.clock_skew + timedelta(seconds=1)

    # When it is ingested
    outcome = ingest_batch(
        [start_event(player_id, valid_id, valid_ts, "JP"), end_event(player_id, future_id, future_ts)],
        store=store,
        clock=clock,
        settings=test_settings,
    )

    # Then the future event is rejected for its ts and not stored, and the valid one is stored
    assert (outcome.stored, outcome.discarded, outcome.rejected) == (1, 0, 1)
    assert [(p.index, p.status, p.field) for p in outcome.problems] == [(1, "rejected", "ts")]
    assert read_one(cassandra_session, SELECT_SESSION, (future_id,)) is None
    valid_row = read_one(cassandra_session, SELECT_SESSION, (valid_id,))
    assert (valid_row.player_id, valid_row.country, utc(valid_row.start_ts), valid_row.end_ts) == (
        player_id,
        "JP",
        valid_ts,
        None,
    )


def test_history_is_the_newest_sessions_by_end_time_bounded_by_the_limit(store, clock, test_settings):
    # Given a player with 30 completed sessions, ended one hour apart (ingested in shuffled order of batches)
    player_id = fresh_player()
    sessions = [
        (uuid.uuid4(), clock.now() - timedelta(hours=i + 1, minutes=20), clock.now() - timedelta(hours=i + 1))
        for i in range(30)
    ]
    for chunk_start in (20, 0, 10):
        batch = [
            event
            for session_id, start_ts, end_ts in sessions[chunk_start : chunk_start + 10]
            for event in (
                start_event(player_id, session_id, start_ts),
                end_event(player_id, session_id, end_ts),
            )
        ]
        for half in (batch[:10], batch[10:]):
            assert ingest_batch(half, store=store, clock=clock, settings=test_settings).stored == 10
    newest_first = [session_id for session_id, _, _ in sessions]  # i = 0 ended most recently

    # When the history is read with limit 20 and with limit 5
    twenty = last_completed_sessions(player_id, 20, store=store, clock=clock, settings=test_settings)
    five = last_completed_sessions(player_id, 5, store=store, clock=clock, settings=test_settings)

    # Then it holds the 20 (or 5) most recently ended sessions, newest end first
    assert [s.session_id for s in twenty] == newest_first[:20]
    assert [s.session_id for s in five] == newest_first[:5]
    end_times = [s.end_ts for s in twenty]
    assert end_times == sorted(end_times, reverse=True)


def test_session_whose_start_left_the_retention_is_not_in_the_history(cassandra_connection, test_settings):
    # Given, ingested at time T, a session started 10 days before T and ended 1 day before T,
    # and a session started and ended 2 days before T
    store = CassandraSessionStore(cassandra_connection)
    ingest_clock = now_clock()
    t = ingest_clock.now()
    player_id, old_start_id, recent_id = fresh_player(), uuid.uuid4(), uuid.uuid4()
    batch = [
        start_event(player_id, old_start_id, t - timedelta(days=10)),
        end_event(player_id, old_start_id, t - timedelta(days=1)),
        start_event(player_id, recent_id, t - timedelta(days=2, hours=1)),
        end_event(player_id, recent_id, t - timedelta(days=2)),
    ]
    assert (
        ingest_batch(batch, store=store, clock=ingest_clock, settings=test_settings).completed_sessions == 2
    )

    # When the history is read at T + retention - 5 days (the rows are still there: their TTL runs on real time),
    # when the first session's start is out of the retention but its end is in
    read_clock = FixedClock(t + test_settings.retention - timedelta(days=5))
    history = last_completed_sessions(player_id, 20, store=store, clock=read_clock, settings=test_settings)

    # Then only the session with both events retained is returned
    assert [s.session_id for s in history] == [recent_id]


def test_each_stored_start_arrives_in_the_current_slot_with_its_ttl_and_its_minute_recorded(
    store, clock, cassandra_session, test_settings
):
    # Given a start from 40 days ago, a live one, and one stamped two minutes ahead of the server
    now = clock.now()
    late, live, ahead = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stamps = {
        late: now - timedelta(days=40, hours=3, minutes=17),
        live: now,
        ahead: now + timedelta(minutes=2),
    }

    # When they are ingested
    outcome = ingest_batch(
        [start_event(fresh_player(), sid, ts) for sid, ts in stamps.items()],
        store=store,
        clock=clock,
        settings=test_settings,
    )

    # Then each is in the arrival log once: the late and the live one in the current second, the one ahead in
    # its own; each with the TTL of its start row up to a week, and the minutes of both slots recorded
    assert outcome.stored == 3
    expected_slot = {late: slot_of(now), live: slot_of(now), ahead: slot_of(stamps[ahead])}
    for sid, ts in stamps.items():
        rows = [
            row
            for shard in range(test_settings.start_shards)
            for row in read_all(cassandra_session, SELECT_ARRIVALS, (expected_slot[sid], shard))
            if row.session_id == sid
        ]
        assert [(utc(row.ts), row.country) for row in rows] == [(ts, "FI")]
        # kept a week at most: the arrival is read until its slot is folded
        ttl = min(ttl_seconds(ts, now, test_settings.retention), ARRIVAL_TTL_SECONDS)
        assert ttl - TTL_SLACK_SECONDS <= rows[0].ttl <= ttl
        minute = Level.MINUTE.floor(slot_start(expected_slot[sid]))
        assert read_one(cassandra_session, SELECT_ARRIVAL_MINUTE, (minute,)) is not None


def test_unreachable_cassandra_fails_fast_with_database_unavailable(
    cassandra_session, test_settings, monkeypatch
):
    # Given a store whose Cassandra is on a port where nothing listens, and every attempt to connect counted
    unreachable = test_settings.model_copy(
        update={"cassandra_port": 1, "cassandra_connect_timeout_seconds": 1.0}
    )
    connection = CassandraConnection(unreachable)
    store = CassandraSessionStore(connection)
    clock = now_clock()
    session_id = uuid.uuid4()
    batch = [start_event(fresh_player(), session_id, clock.now() - timedelta(minutes=1))]
    attempts: list[int] = []
    connect = Cluster.connect

    def counted(cluster, *args, **kwargs):
        attempts.append(cluster.port)
        return connect(cluster, *args, **kwargs)

    monkeypatch.setattr(Cluster, "connect", counted)

    # When a batch is ingested
    try:
        with pytest.raises(DatabaseUnavailableError) as raised:
            ingest_batch(batch, store=store, clock=clock, settings=unreachable)
    finally:
        connection.close()

    # Then it fails after one attempt to connect (refused at once: no wait, no second try) with
    # DatabaseUnavailableError (503), and nothing is stored
    assert attempts == [1]
    assert raised.value.status_code == 503
    assert raised.value.message == "cannot connect to Cassandra"  # not the driver's text: no host, no port
    assert read_one(cassandra_session, SELECT_SESSION, (session_id,)) is None


def test_a_history_read_and_an_ingest_batch_count_every_read_they_send(store, clock, test_settings):
    # Given a player with 30 completed sessions
    player_id = fresh_player()
    ended = [clock.now() - timedelta(hours=i + 1) for i in range(30)]
    batches = [
        [
            event
            for end_ts in ended[first : first + 5]
            for session_id in [uuid.uuid4()]
            for event in (
                start_event(player_id, session_id, end_ts - timedelta(minutes=20)),
                end_event(player_id, session_id, end_ts),
            )
        ]
        for first in range(0, 30, 5)
    ]
    for batch in batches[:-1]:
        assert ingest_batch(batch, store=store, clock=clock, settings=test_settings).stored == 10

    # When the last batch is ingested, and the history read with limit 5 and with limit 20, each metered
    with metered() as ingest_reads:
        assert ingest_batch(batches[-1], store=store, clock=clock, settings=test_settings).stored == 10
    with metered() as five_reads:
        five = last_completed_sessions(player_id, 5, store=store, clock=clock, settings=test_settings)
    with metered() as twenty_reads:
        twenty = last_completed_sessions(player_id, 20, store=store, clock=clock, settings=test_settings)

    # Then the history is one request to the player's partition returning one page of the limit plus the slack
    assert (len(five), len(twenty)) == (5, 20)
    assert (five_reads.requests, five_reads.partitions, five_reads.rows) == (1, 1, 5 + PAGE_SLACK)
    assert (twenty_reads.requests, twenty_reads.partitions, twenty_reads.rows) == (1, 1, 20 + PAGE_SLACK)
    # And the batch's reads are its player's erasure record (one IN request) with its five sessions (one IN
    # request of five partitions, none stored yet) before the writes, the erasure record again after them, and
    # once more after the history rows: no watermark (nothing here stores what it saw), no session read back
    # (both halves were in the batch)
    assert (ingest_reads.requests, ingest_reads.partitions, ingest_reads.rows) == (
        1 + 1 + 1 + 1,
        1 + 5 + 1 + 1,
        0,
    )


def test_a_batch_reads_what_it_meets_in_one_round_or_again_one_partition_per_request(
    counts_stores, counts_settings, counts_connection, monkeypatch
):
    # Given an erased player, a stored start of another, and the watermarks of two of the four parts
    sessions, starts = counts_stores
    clock = now_clock()
    erased, player = fresh_player(), fresh_player()
    erased_hash, player_hash = counts_settings.player_hash(erased), counts_settings.player_hash(player)
    counts_connection.session().execute(
        "INSERT INTO erased_players (player_hash, erased_at, erasure_id) VALUES (%s, %s, %s)",
        (erased_hash, clock.now(), uuid.uuid4()),
    )
    stored, unknown = uuid.uuid4(), uuid.uuid4()
    started = clock.now() - timedelta(minutes=1)
    ingest_batch(
        [start_event(player, stored, started)], store=sessions, clock=clock, settings=counts_settings
    )
    starts.write_progress(0, 100)
    starts.write_progress(2, 102)
    rounds: list[int] = []
    failing_rounds: set[int] = set()
    failure: Exception = ReadTimeout("the IN's coordinator waited for a lost replica")
    sent = cassandra_store.execute_all

    def counted(session, pairs, **options):
        rounds.append(len(pairs))
        if len(rounds) - 1 in failing_rounds:
            raise failure
        return sent(session, pairs, **options)

    monkeypatch.setattr(cassandra_store, "execute_all", counted)

    # When the batch's reads before writing are made
    with metered() as reads:
        before = sessions.read_before_writing([erased_hash, player_hash], [stored, unknown], [0, 1, 2, 3])

    # Then they went in one round: one IN of both erasure records, one IN of both sessions, one IN of the
    # watermarks
    assert rounds == [1 + 1 + 1]
    # And each read was metered once: 3 requests, 2 + 2 + 4 partitions, the 1 + 1 + 2 rows found
    assert (reads.requests, reads.partitions, reads.rows) == (3, 8, 4)
    # And they found the erasure, the stored half, and the two watermarks there are
    assert before.erased == {erased_hash: clock.now()}
    assert before.sessions == {stored: SessionHalves(stored, player, "FI", started, None)}
    assert before.watermarks == {0: 100, 2: 102}

    # When the same reads meet a failure (an IN fails whole when one of its partitions does)
    rounds.clear()
    failing_rounds.add(0)
    again = sessions.read_before_writing([erased_hash, player_hash], [stored, unknown], [0, 1, 2, 3])

    # Then they are made again, the erasure records and the sessions one per request, and find the same
    assert rounds == [3, 2, 2, 1]
    assert again == before

    # When no host answers at all (Cassandra down, not one partition's replicas)
    rounds.clear()
    failing_rounds.update({0, 1})
    failure = NoHostAvailable("no host answered", {})

    # Then the round is sent once more after the connection says a host is back, and not read again one by
    # one: the batch is refused (503) at once
    with pytest.raises(DatabaseUnavailableError):
        sessions.read_before_writing([erased_hash, player_hash], [stored, unknown], [0, 1, 2, 3])
    assert rounds == [3, 3]

    # When nothing answers within the request timeout (a node or a connection gone silent)
    rounds.clear()
    failure = OperationTimedOut("no answer within the request timeout")

    # Then the batch is refused at once too
    with pytest.raises(DatabaseUnavailableError):
        sessions.read_before_writing([erased_hash, player_hash], [stored, unknown], [0, 1, 2, 3])
    assert rounds == [3]
