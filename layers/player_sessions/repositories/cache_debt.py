"""A lost cache invalidation, recorded in Cassandra for the rollup builder to pay.

The environment that lost an invalidation owes a bump of the cache's epoch (repositories.redis_cache) and pays it
at its next use of the cache; the other environments would serve what they cached before the loss until then.
So the loss is also written here. An environment that saw Redis fail reads it before its next lookup and bumps
the epoch itself; for those that never saw Redis fail, the builder of part 0, which runs every second and talks
to both stores, bumps the epoch for everyone as soon as Redis answers it.

A debt is a random number written over the last one; the builder pays when it differs from the last it paid
(values, not times: environments' clocks differ). Both rows live in ``rollup_progress``, beside the watermarks.
"""

from __future__ import annotations

import secrets

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.read_counts import count_read
from player_sessions.repositories.cassandra_helpers import PreparedStatements, unavailable_on_failure
from player_sessions.repositories.cql import Cql

OWE_CACHE_EPOCH = Cql("INSERT INTO rollup_progress (name, slot) VALUES ('cache epoch owed', ?)")
READ_CACHE_DEBT = Cql(
    "SELECT name, slot FROM rollup_progress WHERE name IN ('cache epoch owed', 'cache epoch paid')"
)
PAY_CACHE_EPOCH = Cql("INSERT INTO rollup_progress (name, slot) VALUES ('cache epoch paid', ?)")
"""(The names hold spaces: no part's watermark, ``<family>:<part>``, can be spelled so.)"""


class CassandraCacheDebt:
    def __init__(self, connection: CassandraConnection) -> None:
        self._connection = connection
        self._statement = PreparedStatements(connection)

    def owe(self) -> None:
        with unavailable_on_failure("record a lost cache invalidation"):
            self._connection.session().execute(self._statement(OWE_CACHE_EPOCH), (secrets.randbits(63),))

    def unpaid(self) -> int | None:
        with unavailable_on_failure("read the cache's debt"):
            rows = {
                row.name: row.slot
                for row in self._connection.session().execute(self._statement(READ_CACHE_DEBT))
            }
        count_read(rows=len(rows), partitions=2)
        owed = rows.get("cache epoch owed")
        return owed if owed is not None and owed != rows.get("cache epoch paid") else None

    def mark_paid(self, debt: int) -> None:
        with unavailable_on_failure("record the cache's debt paid"):
            self._connection.session().execute(self._statement(PAY_CACHE_EPOCH), (debt,))


INVALIDATOR_STATEMENTS = (OWE_CACHE_EPOCH,)
"""What a function whose cache invalidates sends when an invalidation is lost (ingest, the builder)."""
LOOKUP_STATEMENTS = (READ_CACHE_DEBT,)
"""What a function that looks the cache up sends before its first lookup after Redis failed it
(repositories.redis_cache): the readers of histories, counts and pages."""
COLLECTOR_STATEMENTS = (READ_CACHE_DEBT, PAY_CACHE_EPOCH)
"""What the builder of part 0 sends to pay the debts (domain.cache_debt)."""
