"""Fault tests freeze, kill and restart the local Cassandra (and Redis) that the whole suite shares.

Every test that touches a process does it through ``LocalServices``, whose fixture always leaves both services
running and answering CQL again (SIGCONT, `tools/local_services.sh up`, a query that succeeds), so the tests
after these still find the services they expect. Pid files are read from $LOCAL_DIR, as
tools/local_services.sh writes them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from player_sessions.cassandra_connection import PROBE, CassandraConnection
from player_sessions.settings import Settings
from tests.e2e.conftest import API_KEY, ServedApi, serve, stop
from tests.sockets import port_open

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = Path(os.environ.get("LOCAL_DIR", ROOT / ".local"))
RESTART_TIMEOUT_SECONDS = 180
CQL_READY_TIMEOUT_SECONDS = 60
PID_FILES = {"cassandra": "cassandra/cassandra.pid", "redis": "redis/redis.pid"}

__all__ = [
    "API_KEY",
    "LocalServices",
    "ServedApi",
    "completed_session",
    "process_tree",
    "signal_tree",
    "wait_until_session_answers",
]


class LocalServices:
    """The local Cassandra and Redis processes, by the pids tools/local_services.sh recorded."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @staticmethod
    def pid(service: str) -> int:
        return int((LOCAL_DIR / PID_FILES[service]).read_text().strip())

    def freeze(self, service: str) -> None:
        os.kill(self.pid(service), signal.SIGSTOP)

    def thaw(self, service: str) -> None:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.kill(self.pid(service), signal.SIGCONT)

    def kill(self, service: str) -> None:
        """SIGKILL, then waits until the process is gone. tools/local_services.sh takes a pid that `kill -0`
        still reaches for a live process, and a killed one lingers as a zombie until its parent reaps it."""
        pid = self.pid(service)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} (pid {pid}) still running 30 s after SIGKILL")
            time.sleep(0.05)
        reaped_by = time.monotonic() + 10
        while _exists(pid) and time.monotonic() < reaped_by:
            time.sleep(0.05)
        if _exists(pid):  # a zombie nobody reaps: the pid file names a dead process, so `up` may start anew
            (LOCAL_DIR / PID_FILES[service]).unlink()

    def start(self) -> float:
        """`tools/local_services.sh up` (what `make up` runs), then waits until Cassandra answers CQL.
        Returns the seconds taken."""
        started = time.monotonic()
        result = subprocess.run(
            ["tools/local_services.sh", "up"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RESTART_TIMEOUT_SECONDS,
        )
        assert result.returncode == 0, f"tools/local_services.sh up failed:\n{result.stderr[:1500]}"
        self.wait_until_cql_answers()
        return time.monotonic() - started

    def wait_until_cql_answers(self) -> None:
        deadline = time.monotonic() + CQL_READY_TIMEOUT_SECONDS
        while True:
            connection = CassandraConnection(self._settings, use_keyspace=False)
            try:
                connection.session().execute(PROBE).one()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
            finally:
                connection.close()

    def ensure_running(self) -> None:
        """SIGCONT both, start whatever does not listen, and wait until Cassandra answers CQL."""
        self.thaw("cassandra")
        self.thaw("redis")
        if port_open(self._settings.cassandra_port) and port_open(_redis_port(self._settings)):
            self.wait_until_cql_answers()
        else:
            self.start()


def _alive(pid: int) -> bool:
    """Running or stopped, not gone and not a zombie."""
    try:
        with Path(f"/proc/{pid}/stat").open() as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _exists(pid: int) -> bool:
    """Any process with this pid, zombies included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _redis_port(settings: Settings) -> int:
    return int(settings.redis_url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def local_services(test_settings, cassandra_session) -> Iterator[LocalServices]:
    """The processes to break; afterwards both run again and the suite's own session answers."""
    services = LocalServices(test_settings)
    try:
        yield services
    finally:
        services.ensure_running()
        wait_until_session_answers(cassandra_session)


def wait_until_session_answers(session) -> None:
    """The suite-wide driver session reconnects by itself; later tests need it to have done so."""
    deadline = time.monotonic() + CQL_READY_TIMEOUT_SECONDS
    while True:
        try:
            session.execute(PROBE).one()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it: a gateway and its execution environments (emulators, runtimes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def signal_tree(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@pytest.fixture
def fresh_api(cassandra_connection, tmp_path) -> Iterator[ServedApi]:
    """A gateway of the test's own, with its own pool: fresh execution environments, free to be frozen."""
    api = serve({}, tmp_path / "gateway.log")
    try:
        yield api
    finally:
        signal_tree(process_tree(api.process.pid), signal.SIGCONT)
        stop(api)


@pytest.fixture(scope="session")
def hostile_api(cassandra_connection, tmp_path_factory) -> Iterator[ServedApi]:
    api = serve({}, tmp_path_factory.mktemp("hostile") / "gateway.log")
    yield api
    stop(api)


def new_player_with_sessions(country: str, *minutes_ago: int) -> tuple[str, list[list[dict]]]:
    """A new player and, for each of ``minutes_ago``, a completed session of theirs that ended then."""
    player = uuid.uuid4().hex
    return player, [completed_session(player, country, minutes) for minutes in minutes_ago]


def completed_session(player: str, country: str, minutes_ago: int = 30) -> list[dict]:
    """A start and its end, both a little in the past."""
    now, session_id = datetime.now(UTC), str(uuid.uuid4())
    return [
        {
            "event": "start",
            "player_id": player,
            "session_id": session_id,
            "country": country,
            "ts": (now - timedelta(minutes=minutes_ago + 10)).isoformat(),
        },
        {
            "event": "end",
            "player_id": player,
            "session_id": session_id,
            "ts": (now - timedelta(minutes=minutes_ago)).isoformat(),
        },
    ]
