"""The connection to Cassandra (a plain local node, or Amazon Keyspaces: player_sessions.cassandra_cluster).

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
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cassandra import DriverException, OperationTimedOut
from cassandra.cluster import Cluster, NoHostAvailable, ResponseFuture, Session
from cassandra.connection import ConnectionException
from cassandra.query import PreparedStatement

from player_sessions import keyspaces_rules
from player_sessions.cassandra_cluster import BULK_PROFILE, build_cluster
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.settings import DatabaseMode, Settings

if TYPE_CHECKING:
    import boto3
    from cassandra.pool import Host

_log = logging.getLogger(__name__)

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
_POOL_POLL_SECONDS = 0.01

__all__ = ["BULK_PROFILE", "CassandraConnection", "build_cluster", "on_new_session"]

_VALUE_IN_WARNING = re.compile(
    r"'(?:[^']|'')*'|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b|\b0x[0-9a-fA-F]*"
)


class _ServerWarningsWithoutValues(logging.Filter):
    """Cassandra's warnings about a request quote its query with the values in it (a tombstone warning reads
    ``... WHERE player_id = 'p' ...``) and the driver logs each one whole (``Server warning: ...``). The functions'
    logs carry no player id (README, privacy): each text, string, UUID and blob value becomes ``?``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple) and str(record.msg).startswith("Server warning"):
            record.args = tuple(_VALUE_IN_WARNING.sub("?", str(arg)) for arg in record.args)
        return True


logging.getLogger("cassandra.protocol").addFilter(_ServerWarningsWithoutValues())

SessionHook = Callable[[Session], object]
_session_hooks: list[SessionHook] = []


def on_new_session(hook: SessionHook) -> None:
    """Hands every session opened from now on to ``hook`` before its first request. The service registers
    none; local tooling observes requests through it (player_sessions_local.work measures their work)."""
    if hook not in _session_hooks:
        _session_hooks.append(hook)


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

    def prepare(self, cql: str, *, idempotent: bool = False) -> PreparedStatement:
        """The statement, prepared, and marked idempotent when the caller says it is (``Cql.is_idempotent``): a
        slow one may then be sent to another coordinator as well (SPECULATIVE_DELAY_SECONDS), and one timed out
        sent again. Unsaid, it is sent once.
        In local mode its text is first held to Keyspaces' rules (player_sessions.keyspaces_rules)."""
        local = self._settings.database_mode is DatabaseMode.LOCAL
        if local:
            keyspaces_rules.check_cql(cql)
        statement = self.session().prepare(cql)
        if local:
            keyspaces_rules.remember(statement)
        statement.is_idempotent = idempotent
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
            for hook in _session_hooks:
                hook(session)
            self._probe = session.prepare(PROBE)
            session.add_request_init_listener(self._watch_for_silence)
        except (NoHostAvailable, OperationTimedOut, OSError) as error:
            cluster.shutdown()
            # The driver's text names the hosts tried and what each answered: the log has it (as the cause), the
            # client gets what is down.
            raise DatabaseUnavailableError("cannot connect to Cassandra") from error
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
