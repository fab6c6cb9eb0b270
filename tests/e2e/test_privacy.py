"""A player's data on request, through the served gateway: export, erase, export again, the receipt, and what
the other routes show afterwards. Administration signs the privacy routes; the studio may not call them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from player_sessions_local.local_auth import Signer
from tests.callers import StudioSignature

pytestmark = pytest.mark.e2e


def iso(moment: datetime) -> str:
    return moment.isoformat()


def sessions_of(player: str, country: str, now: datetime, count: int) -> tuple[list[str], list[dict]]:
    sessions = [str(uuid.uuid4()) for _ in range(count)]
    events = []
    for index, sid in enumerate(sessions):
        start = now - timedelta(minutes=30 + 10 * index)
        events += [
            {"event": "start", "player_id": player, "session_id": sid, "country": country, "ts": iso(start)},
            {"event": "end", "player_id": player, "session_id": sid, "ts": iso(start + timedelta(minutes=5))},
        ]
    return sessions, events


def test_export_erase_export_again_and_the_receipt(served_api):
    # Given a player with three completed sessions in a country no other test uses, and another player there
    now = datetime.now(UTC)
    player, other = uuid.uuid4().hex, uuid.uuid4().hex
    mine, events = sessions_of(player, "XE", now, 3)
    theirs, other_events = sessions_of(other, "XE", now, 1)
    with (
        served_api.client() as studio,
        served_api.client(auth=StudioSignature(Signer.ADMIN)) as admin,
    ):
        for first in range(0, len(events), 10):
            assert studio.post("/studio/events", json=events[first : first + 10]).status_code == 200
        assert studio.post("/studio/events", json=other_events).status_code == 200
        counts_before = studio.get("/countries/starts?hours=3").json()
        listed_before = studio.get("/countries/XE/starts?hours=3").json()
        assert studio.get(f"/players/{player}/sessions").json()["sessions"]  # cached now, to be forgotten

        # When administration exports the player's data
        export = admin.get(f"/players/{player}/export")
        # Then every session is there, with its events, their retention dates and completion
        assert export.status_code == 200
        body = export.json()
        assert body["player_id"] == player and body["erased_at"] is None and body["next_cursor"] is None
        assert sorted(s["session_id"] for s in body["sessions"]) == sorted(mine)
        for session in body["sessions"]:
            assert session["completed"] is True
            assert session["session"]["country"] == "XE"
            assert sorted(e["event"] for e in session["events"]) == ["end", "start"]
            for event in session["events"]:
                stamped = datetime.fromisoformat(event["ts"])
                assert datetime.fromisoformat(event["retained_until"]) == stamped + timedelta(days=365)
            assert len(session["arrivals"]) == 1

        # When the studio asks to erase it, which only administration may
        assert studio.post(f"/players/{player}/erasure").status_code == 403
        erased = admin.post(f"/players/{player}/erasure")
        # Then the answer is 202 with a finished receipt, which GET /erasures/{id} returns too
        assert erased.status_code == 202, erased.text
        receipt = erased.json()
        assert receipt["status"] == "finished"
        assert receipt["stores"]["cassandra"]["deleted_rows"]["sessions"] == 3
        assert receipt["stores"]["cassandra"]["deleted_rows"]["completed_sessions_by_player"] == 3
        assert receipt["stores"]["cassandra"]["player_id_removed"]["session_starts"] == 3
        assert receipt["stores"]["cache"]["deleted_keys"] >= 1
        assert player not in erased.text
        finished = datetime.fromisoformat(receipt["finished_at"])
        assert datetime.fromisoformat(receipt["physical_removal_due"]) == finished + timedelta(days=10)
        fetched = admin.get(f"/erasures/{receipt['erasure_id']}")
        assert fetched.status_code == 200 and fetched.json() == receipt
        assert admin.get(f"/erasures/{uuid.uuid4()}").status_code == 404

        # And the export, the history and the country's listing no longer show the player
        again = admin.get(f"/players/{player}/export").json()
        assert again["sessions"] == [] and again["erased_at"] == receipt["asked_at"]
        assert studio.get(f"/players/{player}/sessions").json()["sessions"] == []
        listed_after = studio.get("/countries/XE/starts?hours=3").json()
        assert [s["session_id"] for s in listed_after["sessions"]] == theirs
        assert {s["session_id"] for s in listed_before["sessions"]} == set(mine) | set(theirs)
        # And the counts keep the erased player's starts (an aggregate, without the player)
        counts_after = studio.get("/countries/starts?hours=3").json()
        xe = {c["country"]: c["starts"] for c in counts_after["countries"]}["XE"]
        assert xe == {c["country"]: c["starts"] for c in counts_before["countries"]}["XE"] == 4

        # When the player's old batch is replayed, and a new session is sent
        replay = studio.post("/studio/events", json=events[:10])
        new_sid = str(uuid.uuid4())
        later = datetime.now(UTC)
        fresh = studio.post(
            "/studio/events",
            json=[
                {
                    "event": "start",
                    "player_id": player,
                    "session_id": new_sid,
                    "country": "XE",
                    "ts": iso(later),
                },
                {
                    "event": "end",
                    "player_id": player,
                    "session_id": new_sid,
                    "ts": iso(later + timedelta(seconds=1)),
                },
            ],
        )
        # Then the replay is discarded, saying why, and the new session is stored
        assert replay.status_code == 200
        assert replay.json()["stored"] == 0 and replay.json()["discarded"] == 6
        assert all("erased" in e["reason"] and e["field"] == "player_id" for e in replay.json()["errors"])
        assert fresh.json()["stored"] == 2
        history = studio.get(f"/players/{player}/sessions").json()["sessions"]
        assert [s["session_id"] for s in history] == [new_sid]
        assert studio.get("/countries/starts?hours=3").json()["countries"]  # still answers
        # And erasing again is harmless: a receipt of its own, removing the new session
        second = admin.post(f"/players/{player}/erasure").json()
        assert second["erasure_id"] != receipt["erasure_id"] and second["status"] == "finished"
        assert second["stores"]["cassandra"]["deleted_rows"]["sessions"] == 1
        third = admin.post(f"/players/{player}/erasure").json()
        assert third["stores"]["cassandra"]["deleted_rows"].get("sessions", 0) == 0
        assert admin.get(f"/players/{player}/export").json()["sessions"] == []


def test_export_pages_through_a_players_sessions(served_api):
    # Given a player with five sessions
    player = uuid.uuid4().hex
    sessions, events = sessions_of(player, "XP", datetime.now(UTC), 5)
    with served_api.client() as studio, served_api.client(auth=StudioSignature(Signer.ADMIN)) as admin:
        assert studio.post("/studio/events", json=events).status_code == 200
        # When the export is read two sessions at a time
        seen, cursor, cursors = [], None, []
        while True:
            query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = admin.get(f"/players/{player}/export?{query}").json()
            seen += [s["session_id"] for s in page["sessions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
        # Then every session comes once, over three pages
        assert sorted(seen) == sorted(sessions) and len(seen) == 5 and len(cursors) == 2
        # And a cursor is only one this player's export returned: not made up, altered, or another player's
        first = cursors[0]
        last_listed = first.split(".")[0]
        assert last_listed == seen[1]
        altered = first[:-2] + ("AA" if not first.endswith("AA") else "BB")
        for player_asked, bad_cursor in (
            (player, "nope"),
            (player, last_listed),
            (player, str(uuid.uuid4()) + first[36:]),
            (player, altered),
            (uuid.uuid4().hex, first),
        ):
            bad = admin.get(f"/players/{player_asked}/export?cursor={bad_cursor}")
            assert bad.status_code == 400, bad_cursor
            assert bad.json()["errors"] == [
                {
                    "parameter": "cursor",
                    "in": "query",
                    "reason": "not a cursor this API returned for this player's export",
                }
            ]
