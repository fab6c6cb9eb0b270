"""The invoke command prints the function's response, and only that, on stdout (logs go to stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_KEYSPACE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("function", "fixture"),
    [("player_data", "player_data_erasure"), ("player_sessions", "health")],
)
def test_stdout_holds_only_the_response(function, fixture):
    # When a fixture is invoked (the erasure's logger is made by the command's own imports)
    done = subprocess.run(
        [sys.executable, "-m", "player_sessions_local.invoke", function, f"events/{fixture}.json"],
        cwd=ROOT,
        env={
            **os.environ,
            "PLAYER_SESSIONS_KEYSPACE": TEST_KEYSPACE,
            "PLAYER_SESSIONS_REDIS_URL": f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/15",
            "PLAYER_SESSIONS_CASSANDRA_PORT": os.environ.get("CASSANDRA_PORT", "9042"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then stdout is the function's response alone, as JSON, and its logs are on stderr
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["statusCode"] in {200, 202}
    assert "statusCode" not in done.stderr
