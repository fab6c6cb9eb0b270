"""One replica of three lost, and found again: the service on the three-node cluster at LOCAL_QUORUM."""

from __future__ import annotations

import time

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from tests.cluster.traffic import Traffic
from tests.e2e.conftest import serve, stop

pytestmark = pytest.mark.cluster

TRAFFIC_BEFORE_KILL_SECONDS = 4.0
TRAFFIC_AFTER_KILL_SECONDS = 12.0
COMPLETED_ROWS = "SELECT session_id, start_ts, end_ts FROM completed_sessions_by_player WHERE player_id = %s"


def completed_rows(session, player: str) -> dict[str, tuple]:
    statement = SimpleStatement(COMPLETED_ROWS, consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    return {
        str(row.session_id): (row.start_ts, row.end_ts)
        for row in session.execute(statement, (player,), timeout=10)
    }


def test_a_replica_killed_during_sustained_ingest_and_reads_costs_no_request_and_no_event(
    cluster, cassandra_session, tmp_path, record_property
):
    api = serve({}, tmp_path / "gateway.log")
    try:
        # Given three writers and a reader going steadily through the service
        with Traffic(api, "NO") as traffic:
            time.sleep(TRAFFIC_BEFORE_KILL_SECONDS)
            # When one replica (the first contact point, which holds the drivers' control connections) is
            # killed with -9 in the middle of it
            killed_at = time.monotonic()
            cluster.kill(1)
            time.sleep(TRAFFIC_AFTER_KILL_SECONDS)
        # Then no request failed, and the traffic went on after the kill
        assert traffic.failures == [], f"killed at {killed_at:.2f}: " + " | ".join(traffic.failures)
        after_kill = [moment for moment in traffic.posts if moment > killed_at]
        assert len(after_kill) >= 10, f"{len(after_kill)} batches stored after the kill"
        # And every acknowledged session is stored, complete where both halves were acknowledged, and that
        # includes sessions started before the kill and ended after it
        across = 0
        for player in traffic.sessions:
            completed = traffic.completed(player)
            assert set(completed_rows(cassandra_session, player)) == {s.session_id for s in completed}
            across += sum(1 for s in completed if s.across(killed_at))
            with api.client() as client:
                history = client.get(f"/players/{player}/sessions").json()["sessions"]
            newest = sorted(completed, key=lambda s: s.end_ts, reverse=True)[:20]
            assert [h["session_id"] for h in history] == [s.session_id for s in newest]
            assert all(h["start_ts"] and h["end_ts"] for h in history)
        assert across >= 1, "no session was started before the kill and ended after it"
        # And the metric counts every acknowledged start, once
        with api.client() as client:
            counts = client.get("/countries/starts?hours=1").json()["countries"]
        assert {c["country"]: c["starts"] for c in counts}.get("NO") == traffic.started()
    finally:
        stop(api)
    record_property("batches_after_kill", len(after_kill))
    record_property("batches", len(traffic.posts))
    record_property("reads", traffic.reads)
    record_property("sessions_completed_across_the_kill", across)
