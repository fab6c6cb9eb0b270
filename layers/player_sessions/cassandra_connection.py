"""Connections to Cassandra: a plain local node, or Amazon Keyspaces over TLS with SigV4.

One ``CassandraConnection`` per process (one per Lambda execution environment): the driver session is opened
on first use and reused by every later invocation. If opening fails (Cassandra down at a cold start) the next
request tries again instead of the environment staying broken; once open, the driver itself reconnects to
hosts that went away.

Connections can also die unseen: a Lambda environment is frozen between invocations, and Cassandra may
restart (or drop idle connections) meanwhile; nothing in the frozen process notices. So the first request
after an idle spell probes the pool, and when the probe finds it dead, waits the few milliseconds the driver
takes to reopen it (``await_reconnection``): the request that found the dead connections still succeeds.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

from cassandra import ConsistencyLevel, DriverException, OperationTimedOut, ProtocolVersion
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import DefaultEndPoint
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import PreparedStatement

from player_sessions.errors import DatabaseUnavailableError
from player_sessions.settings import DatabaseMode, Settings
from player_sessions.work_meter import install_cassandra_meter

if TYPE_CHECKING:
    import boto3

KEYSPACES_PORT = 9142
LOCAL_DATACENTER = "datacenter1"
BULK_PROFILE = "bulk"
"""Execution profile for rollup builds: many statements queued at once, so each may wait its turn longer."""
BULK_TIMEOUT_SECONDS = 20.0
RECONNECT_FIRST_DELAY_SECONDS = 0.05
"""The driver's first attempt to reopen a host's pool comes this soon after the host was marked down; later
attempts back off to RECONNECT_MAX_DELAY_SECONDS apart, and never stop."""
RECONNECT_MAX_DELAY_SECONDS = 1.0
RECONNECT_GRACE_SECONDS = 1.5
"""How long requests wait, per outage, for the driver to reopen a pool before giving up (503). During a real
outage the grace is spent once; later requests fail at once until a pool is open again."""
IDLE_PROBE_AFTER_SECONDS = 5.0
"""A session unused this long (a frozen environment, a quiet spell) is probed before the next request uses it."""
PROBE_TIMEOUT_SECONDS = 0.5
"""The probe looks for dead connections, which fail at once; a slow answer is left for the request to meet."""
PROBE = "SELECT release_version FROM system.local"
_POOL_POLL_SECONDS = 0.01
# Keyspaces speaks native protocol v4; the local node is held to the same so behaviour cannot drift.
PROTOCOL_VERSION = ProtocolVersion.V4


def keyspaces_endpoint(region: str) -> str:
    return f"cassandra.{region}.amazonaws.com"


def keyspaces_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS that verifies the Keyspaces endpoint's certificate and host name against Amazon's root CAs.

    Without ``ca_file`` the system trust store is used; it carries the Amazon Trust Services roots that the
    Keyspaces endpoints chain to (on Lambda and on Debian alike).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def build_cluster(settings: Settings, boto_session: boto3.Session | None = None) -> Cluster:
    """A driver ``Cluster`` for the configured mode; nothing is connected until ``Cluster.connect``."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(
                local_dc=settings.aws_region
                if settings.database_mode is DatabaseMode.KEYSPACES
                else LOCAL_DATACENTER
            )
        ),
        # Every read and write at LOCAL_QUORUM: an acknowledged write is durable and visible to the next read.
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=settings.cassandra_request_timeout_seconds,
    )
    bulk = ExecutionProfile(
        load_balancing_policy=profile.load_balancing_policy,
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=max(BULK_TIMEOUT_SECONDS, settings.cassandra_request_timeout_seconds),
    )
    common = {
        "protocol_version": PROTOCOL_VERSION,
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile, BULK_PROFILE: bulk},
        "connect_timeout": settings.cassandra_connect_timeout_seconds,
        "control_connection_timeout": settings.cassandra_connect_timeout_seconds,
        "reconnection_policy": ExponentialReconnectionPolicy(
            base_delay=RECONNECT_FIRST_DELAY_SECONDS, max_delay=RECONNECT_MAX_DELAY_SECONDS, max_attempts=None
        ),
        # No schema or token metadata refresh storms on a small fleet of short-lived environments.
        "schema_metadata_enabled": False,
        "idle_heartbeat_interval": 10,
        # The driver leaves Nagle's algorithm on, which may hold a small request back until an earlier one is
        # acknowledged; every request here is small and latency-bound.
        "sockopts": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    }
    if settings.database_mode is DatabaseMode.KEYSPACES:
        from cassandra_sigv4.auth import SigV4AuthProvider

        if boto_session is None:
            import boto3

            boto_session = boto3.Session(region_name=settings.aws_region)
        endpoint = keyspaces_endpoint(settings.aws_region)
        return Cluster(
            # An EndPoint, not a host string: the name is resolved when connecting, not when building.
            contact_points=[DefaultEndPoint(endpoint, KEYSPACES_PORT)],
            port=KEYSPACES_PORT,
            ssl_context=keyspaces_ssl_context(settings.keyspaces_ca_file),
            ssl_options={"server_hostname": endpoint},
            auth_provider=SigV4AuthProvider(boto_session),
            **common,
        )
    return Cluster(
        contact_points=list(settings.cassandra_contact_points),
        port=settings.cassandra_port,
        **common,
    )


class CassandraConnection:
    """Opens the driver session once and hands it out; thread-safe."""

    def __init__(
        self, settings: Settings, boto_session: boto3.Session | None = None, *, use_keyspace: bool = True
    ) -> None:
        """``use_keyspace=False`` is for creating the keyspace; every other session works inside it."""
        self._settings = settings
        self._use_keyspace = use_keyspace
        self._boto_session = boto_session
        self._lock = threading.Lock()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._probe: PreparedStatement | None = None
        self._last_used = 0.0
        self._unserved_since: float | None = None
        """monotonic() when a request first found no open pool in the current outage; None once one is open."""

    @property
    def keyspace(self) -> str:
        return self._settings.keyspace

    def session(self) -> Session:
        session = self._session
        if session is None or session.is_shutdown:
            with self._lock:
                if self._session is None or self._session.is_shutdown:
                    self._session = self._open()
                session = self._session
        now = time.monotonic()
        idle, self._last_used = now - self._last_used, now
        if idle >= IDLE_PROBE_AFTER_SECONDS:
            self._probe_pool(session)
        return session

    def await_reconnection(self) -> bool:
        """True once the session has an open pool; waits for one within the outage's grace, else False.

        A step that failed with NoHostAvailable calls this before trying once more: its request may have been
        the one that found the connections dead, and the driver reopens them within milliseconds.
        """
        if self._pool_open():
            self._unserved_since = None
            return True
        with self._lock:
            if self._unserved_since is None:
                self._unserved_since = time.monotonic()
            deadline = self._unserved_since + RECONNECT_GRACE_SECONDS
        while time.monotonic() < deadline:
            time.sleep(_POOL_POLL_SECONDS)
            if self._pool_open():
                self._unserved_since = None
                return True
        return False

    def _pool_open(self) -> bool:
        """A host that is not known to be down has a pool with a live (not closed, not defunct) connection."""
        session = self._session
        if session is None or session.is_shutdown:
            return False
        return any(
            host.is_up is not False and not state["shutdown"] and state["open_count"] > 0
            for host, state in session.get_pool_state().items()
        )

    def _probe_pool(self, session: Session) -> None:
        """Sends the probe; if it finds the connections dead, waits for the driver to reopen them. Any other
        failure is left for the request itself to meet and report."""
        try:
            session.execute(self._probe, timeout=PROBE_TIMEOUT_SECONDS)
        except NoHostAvailable:
            self.await_reconnection()
        except (OperationTimedOut, DriverException, OSError):
            pass

    def _open(self) -> Session:
        cluster = build_cluster(self._settings, self._boto_session)
        try:
            session = cluster.connect(self._settings.keyspace if self._use_keyspace else None)
            # Session.prepare (each statement's first use) waits Session.default_timeout, 10 s, not the profile's
            # request_timeout: with Cassandra frozen, a request was held 10 s per statement. The public setter
            # refuses once execution profiles are in use, hence the attribute.
            session._default_timeout = self._settings.cassandra_request_timeout_seconds
            if self._settings.report_work:
                # Sizing every row costs CPU on every request: only where the work is reported (locally).
                install_cassandra_meter(session)
            self._probe = session.prepare(PROBE)
        except (NoHostAvailable, OperationTimedOut, OSError) as error:
            cluster.shutdown()
            raise DatabaseUnavailableError(f"cannot connect to Cassandra: {error}") from error
        self._cluster = cluster
        self._unserved_since = None
        self._last_used = time.monotonic()
        return session

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
            self._cluster = None
            self._session = None
