"""Connections to Cassandra: a plain local node, or Amazon Keyspaces over TLS with SigV4.

One ``CassandraConnection`` per process (one per Lambda execution environment): the driver session is opened
on first use and reused by every later invocation. If opening fails (Cassandra down at a cold start) the next
request tries again instead of the environment staying broken; once open, the driver itself reconnects to
hosts that went away.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import TYPE_CHECKING

from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import DefaultEndPoint
from cassandra.policies import (
    ConstantReconnectionPolicy,
    DCAwareRoundRobinPolicy,
    TokenAwarePolicy,
)

from player_sessions.errors import DatabaseUnavailableError
from player_sessions.settings import DatabaseMode, Settings

if TYPE_CHECKING:
    import boto3

KEYSPACES_PORT = 9142
LOCAL_DATACENTER = "datacenter1"
BULK_PROFILE = "bulk"
"""Execution profile for rollup builds: many statements queued at once, so each may wait its turn longer."""
BULK_TIMEOUT_SECONDS = 20.0
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
                local_dc=settings.aws_region if settings.database_mode is DatabaseMode.KEYSPACES
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
        "reconnection_policy": ConstantReconnectionPolicy(delay=1.0, max_attempts=None),
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

    @property
    def keyspace(self) -> str:
        return self._settings.keyspace

    def session(self) -> Session:
        session = self._session
        if session is not None and not session.is_shutdown:
            return session
        with self._lock:
            if self._session is None or self._session.is_shutdown:
                self._session = self._open()
            return self._session

    def _open(self) -> Session:
        cluster = build_cluster(self._settings, self._boto_session)
        try:
            session = cluster.connect(self._settings.keyspace if self._use_keyspace else None)
        except (NoHostAvailable, OSError) as error:
            cluster.shutdown()
            raise DatabaseUnavailableError(f"cannot connect to Cassandra: {error}") from error
        self._cluster = cluster
        return session

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
            self._cluster = None
            self._session = None
