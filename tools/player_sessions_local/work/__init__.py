"""What each invocation costs, measured locally: rows and bytes per table, Keyspaces request units, Redis commands
and bytes. The cost model (player_sessions_local.cost) prices the lines it writes.

The service carries none of this: the meters plug into its connection hooks
(``player_sessions.cassandra_connection.on_new_session``, ``player_sessions.redis_connection.on_new_client``),
installed by ``install()`` where the work is reported: in each local execution environment whose
``PLAYER_SESSIONS_REPORT_WORK`` is true (the local gateway sets it), and in the local rollup builder.
"""

from __future__ import annotations

import os

from player_sessions.cassandra_connection import on_new_session
from player_sessions.redis_connection import on_new_client
from player_sessions_local.work.meter import meter_client, meter_session

REPORT_WORK_VARIABLE = "PLAYER_SESSIONS_REPORT_WORK"


def reporting(default: bool = False) -> bool:
    """Whether this process reports its work: the environment variable, else ``default``."""
    value = os.environ.get(REPORT_WORK_VARIABLE)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


def install() -> None:
    """Meters every Cassandra session and Redis client this process opens from now on."""
    on_new_session(meter_session)
    on_new_client(meter_client)
