"""The driver's ``Cluster`` for the configured mode: a plain local node (its role's login), or Amazon Keyspaces
over TLS with SigV4; the policies every request runs under (LOCAL_QUORUM, timeouts, speculation, retries)."""

from __future__ import annotations

import socket
import ssl
from collections import namedtuple
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.connection import DefaultEndPoint
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    LoadBalancingPolicy,
    RetryPolicy,
    TokenAwarePolicy,
    WhiteListRoundRobinPolicy,
)
from cassandra.query import named_tuple_factory

from player_sessions.errors import ConfigurationError
from player_sessions.settings import DatabaseMode, Settings

if TYPE_CHECKING:
    import boto3

KEYSPACES_PORT = 9142
BULK_PROFILE = "bulk"
"""Execution profile for rollup builds: many statements queued at once, so each may wait its turn longer."""
BULK_TIMEOUT_SECONDS = 20.0
RECONNECT_FIRST_DELAY_SECONDS = 0.05
"""The driver's first attempt to reopen a host's pool comes this soon after the host was marked down; later
attempts back off to RECONNECT_MAX_DELAY_SECONDS apart, and never stop."""
RECONNECT_MAX_DELAY_SECONDS = 1.0
SPECULATIVE_DELAY_SECONDS = 0.3
SPECULATIVE_ATTEMPTS = 2
"""A request unanswered after SPECULATIVE_DELAY_SECONDS is sent to the next coordinator too, up to this many more
times; the first answer wins. On a cluster that just lost a replica, a coordinator keeps waiting for it until
its failure detector convicts it (10 to 20 s); a coordinator that pauses (a long garbage collection, a starved
process) answers nothing at all. Without this, such requests timed out (503) on the three-node cluster
(tests/cluster, docs/faults.md). Keyspaces answers within milliseconds, so there it almost never fires. Only
idempotent statements are sent twice (``Cql.is_idempotent``): every one but the builder's conditional writes."""
# Keyspaces speaks native protocol v4; the local node is held to the same so behaviour cannot drift.
PROTOCOL_VERSION = ProtocolVersion.V4


class TimeoutRetryPolicy(RetryPolicy):  # type: ignore[misc]  # the driver ships no type hints
    """The driver's default policy, except that a read, or an idempotent write, that the coordinator timed out is
    tried once more on the next coordinator. A coordinator whose replica just died keeps asking it until the
    failure detector convicts it, and answers ReadTimeout; the next coordinator, a moment later, reads from the
    live replicas. (The default retries a read only when the replicas answered but the data did not come back,
    and a write never.) A conditional write is not sent again: the driver asks this policy about it too."""

    # The driver passes the query positionally, the rest by the names of the error's fields (consistency,
    # required_responses, received_responses, and data_retrieved or write_type) and retry_num.
    def on_read_timeout(self, query: object, consistency: int, **answer: Any) -> tuple[int, int | None]:  # noqa: ARG002
        return self._next_coordinator_once(consistency, answer["retry_num"])

    def on_write_timeout(self, query: object, consistency: int, **answer: Any) -> tuple[int, int | None]:
        if not getattr(query, "is_idempotent", False):
            return self.RETHROW, None
        return self._next_coordinator_once(consistency, answer["retry_num"])

    def _next_coordinator_once(self, consistency: int, retry_num: int) -> tuple[int, int | None]:
        if retry_num == 0:
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None


@lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type[tuple[Any, ...]] | None:
    try:
        return namedtuple("Row", names)
    except ValueError:  # a name that is no identifier (a function's result): the driver's factory renames it
        return None


def named_rows(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """The driver's ``named_tuple_factory``, except that each column list's row type is made once per
    environment: the driver makes a new one for every page it decodes (about 36 us each, on every read)."""
    row_type = _row_type(tuple(names))
    if row_type is None:
        return named_tuple_factory(names, rows)  # type: ignore[no-any-return]
    return list(map(row_type._make, rows))  # type: ignore[attr-defined]


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


def build_cluster(
    settings: Settings, boto_session: boto3.Session | None = None, coordinators: Sequence[str] = ()
) -> Cluster:
    """A driver ``Cluster`` for the configured mode; nothing is connected until ``Cluster.connect``.

    ``coordinators``, when given, are the only hosts requests are sent to (tests of a cluster that need a
    request coordinated by a given node); the service never sets it.
    """
    balancing: LoadBalancingPolicy = TokenAwarePolicy(
        DCAwareRoundRobinPolicy(
            local_dc=settings.aws_region
            if settings.database_mode is DatabaseMode.KEYSPACES
            else settings.cassandra_datacenter
        )
    )
    if coordinators:
        balancing = WhiteListRoundRobinPolicy(list(coordinators))
    speculation = ConstantSpeculativeExecutionPolicy(SPECULATIVE_DELAY_SECONDS, SPECULATIVE_ATTEMPTS)
    profile = ExecutionProfile(
        load_balancing_policy=balancing,
        retry_policy=TimeoutRetryPolicy(),
        speculative_execution_policy=speculation,
        # Every read and write at LOCAL_QUORUM: an acknowledged write is durable and visible to the next read.
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=settings.cassandra_request_timeout_seconds,
        row_factory=named_rows,
    )
    bulk = ExecutionProfile(
        load_balancing_policy=profile.load_balancing_policy,
        retry_policy=profile.retry_policy,
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=max(BULK_TIMEOUT_SECONDS, settings.cassandra_request_timeout_seconds),
        row_factory=named_rows,
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
        auth_provider=local_credentials(settings),
        **common,
    )


def local_credentials(settings: Settings) -> PlainTextAuthProvider | None:
    """The local Cassandra's login for ``cassandra_username``: each function logs in as a role holding exactly
    its deployed grants (player_sessions.access). Without a username nothing is sent, and a Cassandra that
    requires authentication (the local ones do) refuses the connection."""
    if settings.cassandra_username is None:
        return None
    path = settings.cassandra_password_file
    try:
        password = path.read_text().strip() if path is not None else ""
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the password of Cassandra role {settings.cassandra_username} from {path}: {error}"
            " (the schema tool writes it: make up)"
        ) from error
    if not password:
        raise ConfigurationError(
            f"no password for Cassandra role {settings.cassandra_username}: set PLAYER_SESSIONS_CASSANDRA_PASSWORD_FILE"
        )
    return PlainTextAuthProvider(username=settings.cassandra_username, password=password)
