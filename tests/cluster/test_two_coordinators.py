"""The two halves of one session arrive at the same moment, in two requests, each coordinated by a different
node: the session is completed exactly once, and its history row has both halves.

Each half is stored at LOCAL_QUORUM, then the session row is read back at LOCAL_QUORUM; two quorums of three
share a node, so at least the later of the two read-backs sees both halves. Both may: the completed row is then
written twice with the same key and values, which is one row.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from player_sessions.clock import SystemClock
from player_sessions.domain.ingest import ingest_batch
from player_sessions.repositories.cassandra_store import CassandraSessionStore
from tests.cluster.conftest import address

pytestmark = pytest.mark.cluster

SESSIONS = 30
COMPLETED = (
    "SELECT session_id, start_ts, end_ts, country FROM completed_sessions_by_player WHERE player_id = %s"
)


def millis(ts: str) -> datetime:
    """The timestamp as stored: at millisecond precision."""
    moment = datetime.fromisoformat(ts)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def halves(player: str) -> tuple[dict, dict]:
    session_id, start = str(uuid.uuid4()), datetime.now(UTC) - timedelta(minutes=40)
    return (
        {
            "event": "start",
            "player_id": player,
            "session_id": session_id,
            "country": "IS",
            "ts": start.isoformat(),
        },
        {
            "event": "end",
            "player_id": player,
            "session_id": session_id,
            "ts": (start + timedelta(minutes=25)).isoformat(),
        },
    )


def test_start_and_end_at_once_through_two_coordinators_complete_the_session_once_with_both_halves(
    pinned, test_settings, cassandra_session, record_property
):
    # Given two stores whose requests are coordinated by node 1 and node 2 respectively
    stores = {node: CassandraSessionStore(pinned[node]) for node in (1, 2)}
    for node, connection in pinned.items():
        assert {host.address for host in connection.session().get_pool_state()} == {address(node)}
    player, clock = uuid.uuid4().hex, SystemClock()
    completed_by, sent = [], []
    for _ in range(SESSIONS):
        start, end = halves(player)
        sent.append((start, end))
        gate = threading.Barrier(2)
        outcomes: dict[str, int] = {}

        def ingest(event: dict, node: int, outcomes=outcomes, gate=gate) -> None:
            gate.wait()
            outcome = ingest_batch([event], store=stores[node], clock=clock, settings=test_settings)
            assert outcome.stored == 1
            outcomes[event["event"]] = outcome.completed_sessions

        # When its start goes through node 1 and its end through node 2 at the same moment
        threads = [
            threading.Thread(target=ingest, args=(start, 1)),
            threading.Thread(target=ingest, args=(end, 2)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert set(outcomes) == {"start", "end"}, "an ingest failed"
        completed_by.append(outcomes["start"] + outcomes["end"])
    # Then each session was seen complete by at least one of its two requests
    assert all(count >= 1 for count in completed_by), completed_by
    # And the player's history holds each session exactly once, with both halves as they were sent
    statement = SimpleStatement(COMPLETED, consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    rows = list(cassandra_session.execute(statement, (player,), timeout=10))
    assert sorted(str(row.session_id) for row in rows) == sorted(start["session_id"] for start, _ in sent)
    by_id = {str(row.session_id): row for row in rows}
    for start, end in sent:
        row = by_id[start["session_id"]]
        assert (row.start_ts.replace(tzinfo=UTC), row.end_ts.replace(tzinfo=UTC)) == (
            millis(start["ts"]),
            millis(end["ts"]),
        )
        assert row.country == "IS"
    record_property("sessions_completed_by_both_requests", sum(1 for count in completed_by if count == 2))
