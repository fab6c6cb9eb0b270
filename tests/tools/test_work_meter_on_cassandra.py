"""The local work meter (player_sessions_local.work) against the real local Cassandra: what a batch of ten events
and a history read cost in rows, bytes and Keyspaces request units, computed by hand from the schema and the
values written. It plugs into the service's session hook; a session without it carries no meter at all."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.clock import FixedClock
from player_sessions.domain.ingest import ingest_batch
from player_sessions.domain.player_history import last_completed_sessions
from player_sessions.repositories.cassandra_store import CassandraSessionStore
from player_sessions_local.work.meter import measuring, meter_session, meters_of, work_record
from tests.integration.test_ingest_on_cassandra import end_event, fresh_player, now_clock, start_event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def metered_connection(test_settings):
    """A connection whose session has a meter, as every local environment's gets from the session hook."""
    connection = CassandraConnection(test_settings)
    meter_session(connection.session())
    yield connection
    connection.close()


def sessions_of(player_id: str, clock: FixedClock, count: int) -> list[dict[str, Any]]:
    """``count`` sessions of the player in Finland, the n-th from 30 + n to n minutes ago, start and end side by
    side."""
    batch = []
    for minutes in range(count):
        session_id = uuid.uuid4()
        batch += [
            start_event(player_id, session_id, clock.now() - timedelta(minutes=30 + minutes), "FI"),
            end_event(player_id, session_id, clock.now() - timedelta(minutes=minutes)),
        ]
    return batch


def measured(connection):
    return measuring(meters_of(connection.session(), None))


# A 32-character player id and a two-letter country, by the rules in player_sessions.keyspaces_units:
# key columns twice (partition + 3 bytes, clustering + 1 byte per 5), every column + 1 byte of identifier.
UUID_PK = 2 * 16 + 3 + 1  # 36
TS_CK, UUID_CK, COUNTRY_CK = 2 * 8 + 2 + 1, 2 * 16 + 4 + 1, 2 * 2 + 1 + 1  # 19, 37, 6
PLAYER, COUNTRY, TS = 32 + 1, 2 + 1, 8 + 1  # 33, 3, 9
SESSION_START_HALF = UUID_PK + PLAYER + COUNTRY + TS  # 81
SESSION_END_HALF = UUID_PK + TS  # 45
COMPLETED_ROW = (2 * 32 + 3 + 1) + TS_CK + UUID_CK + TS + COUNTRY  # 136
# hour (timestamp) and shard (an int under 10: 1 digit -> 2 bytes) as partition key columns
START_ROW = (2 * 8 + 3 + 1) + (2 * 2 + 3 + 1) + COUNTRY_CK + TS_CK + UUID_CK + PLAYER  # 123


def test_a_ten_event_batch_costs_one_write_unit_per_row(metered_connection, test_settings):
    # Given five sessions, each start and end in one batch of ten events
    store = CassandraSessionStore(metered_connection)
    clock = now_clock()
    batch = sessions_of(fresh_player(), clock, 5)

    # When it is stored while the session's meter counts
    with measured(metered_connection) as tally:
        outcome = ingest_batch(batch, store=store, clock=clock, settings=test_settings)
    work = work_record(tally)["cassandra"]

    # Then every row is counted with its encoded size, and each row (all under 1 KB) is one WRU
    assert outcome.stored == 10
    written = {table: w for table, w in work.items() if "rows_written" in w}
    assert {
        table: (w["rows_written"], w["bytes_written"], w["write_units"]) for table, w in written.items()
    } == {
        "sessions": (10, 5 * (SESSION_START_HALF + SESSION_END_HALF), 10),
        "completed_sessions_by_player": (5, 5 * COMPLETED_ROW, 5),
        "session_starts": (5, 5 * START_ROW, 5),
        "start_arrivals": (5, work["start_arrivals"]["bytes_written"], 5),
        # each completed session's records for the live-ops counts, and the minute of each family's arrivals
        "completion_arrivals": (5, work["completion_arrivals"]["bytes_written"], 5),
        "length_arrivals": (5, work["length_arrivals"]["bytes_written"], 5),
        "arrival_minutes": (3, work["arrival_minutes"]["bytes_written"], 3),
        # the player's index: each start, its arrival, each end
        "player_writes": (15, work["player_writes"]["bytes_written"], 15),
    }
    # And the player's erasure record is read, twice (before and after the writes), finding none
    assert set(work) == {*written, "erased_players"}
    assert work_record(tally)["write_units"] == 53


def test_a_history_read_costs_its_pages_in_read_units(metered_connection, test_settings):
    # Given a player with three completed sessions
    store = CassandraSessionStore(metered_connection)
    clock = now_clock()
    player_id = fresh_player()
    batch = sessions_of(player_id, clock, 3)
    ingest_batch(batch, store=store, clock=clock, settings=test_settings)

    # When the history is read while the session's meter counts
    with measured(metered_connection) as tally:
        sessions = last_completed_sessions(player_id, 20, store=store, clock=clock, settings=test_settings)

    # Then one page of three rows (session id, start, end, country: no player id) is one RRU
    assert len(sessions) == 3
    read = work_record(tally)["cassandra"]["completed_sessions_by_player"]
    assert read == {
        "read_requests": 1,
        "rows_read": 3,
        "bytes_read": 3 * (UUID_CK + TS + TS_CK + COUNTRY),
        "read_units": 1.0,
    }


def test_a_session_without_the_hook_carries_no_meter(cassandra_connection, test_settings):
    # Given the service's own connection, as deployed: no hook registered, so no meter on its session
    store = CassandraSessionStore(cassandra_connection)
    clock = now_clock()
    batch = [start_event(fresh_player(), uuid.uuid4(), clock.now() - timedelta(minutes=3))]
    assert meters_of(cassandra_connection.session(), None) == []

    # When a batch is stored while every meter of the process counts
    with measuring() as tally:
        ingest_batch(batch, store=store, clock=clock, settings=test_settings)

    # Then none of its work was seen: nothing in the service sizes a row
    assert work_record(tally)["cassandra"] == {}


def test_a_session_opened_during_a_measurement_counts_into_it_from_its_first_request(test_settings):
    # Given a player with one completed session, and a connection not opened yet (a cold start opens its
    # session lazily, inside its first request's measurement)
    clock = now_clock()
    player_id = fresh_player()
    ingest_batch(
        sessions_of(player_id, clock, 1),
        store=CassandraSessionStore(CassandraConnection(test_settings)),
        clock=clock,
        settings=test_settings,
    )
    connection = CassandraConnection(test_settings)
    try:
        # When every meter of the process is measured, and the session is opened and metered (as the session
        # hook does) during the block, then read
        with measuring() as tally:
            meter_session(connection.session())
            last_completed_sessions(
                player_id, 20, store=CassandraSessionStore(connection), clock=clock, settings=test_settings
            )
        # Then its read is in the tally, and after the block the new meter counts into none
        read = work_record(tally)["cassandra"]["completed_sessions_by_player"]
        assert (read["read_requests"], read["rows_read"]) == (1, 1)
        (meter,) = meters_of(connection.session(), None)
        assert meter.tally is None
    finally:
        connection.close()
