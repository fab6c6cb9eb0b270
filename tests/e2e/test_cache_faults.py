"""The read routes through the served gateway while Redis is frozen or killed: answers stay correct, and once
Redis is back a value cached before a write is never served. How long Redis may hold a request (a read: one
0.1 s timeout per environment, then the breaker skips it; a write's invalidation: one each) is bounded by
count, not timed, in tests/integration/test_redis_cache.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PID_FILE = Path(os.environ.get("LOCAL_DIR", ROOT / ".local")) / "redis" / "redis.pid"
BREAKER_SECONDS = 2.0


def redis_pid() -> int:
    return int(PID_FILE.read_text().strip())


def completed_session(player: str, minutes_ago: int) -> list[dict]:
    now, session_id = datetime.now(UTC), str(uuid.uuid4())
    return [
        {
            "event": "start",
            "player_id": player,
            "session_id": session_id,
            "country": "SE",
            "ts": (now - timedelta(minutes=minutes_ago + 30)).isoformat(),
        },
        {
            "event": "end",
            "player_id": player,
            "session_id": session_id,
            "ts": (now - timedelta(minutes=minutes_ago)).isoformat(),
        },
    ]


def sessions_of(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [session["session_id"] for session in response.json()["sessions"]]


def starts_in_se(response) -> int:
    assert response.status_code == 200, response.text
    return {c["country"]: c["starts"] for c in response.json()["countries"]}.get("SE", 0)


def test_frozen_redis_reads_stay_correct_and_fresh_writes_show_after_it_thaws(served_api, test_settings):
    player = uuid.uuid4().hex
    with served_api.client() as client:
        # Given a player's history and the country counts, read once so that both are cached
        first = completed_session(player, 100)
        assert client.post("/studio/events", json=first).status_code == 200
        assert len(sessions_of(client.get(f"/players/{player}/sessions"))) == 1
        se_before = starts_in_se(client.get("/countries/starts?hours=48"))
        cached_keys = list(
            redis.Redis.from_url(test_settings.redis_url).scan_iter(match=f"*player:{player}*")
        )
        assert cached_keys, "the history was not cached, so this test would prove nothing"
        pid = redis_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            # When Redis is frozen and a second session of the player is ingested
            second = completed_session(player, 50)
            assert client.post("/studio/events", json=second).status_code == 200
            # Then reads answer, with the new session and the new start
            history = client.get(f"/players/{player}/sessions")
            assert sessions_of(history) == [second[0]["session_id"], first[0]["session_id"]]
            assert starts_in_se(client.get("/countries/starts?hours=48")) == se_before + 1
        finally:
            os.kill(pid, signal.SIGCONT)
        # And as soon as Redis answers again, and after the breaker's pause, the history cached before the write
        # is not served
        with redis.Redis.from_url(test_settings.redis_url, socket_timeout=5) as thawed:
            assert thawed.ping()
        assert sessions_of(client.get(f"/players/{player}/sessions")) == [
            second[0]["session_id"],
            first[0]["session_id"],
        ]
        assert starts_in_se(client.get("/countries/starts?hours=48")) == se_before + 1
        time.sleep(BREAKER_SECONDS + 0.5)
        for _ in range(3):
            assert sessions_of(client.get(f"/players/{player}/sessions")) == [
                second[0]["session_id"],
                first[0]["session_id"],
            ]
            assert starts_in_se(client.get("/countries/starts?hours=48")) == se_before + 1


def test_killed_redis_reads_stay_correct_and_the_cache_is_used_again_once_restarted(
    served_api, test_settings
):
    player = uuid.uuid4().hex
    cache_client = redis.Redis.from_url(test_settings.redis_url)
    with served_api.client() as client:
        assert client.post("/studio/events", json=completed_session(player, 80)).status_code == 200
        os.kill(redis_pid(), signal.SIGKILL)
        try:
            # When Redis is gone, a session is ingested and read back
            second = completed_session(player, 20)
            assert client.post("/studio/events", json=second).status_code == 200
            history = client.get(f"/players/{player}/sessions")
            # Then the answer is right
            assert sessions_of(history)[0] == second[0]["session_id"]
            assert len(sessions_of(history)) == 2
        finally:
            subprocess.run(
                ["tools/local_services.sh", "up"], cwd=ROOT, check=True, timeout=300, capture_output=True
            )
        # And once Redis is restarted, answers are cached in it again
        time.sleep(BREAKER_SECONDS + 0.5)
        assert len(sessions_of(client.get(f"/players/{player}/sessions"))) == 2
        assert len(sessions_of(client.get(f"/players/{player}/sessions"))) == 2
        assert any(b"player:" + player.encode() in key for key in cache_client.scan_iter(count=1000))
