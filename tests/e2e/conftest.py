"""Serves the API with the local gateway in its own process, as `make serve` does (a pool of execution
environments running the real functions), for HTTP tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.callers import PlayerToken, StudioSignature
from tests.conftest import TEST_KEYSPACE

API_KEY = "e2e-test-key"


@dataclass
class ServedApi:
    base_url: str
    process: subprocess.Popen
    log_file: Path

    def client(
        self,
        api_key: str | None = API_KEY,
        *,
        player: str | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 15,
    ) -> httpx.Client:
        """A client of the studio's servers (every request signed), or with ``player`` a game client holding
        that player's token, or with ``auth`` any other proof (or none: ``httpx.Auth()``); it gives up on an
        answer after ``timeout`` seconds."""
        headers = {"x-api-key": api_key} if api_key else {}
        if auth is None:
            auth = PlayerToken(player) if player is not None else StudioSignature()
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, auth=auth)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(extra_env: dict[str, str], log_file: Path | None = None, args: Sequence[str] = ()) -> ServedApi:
    """The gateway in its own process, on the test keyspace; its log goes to ``log_file`` (a temporary file
    when not given); ``args`` are more command-line options (``--max-concurrency 1``)."""
    port = free_port()
    env = {
        **os.environ,
        "PLAYER_SESSIONS_KEYSPACE": TEST_KEYSPACE,
        "PLAYER_SESSIONS_REDIS_URL": f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/15",
        "PLAYER_SESSIONS_CASSANDRA_PORT": os.environ.get("CASSANDRA_PORT", "9042"),
        "PLAYER_SESSIONS_API_KEY": API_KEY,
        "POWERTOOLS_METRICS_DISABLED": "true",
        **extra_env,
    }
    if log_file is None:
        log_file = Path(tempfile.mkstemp(prefix=f"gateway-{port}-", suffix=".log")[1])
    # A file, not a pipe: a pipe nobody reads fills up after some hundred requests (64 KiB of logs), and the
    # gateway then blocks in the middle of a request.
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "player_sessions_local.gateway", "--port", str(port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            pytest.fail(f"the gateway exited: {tail}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return ServedApi(f"http://127.0.0.1:{port}", process, log_file)
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("the gateway did not start listening within 30 s", pytrace=False)


def stop(api: ServedApi) -> None:
    api.process.terminate()
    try:
        api.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        api.process.kill()


@pytest.fixture(scope="session")
def served_api(cassandra_connection) -> Iterator[ServedApi]:
    """The API on the real local Cassandra and Redis (the schema is applied by cassandra_connection)."""
    api = serve({})
    yield api
    stop(api)


@pytest.fixture(scope="session")
def api_without_cassandra() -> Iterator[ServedApi]:
    """The API pointed at a port where no Cassandra listens."""
    api = serve(
        {
            "PLAYER_SESSIONS_CASSANDRA_PORT": str(free_port()),
            "PLAYER_SESSIONS_CASSANDRA_CONNECT_TIMEOUT_SECONDS": "1",
        }
    )
    yield api
    stop(api)
