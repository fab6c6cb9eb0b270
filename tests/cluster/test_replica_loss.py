"""Replicas lost and found again: the service on the three-node cluster at LOCAL_QUORUM (two of three)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from tests.cluster.conftest import LOCAL_DIR, wait_until_hosts_up
from tests.cluster.traffic import Traffic
from tests.faults.conftest import completed_session
from tests.faults.test_cassandra_outages import first_success, timed

pytestmark = pytest.mark.cluster

TRAFFIC_BEFORE_FAULT_SECONDS = 4.0
TRAFFIC_AFTER_FAULT_SECONDS = 12.0
COMPLETED_ROWS = "SELECT session_id, start_ts, end_ts FROM completed_sessions_by_player WHERE player_id = %s"


def completed_rows(session, player: str) -> dict[str, tuple]:
    statement = SimpleStatement(COMPLETED_ROWS, consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    return {
        str(row.session_id): (row.start_ts, row.end_ts)
        for row in session.execute(statement, (player,), timeout=10)
    }


PAUSE_SECONDS = 3.0
"""Longer than the service's request timeout (2 s), far shorter than it takes the others to convict the node
(phi 8: about 18 gossip rounds of 1 s): the node is up for everyone, and answers nothing."""


@pytest.mark.parametrize(
    "fault",
    [
        # One replica (the first contact point, which holds the drivers' control connections) killed with -9:
        # batches go on being stored after it
        pytest.param((lambda cluster: cluster.kill(1), "NO", math.inf, 10), id="killed"),
        # One replica answering nothing for longer than a request may take, as in a long garbage collection or a
        # starved process (SIGSTOP, then SIGCONT), every request it coordinates included: batches are stored
        # while it is paused, by the other coordinators
        pytest.param((lambda cluster: cluster.pause(2, PAUSE_SECONDS), "DK", PAUSE_SECONDS, 3), id="paused"),
    ],
)
def test_a_replica_killed_or_paused_during_sustained_ingest_and_reads_costs_no_request_and_no_event(
    fault, cluster, cassandra_session, api, record_property
):
    strike, country, stored_within, at_least = fault
    # Given three writers and a reader going steadily through the service, when the fault strikes in the middle
    # of it, then no request failed
    traffic, struck_at = traffic_through(api, country, lambda: strike(cluster), record_property)
    # And the writers' batches went on being stored
    stored = [moment for moment in traffic.posts if struck_at < moment < struck_at + stored_within]
    assert len(stored) >= at_least, f"{len(stored)} batches stored from the fault on"
    # And every acknowledged session is stored, including sessions started before the fault and ended after
    across = assert_every_acknowledged_session_stored(api, cassandra_session, traffic, struck_at)
    record_property("batches_stored_from_the_fault_on", len(stored))
    record_property("sessions_completed_across_the_fault", across)


def traffic_through(api, country: str, fault: Callable[[], None], record_property) -> tuple[Traffic, float]:
    """Three writers and a reader going steadily through the service (``Traffic``), and ``fault`` struck in the
    middle of it, once every route is warm; asserts that no request failed, records how many batches and reads
    were answered, and returns the traffic, stopped, and when the fault struck."""
    with Traffic(api, country) as traffic:
        traffic.wait_until_flowing()
        time.sleep(TRAFFIC_BEFORE_FAULT_SECONDS)
        struck_at = time.monotonic()
        fault()
        time.sleep(TRAFFIC_AFTER_FAULT_SECONDS)
    record_property("batches", len(traffic.posts))
    record_property("reads", traffic.reads)
    assert traffic.failures == [], f"the fault struck at {struck_at:.2f}: " + " | ".join(traffic.failures)
    return traffic, struck_at


def assert_every_acknowledged_session_stored(api, cassandra_session, traffic: Traffic, moment: float) -> int:
    """Every session the traffic had acknowledged is stored, complete where both halves were acknowledged, in
    the player's history as the newest 20, and counted once by the metric; returns how many sessions were
    completed across ``moment`` (at least one: started before it, ended after it)."""
    across = 0
    for player in traffic.sessions:
        completed = traffic.completed(player)
        assert set(completed_rows(cassandra_session, player)) == {s.session_id for s in completed}
        across += sum(1 for s in completed if s.across(moment))
        with api.client() as client:
            history = client.get(f"/players/{player}/sessions").json()["sessions"]
        newest = sorted(completed, key=lambda s: s.end_ts, reverse=True)[:20]
        assert [h["session_id"] for h in history] == [s.session_id for s in newest]
        assert all(h["start_ts"] and h["end_ts"] for h in history)
    assert across >= 1, "no session was started before the fault and ended after it"
    with api.client() as client:
        counts = client.get("/countries/starts?hours=1").json()["countries"]
    assert {c["country"]: c["starts"] for c in counts}.get(traffic.country) == traffic.started()
    return across


ANSWER_WITHIN_SECONDS = 5.0
RETURN_WITHIN_SECONDS = 60.0


def test_two_replicas_down_is_a_prompt_503_and_the_service_returns_by_itself_when_one_is_back(
    cluster, cassandra_session, api, record_property
):
    player = uuid.uuid4().hex
    before, during = completed_session(player, "SE", 90), completed_session(player, "SE", 30)
    with api.client() as client:
        # Given a warm service on three replicas
        assert client.post("/studio/events", json=before).json()["stored"] == 2
        assert client.get("/health").json()["cassandra"]["status"] == "up"
        # When two of the three are killed: no quorum is left
        cluster.kill(2, 3)
        answers = {
            "ingest": timed(lambda: client.post("/studio/events", json=during)),
            "history": timed(lambda: client.get(f"/players/{player}/sessions")),
            "metric": timed(lambda: client.get("/countries/starts?hours=2")),
            "health": timed(lambda: client.get("/health")),
        }
        # Then every route answers 503 with Retry-After, promptly, naming Cassandra; /health says it is down
        for route, (response, seconds) in answers.items():
            assert response.status_code == 503, f"{route}: {response.text}"
            assert int(response.headers["retry-after"]) > 0, route
            assert "Cassandra" in response.text, route
            assert seconds < ANSWER_WITHIN_SECONDS, f"{route} answered after {seconds:.1f} s"
        assert answers["health"][0].json()["cassandra"]["status"] == "down"
        # And once one of them is back, the same service (no restart) stores and reads again by itself
        started_s = cluster.start(2)
        back_at = time.monotonic()
        stored, _ = first_success(lambda: client.post("/studio/events", json=during), RETURN_WITHIN_SECONDS)
        returned_s = time.monotonic() - back_at
        assert stored.status_code == 200, f"not back {returned_s:.0f} s after node 2: {stored.text}"
        assert stored.json()["stored"] == 2
        history = client.get(f"/players/{player}/sessions").json()["sessions"]
        assert [h["session_id"] for h in history] == [during[0]["session_id"], before[0]["session_id"]]
        assert client.get("/health").json()["cassandra"]["status"] == "up"
    record_property("seconds_to_503", round(max(seconds for _, seconds in answers.values()), 2))
    record_property("node_start_seconds", round(started_s, 1))
    record_property("seconds_to_serve_after_node_answered", round(returned_s, 2))


def test_a_replica_that_comes_back_is_used_again_and_gets_by_hints_what_it_missed(
    cluster, cassandra_session, pinned, uncached_api, record_property
):
    player = uuid.uuid4().hex
    missed = [completed_session(player, "FI", 200 - 5 * n) for n in range(20)]
    with uncached_api.client() as client:
        # Given a replica that is down while 20 sessions are stored (by a client that re-sends on a 503, as told:
        # with one replica dead, a pause of either live one refuses a write, which is not what this test is about)
        cluster.kill(3)
        seconds = 0.0
        for batch in missed:
            stored, took = first_success(lambda batch=batch: client.post("/studio/events", json=batch), 30.0)
            assert stored.status_code == 200, stored.text
            assert stored.json()["stored"] == 2
            seconds = max(seconds, took)
        # (the two live replicas keep hints for it: the writes it missed)
        hints_seen = wait_for(lambda: hint_files(1, 2), HINTS_WITHIN_SECONDS)
        assert hints_seen, "no hints were written for the dead replica"
        # When it comes back
        cluster.start(3)
        wait_until_hosts_up(cassandra_session, 3)
        # Then the running service sends it requests again, without a restart: it coordinates some of them
        # (reads of the player, the cache off: each one a request to Cassandra)
        before, sent, coordinated = requests_coordinated(pinned[3]), 0, 0
        while coordinated < 5 and sent < 200:
            assert client.get(f"/players/{player}/sessions").status_code == 200
            sent += 1
            if sent % 10 == 0:
                coordinated = requests_coordinated(pinned[3]) - before - sent // 10
        assert coordinated >= 5, f"node 3 coordinated {coordinated} requests of the service's {sent}"
        # And the writes it missed reach it by hinted handoff (not by read repair: nothing read their rows of
        # the sessions table at quorum): once the other two have no hints left, kill them, and node 3 alone
        # still has every session, both halves
        assert wait_for(lambda: not hint_files(1, 2), HINTS_WITHIN_SECONDS), "hints were not delivered"
    cluster.kill(1, 2)
    on_node_3 = sessions_alone_on(cluster, 3, missed, ALONE_WITHIN_SECONDS)
    assert on_node_3 == {batch[0]["session_id"] for batch in missed}
    record_property("node_3_coordinated", f"{coordinated} of the first {sent} reads")
    record_property("longest_store_while_node_3_down_seconds", round(seconds, 2))


HINTS_WITHIN_SECONDS = 60.0
ALONE_WITHIN_SECONDS = 120.0
READ_ALONE_TIMEOUT_SECONDS = 12.0
"""Past the node's own read timeout (5 s), so that a read it sent to a dead replica comes back as its answer."""
READ_SESSION_ONE = "SELECT session_id, start_ts, end_ts FROM sessions WHERE session_id = %s"


def hint_files(*nodes: int) -> list[Path]:
    return [
        path
        for node in nodes
        for path in (LOCAL_DIR / "cluster" / f"node{node}" / "data" / "hints").glob("*.hints")
    ]


def requests_coordinated(connection) -> int:
    """Requests the node has answered on client connections (its virtual table system_views.clients), this
    query included: each call counts one of its own."""
    rows = connection.session().execute("SELECT request_count FROM system_views.clients", timeout=5)
    return sum(row.request_count for row in rows)


def sessions_alone_on(cluster, node: int, batches, within: float) -> set[str]:
    """The sessions of ``batches`` that ``node`` has complete, read at ONE on a connection of its own (its own
    replica: the others are down). Until the node answers a whole pass, each attempt opens a new connection: the
    node may still send a read to a replica it has not yet seen die (a timeout), and a connection the driver gave
    up on then is not waited for. Fails after ``within`` seconds with the last error."""
    statement = SimpleStatement(READ_SESSION_ONE, consistency_level=ConsistencyLevel.ONE)
    deadline = time.monotonic() + within
    while True:
        connection = cluster.connect_to(node)
        try:
            found = set()
            for batch in batches:
                key = (uuid.UUID(batch[0]["session_id"]),)
                row = connection.session().execute(statement, key, timeout=READ_ALONE_TIMEOUT_SECONDS).one()
                if row is not None and row.start_ts is not None and row.end_ts is not None:
                    found.add(str(row.session_id))
            return found
        except Exception as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"node {node} alone did not answer within {within:.0f} s") from error
        finally:
            connection.close()
        time.sleep(1.0)


def wait_for(check, within: float):
    """Calls ``check`` until it returns something truthy, at most ``within`` seconds; returns the last value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)
