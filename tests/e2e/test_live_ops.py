"""The live-ops routes over HTTP, through the served gateway, on the real Cassandra and Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e


def session(country: str, started_ago: timedelta, lasted: timedelta | None) -> list[dict]:
    """A session's events: its start, and its end when it ``lasted`` (the end first, as a client may send)."""
    player, sid = uuid.uuid4().hex, str(uuid.uuid4())
    start = datetime.now(UTC) - started_ago
    events = [
        {
            "event": "start",
            "player_id": player,
            "session_id": sid,
            "country": country,
            "ts": start.isoformat(),
        }
    ]
    if lasted is not None:
        events.insert(
            0, {"event": "end", "player_id": player, "session_id": sid, "ts": (start + lasted).isoformat()}
        )
    return events


def online_of(body: dict, country: str) -> int:
    return {c["country"]: c["online"] for c in body["countries"]}.get(country, 0)


def test_open_sessions_are_online_until_their_end_arrives(served_api):
    # Given two sessions opened in a country no other test uses, and one left open 13 hours ago (abandoned)
    opened = session("yo", timedelta(minutes=3), None) + session("yo", timedelta(minutes=1), None)
    abandoned = session("yo", timedelta(hours=13), None)
    with served_api.client() as client:
        assert client.post("/studio/events", json=opened + abandoned).status_code == 200
        # When the sessions online are read, before and after one of the two ends, twice (a re-send)
        before = client.get("/countries/online").json()
        end = {**opened[0], "event": "end", "ts": datetime.now(UTC).isoformat()}
        del end["country"]
        assert client.post("/studio/events", json=[end, end]).status_code == 200
        after = client.get("/countries/online").json()
    # Then the open ones are counted, the abandoned one never, and an end closes its session once
    assert online_of(before, "YO") == 2
    assert online_of(after, "YO") == 1
    assert before["open_session_hours"] == 12
    assert after["total"] == sum(c["online"] for c in after["countries"])
    assert after["countries"] == sorted(after["countries"], key=lambda c: (-c["online"], c["country"]))
    # And the answer says how settled it is
    assert after["late_starts"] >= 0
    assert after["folded_through"] is None or after["folded_through"].endswith("Z")
    assert "partial" not in after


def test_session_lengths_count_and_average_exactly_and_keep_outliers_apart(served_api):
    # Given three sessions of 60, 120 and 241 seconds, and one ended before it started, in a fresh country;
    # and three of 30 milliseconds in another
    sessions = [session("yl", timedelta(minutes=10), timedelta(seconds=s)) for s in (60, 120, 241)]
    backwards = session("yl", timedelta(minutes=10), timedelta(seconds=-30))
    short = [session("ym", timedelta(minutes=10), timedelta(milliseconds=30)) for _ in range(3)]
    with served_api.client() as client:
        for events in [*sessions, backwards, *short]:
            assert client.post("/studio/events", json=events).status_code == 200
        # When the session lengths of the last hour are read
        body = client.get("/countries/session-lengths?hours=1").json()
    # Then count and mean are exact (not rounded), the quantiles within the stated error, the backwards one apart
    yl = next(c for c in body["countries"] if c["country"] == "YL")
    assert (yl["sessions"], yl["outside"]) == (3, 1)
    assert yl["mean_seconds"] == pytest.approx(421 / 3, rel=1e-12)
    assert body["relative_error"] == 0.02
    assert abs(yl["p50_seconds"] - 120) <= 120 * 0.02
    assert abs(yl["p90_seconds"] - 241) <= 241 * 0.02
    assert abs(yl["p99_seconds"] - 241) <= 241 * 0.02
    # And a quantile of short sessions keeps the stated error too (no rounding to the millisecond)
    ym = next(c for c in body["countries"] if c["country"] == "YM")
    assert (ym["sessions"], ym["mean_seconds"]) == (3, 0.03)
    assert all(abs(ym[q] - 0.03) <= 0.03 * 0.02 for q in ("p50_seconds", "p90_seconds", "p99_seconds"))
    assert body["total"]["sessions"] >= 6
    assert body["hours"] == 1 and body["from"].endswith("Z") and body["to"].endswith("Z")
    assert "late_sessions" in body and "folded_through" in body


def test_the_starts_count_says_how_settled_it_is_and_counts_late_starts(served_api):
    # Given a start stamped an hour ago that arrives only now (late), in a fresh country
    with served_api.client() as client:
        before = client.get("/countries/starts?hours=2").json()
        assert client.post("/studio/events", json=session("yq", timedelta(hours=1), None)).status_code == 200
        # When the counts are read
        after = client.get("/countries/starts?hours=2").json()
    # Then the late start is counted among the window's starts, and as late
    assert after["late_starts"] == before["late_starts"] + 1
    assert {c["country"]: c["starts"] for c in after["countries"]}["YQ"] == 1


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/countries/session-lengths?hours=0", "greater than or equal to 1"),
        ("/countries/session-lengths?hours=8761", "less than or equal to 8760"),
        ("/countries/session-lengths?hours=x", "whole number"),
        ("/countries/session-lengths?hours=2.0", "whole number"),
    ],
)
def test_bad_hours_are_400_naming_the_parameter(served_api, path, reason):
    with served_api.client() as client:
        response = client.get(path)
    assert response.status_code == 400
    problem = response.json()["errors"][0]
    assert (problem["parameter"], problem["in"]) == ("hours", "query")
    assert reason in problem["reason"]
