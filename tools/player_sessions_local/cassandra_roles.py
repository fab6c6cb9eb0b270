"""The local Cassandra's roles: what IAM is to Keyspaces, for the local stack.

- An administrative role (``player_sessions_admin``, a superuser) for the schema tool, the loaders, the
  benchmark's set-up and the tests' set-up. ``bootstrap`` creates it on a node's first start, from Cassandra's
  default superuser, which it then drops.
- One role per function (``player_sessions_<function>``) that holds exactly the ``SELECT`` and ``MODIFY`` grants
  its deployed IAM role gets, both derived from player_sessions.access; ``grant_function_roles`` (run by the
  schema tool for each keyspace it applies) makes it so, revoking any grant on the keyspace it should not hold.

Passwords are random, one file per role in the credentials directory (``CASSANDRA_CREDENTIALS_DIR``, set by the
Makefile and tools/test_services.sh; by default .local/cassandra/credentials): git-ignored, never in the
repository, and kept beside the node's data, which they belong to.

python -m player_sessions_local.cassandra_roles bootstrap [--replicas N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    InvalidRequest,
    OperationTimedOut,
    ReadTimeout,
    Unauthorized,
    Unavailable,
)
from cassandra.cluster import NoHostAvailable, Session
from cassandra.pool import Host
from cassandra.query import SimpleStatement

from player_sessions.access import FUNCTION_STATEMENTS, table_access
from player_sessions.cassandra_cluster import build_cluster
from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.repositories.cql import Access
from player_sessions.routes import LambdaFunction
from player_sessions.schema import TABLES
from player_sessions.settings import Settings, get_settings

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
ADMIN_ROLE = "player_sessions_admin"
ROLE_PREFIX = "player_sessions_"
DEFAULT_SUPERUSER = "cassandra"
"""Created by Cassandra on a new node with the password ``cassandra``; dropped once the admin role exists."""
DEFAULT_SUPERUSER_WAIT_SECONDS = 60
_PERMISSION = {Access.SELECT: "SELECT", Access.MODIFY: "MODIFY"}
_ROLE_AT_ALL = SimpleStatement(
    "SELECT role, can_login, is_superuser, member_of, salted_hash FROM system_auth.roles WHERE role = %s",
    consistency_level=ConsistencyLevel.ALL,
)
"""A role's row as every node holds it (the roles' set-up: nodes that miss it are repaired)."""


def credentials_dir() -> Path:
    return Path(
        os.environ.get("CASSANDRA_CREDENTIALS_DIR") or REPOSITORY_ROOT / ".local/cassandra/credentials"
    )


def role_of(function: LambdaFunction) -> str:
    return f"{ROLE_PREFIX}{function.name}"


def password_file(role: str) -> Path:
    return credentials_dir() / role


def as_role(role: str, settings: Settings) -> Settings:
    return settings.model_copy(
        update={"cassandra_username": role, "cassandra_password_file": password_file(role)}
    )


def as_admin(settings: Settings) -> Settings:
    """The settings, logged in as the administrative role (set-up and tooling, never a function)."""
    return as_role(ADMIN_ROLE, settings)


def as_function(function: LambdaFunction, settings: Settings) -> Settings:
    """The settings, logged in as the function's own role: what its deployed IAM role may do, no more."""
    return as_role(role_of(function), settings)


def function_environment(function: LambdaFunction) -> dict[str, str]:
    """The variables that log an execution environment of ``function`` in as its role."""
    role = role_of(function)
    return {
        "PLAYER_SESSIONS_CASSANDRA_USERNAME": role,
        "PLAYER_SESSIONS_CASSANDRA_PASSWORD_FILE": str(password_file(role)),
    }


def _new_password(role: str) -> str:
    """A fresh random password for ``role``, written to its file (readable by this user only)."""
    password = secrets.token_urlsafe(24)
    path = password_file(role)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".new")
    temporary.touch(mode=0o600)
    temporary.write_text(password + "\n")
    temporary.replace(path)
    return password


def _password(role: str) -> tuple[str, bool]:
    """The role's password, and whether it was made just now (the role, if it exists, has another)."""
    path = password_file(role)
    if path.is_file():
        return path.read_text().strip(), False
    return _new_password(role), True


def _ensure_role(
    session: Session,
    role: str,
    options: str,
    password: str,
    password_is_new: bool,
) -> None:
    """Creates the role with the password; an existing role gets it only when it is new (Cassandra takes a
    role's new password at most every 5 s, and the schema tool runs for one keyspace after another)."""
    try:
        session.execute(f"CREATE ROLE {role} WITH {options} AND PASSWORD = '{password}'", timeout=60)
    except InvalidRequest as error:
        if "already exists" not in str(error):
            raise
        if password_is_new:
            session.execute(f"ALTER ROLE {role} WITH {options} AND PASSWORD = '{password}'", timeout=60)


def bootstrap(settings: Settings, replicas: int = 1) -> None:
    """Makes sure the administrative role exists and logs in; on a new node, creates it from the default
    superuser (replicating the roles ``replicas`` times first, so a cluster that loses nodes still logs in)."""
    _require_authentication(settings)
    if not _can_log_in(as_admin(settings)):
        _create_admin(settings, replicas)
        if replicas > 1:
            _read_role_everywhere(as_admin(settings), ADMIN_ROLE)
    _drop_default_superuser(as_admin(settings))


def _read_role_everywhere(settings: Settings, role: str) -> None:
    """Reads the role's row at ALL through each node in turn, until each answers it.

    A node answers once it sees every replica of the roles up (the cluster's nodes find each other a moment
    after they answer CQL; a role written before then failed as "Unavailable"). The read also repairs a node
    that misses the row: one the admin role's creation (QUORUM, two of three) missed, which refuses its login
    ("Bad credentials"), or one without the default superuser, which Cassandra wrote to one node while the roles
    had one replica, and which refuses ``CREATE ROLE`` as unauthorised. Hence every column a login and a
    permission check read."""
    with _plain_session(settings) as session:
        hosts = list(session.cluster.metadata.all_hosts())

        def read_through(host: Host) -> str | None:
            try:
                found = session.execute(_ROLE_AT_ALL, (role,), timeout=60, host=host).one()
            except Unauthorized:
                # This node misses the default superuser's row, so it refuses even this read: the same read
                # through the other nodes repairs it.
                for other in hosts:
                    if other is not host:
                        with contextlib.suppress(Unauthorized):
                            session.execute(_ROLE_AT_ALL, (role,), timeout=60, host=other)
                return "is not known to this node yet (it refused the read as unauthorised)"
            return None if found else "is missing"

        for host in hosts:
            _until_done(f"the role {role!r} through {host.address}", functools.partial(read_through, host))


def _drop_default_superuser(settings: Settings) -> None:
    """Drops the default superuser until a read at ALL finds it on no node.

    Cassandra wrote it to one node while the roles had one replica. ``DROP ROLE IF EXISTS`` looks for it at
    QUORUM (two nodes of three): when neither is that node, it finds nothing and drops nothing, and the role
    stays on the one node. A read at ALL asks every node, finds it and repairs the others, so the next drop
    finds it."""
    with _plain_session(settings) as session:

        def drop() -> str | None:
            session.execute(f"DROP ROLE IF EXISTS {DEFAULT_SUPERUSER}", timeout=60)
            if session.execute(_ROLE_AT_ALL, (DEFAULT_SUPERUSER,), timeout=60).one() is None:
                return None
            return "was on a node the drop missed"

        _until_done(f"the default superuser {DEFAULT_SUPERUSER!r}", drop)


@contextmanager
def _plain_session(settings: Settings) -> Iterator[Session]:
    """A driver session outside the rules a project connection holds the product's keyspace to: the roles'
    set-up reads at ALL, which Keyspaces (no roles: IAM is its access control) refuses."""
    cluster = build_cluster(settings)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def _until_done(what: str, attempt: Callable[[], str | None]) -> None:
    """Calls ``attempt`` every half second until it returns None (done). What it returns otherwise, or a node
    not answering, is said on stderr, and raised after DEFAULT_SUPERUSER_WAIT_SECONDS: nodes started together
    see each other up a moment after they answer CQL."""
    deadline = time.monotonic() + DEFAULT_SUPERUSER_WAIT_SECONDS
    while True:
        try:
            problem = attempt()
        except (Unavailable, ReadTimeout, OperationTimedOut, NoHostAvailable) as error:
            problem = f"is not on every node yet ({error})"
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise DatabaseUnavailableError(f"{what} {problem} after {DEFAULT_SUPERUSER_WAIT_SECONDS} s")
        print(f"cassandra roles: {what} {problem}; trying again", file=sys.stderr)
        time.sleep(0.5)


def _create_admin(settings: Settings, replicas: int) -> None:
    with _as_default_superuser(settings) as default:
        connection = _connect(default)
        try:
            session = connection.session()
            if replicas > 1:
                session.execute(
                    "ALTER KEYSPACE system_auth WITH replication = "
                    f"{{'class': 'NetworkTopologyStrategy', '{settings.cassandra_datacenter}': {replicas}}}",
                    timeout=60,
                )
                _read_role_everywhere(default, DEFAULT_SUPERUSER)
            _ensure_role(
                session, ADMIN_ROLE, "SUPERUSER = true AND LOGIN = true", _new_password(ADMIN_ROLE), True
            )
        finally:
            connection.close()


def _require_authentication(settings: Settings) -> None:
    """A node that lets anyone in was started with an older cassandra.yaml (no authenticator): its roles would
    check nothing."""
    anonymous = CassandraConnection(
        settings.model_copy(update={"cassandra_username": None}), use_keyspace=False
    )
    try:
        anonymous.session()
    except DatabaseUnavailableError as error:
        if _refused_login(error):
            return
        raise
    finally:
        anonymous.close()
    raise DatabaseUnavailableError(
        "the local Cassandra accepts connections without a login: it was started before logins were "
        "required; restart it (make down, then make up)"
    )


def _can_log_in(settings: Settings) -> bool:
    if not (settings.cassandra_password_file and settings.cassandra_password_file.is_file()):
        return False
    connection = CassandraConnection(settings, use_keyspace=False)
    try:
        connection.session()
        return True
    except DatabaseUnavailableError as error:
        if _refused_login(error):
            return False
        raise
    finally:
        connection.close()


def _refused_login(error: BaseException) -> bool:
    cause = error.__cause__
    if isinstance(cause, NoHostAvailable):
        return any(isinstance(reason, AuthenticationFailed) for reason in cause.errors.values())
    return isinstance(cause, AuthenticationFailed)


@contextmanager
def _as_default_superuser(settings: Settings) -> Iterator[Settings]:
    """The settings, logged in as Cassandra's default superuser (its password in a file while they are used)."""
    path = credentials_dir() / ".default-superuser"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_SUPERUSER + "\n")
    try:
        yield settings.model_copy(
            update={"cassandra_username": DEFAULT_SUPERUSER, "cassandra_password_file": path}
        )
    finally:
        path.unlink(missing_ok=True)


def _connect(default: Settings) -> CassandraConnection:
    """Cassandra creates its default superuser a moment after a new node accepts connections."""
    deadline = time.monotonic() + DEFAULT_SUPERUSER_WAIT_SECONDS
    while True:
        connection = CassandraConnection(default, use_keyspace=False)
        try:
            connection.session()
            return connection
        except DatabaseUnavailableError as error:
            connection.close()
            if time.monotonic() > deadline:
                hint = (
                    " The node's administrative password is not in "
                    f"{password_file(ADMIN_ROLE)}: stop the node (make down) and remove its data folder."
                    if _refused_login(error)
                    else ""
                )
                raise DatabaseUnavailableError(f"{error.message}.{hint}") from error
            time.sleep(1)


def expected_grants(keyspace: str, function: LambdaFunction) -> set[tuple[str, str]]:
    """(permission, table) pairs the function's role holds on ``keyspace``."""
    access = table_access(function)
    return {(_PERMISSION[kind], f"{keyspace}.{table.name}") for kind in Access for table in access.of(kind)}


def grant_function_roles(session: Session, keyspace: str, functions: Iterable[LambdaFunction] = ()) -> None:
    """Every function's role exists, logs in with its file's password, and holds exactly its grants on the
    keyspace's tables: missing ones granted, others (a grant the code no longer needs, one on the whole keyspace
    or on every keyspace) revoked."""
    ours = {f"{keyspace}.{table.name}" for table in TABLES}
    for function in functions or FUNCTION_STATEMENTS:
        role = role_of(function)
        _ensure_role(session, role, "LOGIN = true", *_password(role))
        rows = list(session.execute(f"LIST ALL PERMISSIONS OF {role} NORECURSIVE"))
        # A grant on the whole keyspace, or on every keyspace, is never in the statement of access.
        whole = {f"<keyspace {keyspace}>": f"KEYSPACE {keyspace}", "<all keyspaces>": "ALL KEYSPACES"}
        for row in rows:
            if row.resource in whole:
                session.execute(f"REVOKE {row.permission} ON {whole[row.resource]} FROM {role}")
        held = {(row.permission, _table_of(row.resource)) for row in rows}
        held = {(permission, table) for permission, table in held if table in ours}
        wanted = expected_grants(keyspace, function)
        for permission, table in sorted(held - wanted):
            session.execute(f"REVOKE {permission} ON TABLE {table} FROM {role}")
        for permission, table in sorted(wanted - held):
            session.execute(f"GRANT {permission} ON TABLE {table} TO {role}")


def revoke(session: Session, function: LambdaFunction, permission: Access, table: str, keyspace: str) -> None:
    """Takes one grant from the function's role (the tests that show a missing grant failing)."""
    session.execute(f"REVOKE {_PERMISSION[permission]} ON TABLE {keyspace}.{table} FROM {role_of(function)}")


def _table_of(resource: str) -> str:
    """``<table ks.t>`` -> ``ks.t``; anything else (``<keyspace ks>``, ``<all keyspaces>``) as it is."""
    return resource[len("<table ") : -1] if resource.startswith("<table ") else resource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["bootstrap"])
    parser.add_argument("--replicas", type=int, default=1, help="copies of the roles (a cluster: its nodes)")
    arguments = parser.parse_args(argv)
    bootstrap(get_settings(), arguments.replicas)
    print(f"cassandra roles: {ADMIN_ROLE} logs in (credentials in {credentials_dir()})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
