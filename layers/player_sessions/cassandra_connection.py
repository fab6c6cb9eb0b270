"""Connections to Cassandra: a plain local node, or Amazon Keyspaces over TLS with SigV4.

One ``CassandraConnection`` per process (one per Lambda execution environment): the driver session is opened
on first use and reused by every later invocation. If opening fails (Cassandra down at a cold start) the next
request tries again instead of the environment staying broken; once open, the driver itself reconnects to
hosts that went away.

Connections can also die unseen: a Lambda environment is frozen between invocations, and Cassandra may
restart (or drop idle connections) meanwhile; nothing in the frozen process notices. So the first request
after an idle spell probes the pool, and when the probe finds it dead, waits the few milliseconds the driver
takes to reopen it (``await_reconnection``): the request that found the dead connections still succeeds.

A connection can also go silent without closing (a half-open connection: a NAT or firewall dropped its state,
the peer vanished without a FIN): requests on it time out, and the driver's heartbeat, sent only on a
connection idle for 10 s, never fires while requests keep coming. So every request that times out has its host
probed on the same connection; a probe that gets no answer either condemns the host's connections, as a failed
heartbeat would, and the driver opens new ones (``_watch_for_silence``). The request that met the silence gets
its 503 within the request timeout; the next ones are served over the new connection.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cassandra import ConsistencyLevel, DriverException, OperationTimedOut, ProtocolVersion
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException, DefaultEndPoint
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    LoadBalancingPolicy,
    RetryPolicy,
    TokenAwarePolicy,
    WhiteListRoundRobinPolicy,
)
from cassandra.query import PreparedStatement

from player_sessions import keyspaces_rules
from player_sessions.errors import ConfigurationError, DatabaseUnavailableError
from player_sessions.settings import DatabaseMode, Settings
from player_sessions.work_meter import install_cassandra_meter

if TYPE_CHECKING:
    import boto3
    from cassandra.pool import Host

_log = logging.getLogger(__name__)

KEYSPACES_PORT = 9142
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
SILENCE_PROBE_TIMEOUT_SECONDS = 1.0
"""The probe sent after a request timed out waits longer than the idle probe: the connection may be busy rather
than silent (a bulk fold queues hundreds of requests on it), and nothing waits for this probe's answer."""
SPECULATIVE_DELAY_SECONDS = 0.3
SPECULATIVE_ATTEMPTS = 2
"""A read unanswered after SPECULATIVE_DELAY_SECONDS is sent to the next coordinator too, up to this many more
times; the first answer wins. On a cluster that just lost a replica, a coordinator keeps waiting for it until
its failure detector convicts it (10 to 20 s): without this, such reads timed out (503) on the three-node
cluster (tests/cluster, docs/faults.md). Keyspaces answers within milliseconds, so there it almost never fires.
Only reads are marked idempotent (``CassandraConnection.prepare``), so only reads are sent twice."""
_POOL_POLL_SECONDS = 0.01
# Keyspaces speaks native protocol v4; the local node is held to the same so behaviour cannot drift.
PROTOCOL_VERSION = ProtocolVersion.V4


class ReadTimeoutRetryPolicy(RetryPolicy):  # type: ignore[misc]  # the driver ships no type hints
    """The driver's default policy, except that a read the coordinator timed out is tried once more on the next
    coordinator. A coordinator whose replica just died keeps asking it until the failure detector convicts it,
    and answers ReadTimeout; the next coordinator, a moment later, reads from the live replicas. (The default
    retries only when the replicas answered but the data did not come back.) Reads are idempotent."""

    def on_read_timeout(  # noqa: PLR0917  the driver calls it with these six, positionally
        self,
        query: object,  # noqa: ARG002
        consistency: int,
        required_responses: int,  # noqa: ARG002
        received_responses: int,  # noqa: ARG002
        data_retrieved: bool,  # noqa: ARG002
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num == 0:
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None


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
        retry_policy=ReadTimeoutRetryPolicy(),
        speculative_execution_policy=speculation,
        # Every read and write at LOCAL_QUORUM: an acknowledged write is durable and visible to the next read.
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=settings.cassandra_request_timeout_seconds,
    )
    bulk = ExecutionProfile(
        load_balancing_policy=profile.load_balancing_policy,
        retry_policy=profile.retry_policy,
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


class CassandraConnection:
    """Opens the driver session once and hands it out; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        boto_session: boto3.Session | None = None,
        *,
        use_keyspace: bool = True,
        coordinators: Sequence[str] = (),
    ) -> None:
        """``use_keyspace=False`` is for creating the keyspace; every other session works inside it.
        ``coordinators``: see ``build_cluster``."""
        self._settings = settings
        self._coordinators = tuple(coordinators)
        self._use_keyspace = use_keyspace
        self._boto_session = boto_session
        self._lock = threading.Lock()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._probe: PreparedStatement | None = None
        self._last_used = 0.0
        self._unserved_since: float | None = None
        """monotonic() when a request first found no open pool in the current outage; None once one is open."""
        self._probing: set[Host] = set()
        """Hosts whose connection is being probed after a request to them timed out."""
        self._probing_lock = threading.Lock()

    @property
    def keyspace(self) -> str:
        return self._settings.keyspace

    def prepare(self, cql: str) -> PreparedStatement:
        """The statement, prepared; a read is marked idempotent, so that a slow one may be sent to another
        coordinator as well (SPECULATIVE_DELAY_SECONDS). Writes never are: some are not (IF NOT EXISTS).
        In local mode its text is first held to Keyspaces' rules (player_sessions.keyspaces_rules)."""
        local = self._settings.database_mode is DatabaseMode.LOCAL
        if local:
            keyspaces_rules.check_cql(cql)
        statement = self.session().prepare(cql)
        if local:
            keyspaces_rules.remember(statement)
        statement.is_idempotent = cql.lstrip().upper().startswith("SELECT")
        return statement

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
        """Sends the probe; if it finds the connections dead (closed, or silent past the probe's timeout), waits
        for the driver to reopen them. Any other failure is left for the request itself to meet and report."""
        try:
            session.execute(self._probe, timeout=PROBE_TIMEOUT_SECONDS)
        except NoHostAvailable:
            self.await_reconnection()
        except OperationTimedOut as error:
            if error.last_host is not None:
                self._condemn(session, error.last_host)
                self.await_reconnection()
        except (DriverException, OSError):
            pass

    def _watch_for_silence(self, future: ResponseFuture) -> None:
        """Request-init listener: a request that times out has its host probed (the probe's own time-outs are
        handled where it is sent)."""
        if getattr(future.query, "prepared_statement", None) is not self._probe:
            future.add_errback(self._on_request_error, future.session)

    def _on_request_error(self, error: BaseException, session: Session) -> None:
        if isinstance(error, OperationTimedOut) and error.last_host is not None:
            # Off the driver's event loop: the probe is sent from the driver's executor.
            session.cluster.executor.submit(self._probe_host, session, error.last_host)

    def _probe_host(self, session: Session, host: Host) -> None:
        """One probe at a time per host, on the connection the timed-out request used; silence condemns it."""
        with self._probing_lock:
            if host in self._probing or session.is_shutdown:
                return
            self._probing.add(host)

        def answered(_: object) -> None:
            self._probing.discard(host)

        def failed(error: BaseException) -> None:
            self._probing.discard(host)
            if isinstance(error, OperationTimedOut):
                session.cluster.executor.submit(self._condemn, session, host)

        try:
            future = session.execute_async(self._probe, timeout=SILENCE_PROBE_TIMEOUT_SECONDS, host=host)
        except Exception:
            self._probing.discard(host)
            return
        future.add_callbacks(answered, failed)

    def _condemn(self, session: Session, host: Host) -> None:
        """Gives up the host's connections as a failed heartbeat does: defunct, and the pool shut down on error,
        so the driver marks the host down and reopens it (RECONNECT_FIRST_DELAY_SECONDS later)."""
        # The driver offers no public way to close a pool's connections.
        pool = session._pools.get(host)
        if pool is None or pool.is_shutdown:
            return
        pool.shutdown_on_error = True
        reason = ConnectionException(
            "a request and a probe got no answer: connection presumed half-open", endpoint=host.endpoint
        )
        _log.warning("closing the connections to %s: %s", host.endpoint, reason)
        for connection in pool.get_connections():
            connection.defunct(reason)
            pool.return_connection(connection, stream_was_orphaned=True)

    def _open(self) -> Session:
        cluster = build_cluster(self._settings, self._boto_session, self._coordinators)
        try:
            session = cluster.connect(self._settings.keyspace if self._use_keyspace else None)
            # Session.prepare (each statement's first use) waits Session.default_timeout, 10 s, not the profile's
            # request_timeout: with Cassandra frozen, a request was held 10 s per statement. The public setter
            # refuses once execution profiles are in use, hence the attribute.
            session._default_timeout = self._settings.cassandra_request_timeout_seconds
            if self._settings.database_mode is DatabaseMode.LOCAL:
                # What Keyspaces would refuse fails here too, before it is sent.
                keyspaces_rules.install(session)
            if self._settings.report_work:
                # Sizing every row costs CPU on every request: only where the work is reported (locally).
                install_cassandra_meter(session)
            self._probe = session.prepare(PROBE)
            session.add_request_init_listener(self._watch_for_silence)
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
