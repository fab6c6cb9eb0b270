"""The cluster tier: the service on three Cassandra nodes (127.0.0.1, .2 and .3), the keyspace replicated three
times, every request at LOCAL_QUORUM. `make test-cluster` starts the cluster for these tests
(tools/test_services.sh with TEST_NODES=3: .local/test-cluster/, ports of its own) and exports its settings,
which the shared fixtures of tests/conftest.py read.

Every test that kills or starts a node does it through ``ClusterNodes``, whose fixture leaves all three nodes
running and seen up by the suite's driver session afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cassandra.cluster import Session

from player_sessions.cassandra_connection import PROBE, CassandraConnection
from player_sessions.settings import ReplicationStrategy, Settings
from tests.e2e.conftest import ServedApi, serve, stop
from tests.faults.conftest import _alive

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = Path(os.environ.get("LOCAL_DIR", ROOT / ".local/test-cluster"))
NODES = (1, 2, 3)
START_TIMEOUT_SECONDS = 240
UP_TIMEOUT_SECONDS = 90
HOW_TO_RUN = "run the cluster tier with `make test-cluster`"
KEYSPACE_PREFIX = "cluster_"


def address(node: int) -> str:
    return f"127.0.0.{node}"


@pytest.fixture(scope="session")
def test_settings(test_settings: Settings) -> Settings:
    """The shared test settings (tests/conftest.py), on a keyspace of this run's own: a keyspace dropped and
    created again under one name while nodes come and go is how a node ended up not knowing a table."""
    return test_settings.model_copy(
        update={"keyspace": f"{KEYSPACE_PREFIX}{datetime.now(UTC):%Y%m%d_%H%M%S}"}
    )


def serve_on(settings: Settings, log_file: Path, **environment: str) -> ServedApi:
    """The API served on the run's keyspace, with more of the service's variables."""
    return serve({"PLAYER_SESSIONS_KEYSPACE": settings.keyspace, **environment}, log_file)


@pytest.fixture
def api(test_settings: Settings, tmp_path) -> Iterator[ServedApi]:
    """The API as deployed, its cache included."""
    served = serve_on(test_settings, tmp_path / "gateway.log")
    yield served
    stop(served)


@pytest.fixture
def uncached_api(test_settings: Settings, cassandra_connection, tmp_path) -> Iterator[ServedApi]:
    """The API without its cache: every read is a request to Cassandra."""
    api = serve_on(test_settings, tmp_path / "gateway.log", PLAYER_SESSIONS_CACHE_ENABLED="false")
    yield api
    stop(api)


FIRST_AGREEMENT_SECONDS = 180


@pytest.fixture(scope="session", autouse=True)
def _on_a_three_node_cluster(test_settings: Settings) -> None:
    """These tests mean nothing on one node: refuse to run anywhere else. Then drop the keyspaces of earlier
    runs (each run has its own), so that they do not pile up."""
    if (
        test_settings.replication_factor != 3
        or test_settings.replication_strategy is not ReplicationStrategy.NETWORK_TOPOLOGY
        or len(test_settings.cassandra_contact_points) != 3
    ):
        pytest.fail(f"the cluster tier needs the three-node cluster's settings ({HOW_TO_RUN})", pytrace=False)
    admin = CassandraConnection(test_settings, use_keyspace=False)
    try:
        session = admin.session()
        wait_until_hosts_up(session, len(NODES))
        # A cluster's first boot: the nodes may still be exchanging the schema (the roles set-up changed it)
        # when all three answer; a keyspace created before they agree may wait past apply_schema's limit.
        if not session.cluster.control_connection.wait_for_schema_agreement(
            wait_time=FIRST_AGREEMENT_SECONDS
        ):
            pytest.fail(
                f"the three nodes disagree on the schema after {FIRST_AGREEMENT_SECONDS} s", pytrace=False
            )
        for row in session.execute("SELECT keyspace_name FROM system_schema.keyspaces", timeout=10):
            if row.keyspace_name.startswith(KEYSPACE_PREFIX) and row.keyspace_name != test_settings.keyspace:
                session.execute(f"DROP KEYSPACE IF EXISTS {row.keyspace_name}", timeout=120)
    finally:
        admin.close()


class ClusterNodes:
    """The cluster's Cassandra processes, by the pids tools/local_services.sh recorded."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def connect_to(self, node: int) -> CassandraConnection:
        """A connection that sends every request to ``node`` alone (it coordinates them)."""
        return CassandraConnection(self._settings, coordinators=(address(node),))

    @staticmethod
    def pid_file(node: int) -> Path:
        return LOCAL_DIR / "cluster" / f"node{node}" / "cassandra.pid"

    def pid(self, node: int) -> int:
        return int(self.pid_file(node).read_text().strip())

    def running(self, node: int) -> bool:
        try:
            return _alive(self.pid(node))
        except (FileNotFoundError, ValueError):
            return False

    def kill(self, *nodes: int) -> None:
        """SIGKILL (no shutdown, no flush: a crashed machine), then waits until each process is gone."""
        pids = {node: self.pid(node) for node in nodes}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        for node, pid in pids.items():
            while _alive(pid):
                if time.monotonic() > deadline:
                    raise AssertionError(f"node {node} (pid {pid}) still running 30 s after SIGKILL")
                time.sleep(0.05)

    def pause(self, node: int, seconds: float) -> None:
        """SIGSTOP, then SIGCONT ``seconds`` later: the process holds its connections and answers nothing."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    def start(self, node: int) -> float:
        """`tools/local_services.sh start-node N`; returns the seconds until the node answered CQL. A start that
        fails is tried once more, with a warning that carries the first one's output (seen once in many runs:
        the script reported the node gone while its log showed it answering)."""
        started = time.monotonic()
        for attempt in (1, 2):
            result = subprocess.run(
                ["tools/local_services.sh", "start-node", str(node)],
                check=False,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_SECONDS,
                env={**os.environ, "NODES": str(len(NODES))},
            )
            if result.returncode == 0:
                break
            failure = f"start-node {node} failed:\n{result.stderr[:600]}\n...\n{result.stderr[-600:]}"
            assert attempt == 1, failure
            warnings.warn(failure, stacklevel=2)
        return time.monotonic() - started

    def ensure_running(self, session: Session) -> None:
        """Starts every node that is not running, then waits until the session sees all three up."""
        for node in NODES:
            if not self.running(node):
                self.start(node)
        wait_until_hosts_up(session, len(NODES))


def hosts_up(session: Session) -> set[str]:
    return {host.address for host in session.cluster.metadata.all_hosts() if host.is_up}


def wait_until_hosts_up(session: Session, count: int, timeout: float = UP_TIMEOUT_SECONDS) -> float:
    """Waits until the driver session sees ``count`` hosts up and one answers; returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            if len(hosts_up(session)) >= count:
                session.execute(PROBE, timeout=5).one()
                return time.monotonic() - started
        except Exception:
            if time.monotonic() - started > timeout:
                raise
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{sorted(hosts_up(session))} up after {timeout} s; {count} expected")
        time.sleep(0.2)


@pytest.fixture
def cluster(cassandra_session: Session, test_settings: Settings) -> Iterator[ClusterNodes]:
    """The nodes to break; afterwards all three run again and the suite's session sees them up."""
    nodes = ClusterNodes(test_settings)
    nodes.ensure_running(cassandra_session)
    try:
        yield nodes
    finally:
        nodes.ensure_running(cassandra_session)


@pytest.fixture
def pinned(cluster: ClusterNodes) -> Iterator[dict[int, CassandraConnection]]:
    """One connection per node that sends every request to that node alone (it coordinates them)."""
    connections = {node: cluster.connect_to(node) for node in NODES}
    yield connections
    for connection in connections.values():
        connection.close()
