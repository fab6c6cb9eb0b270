"""Reused Lambda environments: frozen between two invocations (the gateway and every execution environment of
its pool) while Cassandra and Redis restarted, so every connection they hold died unseen. The same
environments serve the next requests, re-open their connections and succeed; no client sees an error."""

from __future__ import annotations

import signal
import time

import pytest

from player_sessions.cassandra_connection import IDLE_PROBE_AFTER_SECONDS
from tests.faults.conftest import new_player_with_sessions, process_tree, signal_tree

pytestmark = pytest.mark.faults


def test_an_environment_frozen_while_cassandra_and_redis_restarted_answers_its_next_requests_without_error(
    fresh_api, local_services, record_property
):
    player, (before, after) = new_player_with_sessions("FE", 90, 20)
    with fresh_api.client() as client:
        # Given a warm environment that has used every route (the player's history is cached)
        assert client.post("/studio/events", json=before).json()["stored"] == 2
        assert len(client.get(f"/players/{player}/sessions").json()["sessions"]) == 1
        fe_before = starts_of(client.get("/countries/starts?hours=3").json(), "FE")
        assert client.get("/countries/FE/starts?hours=3&limit=1").status_code == 200
        assert client.get("/health").json()["status"] == "ok"
        environments = process_tree(fresh_api.process.pid)
        # When it is frozen, with every environment, while Cassandra and Redis are killed and restarted
        signal_tree(environments, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            local_services.kill("cassandra")
            local_services.kill("redis")
            local_services.start()
            time.sleep(max(0.0, IDLE_PROBE_AFTER_SECONDS - (time.monotonic() - frozen_at)))
        finally:
            signal_tree(environments, signal.SIGCONT)
        # Then its very next requests, on every route, succeed with the right answers
        started = time.perf_counter()
        ingest = client.post("/studio/events", json=after)
        first_request_s = time.perf_counter() - started
        history = client.get(f"/players/{player}/sessions")
        counts = client.get("/countries/starts?hours=3")
        listing = client.get("/countries/FE/starts?hours=3&limit=1")
        health = client.get("/health")
    assert ingest.status_code == 200, ingest.text
    assert ingest.json() == {"stored": 2, "discarded": 0, "rejected": 0, "errors": []}
    assert history.status_code == 200, history.text
    assert [s["session_id"] for s in history.json()["sessions"]] == [
        after[0]["session_id"],
        before[0]["session_id"],
    ]
    assert counts.status_code == 200, counts.text
    assert starts_of(counts.json(), "FE") == fe_before + 1
    assert listing.status_code == 200, listing.text
    assert listing.json()["sessions"][0]["session_id"] == after[0]["session_id"]
    assert health.status_code == 200, health.text
    assert health.json()["cassandra"]["status"] == "up"
    # And the environments that served them are the ones frozen: warm, none replaced
    assert sorted(process_tree(fresh_api.process.pid)) == sorted(environments)
    assert len(environments) >= 1 + 2 * 3  # the gateway, and an emulator and a runtime per function at least
    record_property("seconds_first_request_after_thaw", round(first_request_s, 3))


def starts_of(body: dict, country: str) -> int:
    return {c["country"]: c["starts"] for c in body["countries"]}.get(country, 0)
