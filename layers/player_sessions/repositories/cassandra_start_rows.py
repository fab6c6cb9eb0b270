"""What listing a country's starts, and counting a window's partial first second, read of the start rows on
Cassandra / Amazon Keyspaces (prepared statements only): the base of the starts' store
(repositories.cassandra_starts), which adds the rollup family's reads. Every read counts its rows and partitions
(player_sessions.read_counts)."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT

from player_sessions.cassandra_connection import BULK_PROFILE, CassandraConnection
from player_sessions.models import HourCounts, StartRow, from_epoch_ms, to_epoch_ms
from player_sessions.read_counts import count_read
from player_sessions.repositories.cassandra_helpers import (
    MAX_IN_VALUES,
    PreparedStatements,
    counted_first_rows,
    execute_all,
    unavailable_on_failure,
    utc,
)
from player_sessions.repositories.cql import Cql
from player_sessions.time_buckets import Level

# The reads of start rows below that take a range of ``ts`` name one partition each: a clustering range
# combined with IN is a construct Keyspaces does not document (docs/keyspaces.md).
EDGE_COUNTRY_STARTS = Cql(
    "SELECT ts FROM session_starts WHERE hour = ? AND shard = ? AND country = ? AND ts >= ? AND ts < ?"
)
COUNTRY_START_BETWEEN = Cql(
    "SELECT ts FROM session_starts WHERE hour = ? AND shard = ? AND country = ? AND ts > ? AND ts <= ? LIMIT 1"
)
READ_COUNTRY_HOUR_STARTS = Cql(
    "SELECT ts, session_id, player_id FROM session_starts "
    "WHERE hour = ? AND shard = ? AND country = ? AND ts <= ? AND ts >= ?"
)
# Whole hours known (from their rollups) to hold few of the country's starts: several hours and all shards in
# one request (at most PARTITIONS_PER_REQUEST partitions, the product of the two IN lists), ordered here.
READ_COUNTRY_FEW_STARTS = Cql(
    "SELECT hour, ts, session_id, player_id FROM session_starts WHERE hour IN ? AND shard IN ? AND country = ?"
)

START_ROW_STATEMENTS = (
    EDGE_COUNTRY_STARTS,
    COUNTRY_START_BETWEEN,
    READ_COUNTRY_HOUR_STARTS,
    READ_COUNTRY_FEW_STARTS,
)

CONCURRENCY = 32
PARTITIONS_PER_REQUEST = MAX_IN_VALUES // 4
"""The few-start hours are read in requests of at most this many partitions, sent together: the start rows of
a day's page of 772 starts (25 hours x 4 shards) took 14.8 ms p50 as one request of 100 partitions and 8.7 ms
as four of 25 (docs/benchmarks.md, "A page's start rows in requests of 25 partitions")."""
FEW_STARTS_PER_HOUR = 50
"""An hour whose rollups count at most this many starts of the country is read with others in one request."""
SHARD_PAGE_SLACK = 8
"""Rows per shard fetched beyond an even share of the page: shards hold a session's start by its id's hash,
so each holds about a 1/shards share of any hour's newest starts."""


class CassandraStartRows:
    """The start rows' reads, on a keyspace whose starts are spread over ``shards`` shards."""

    def __init__(self, connection: CassandraConnection, shards: int) -> None:
        self._connection = connection
        self._shards = shards
        self._statement = PreparedStatements(connection)

    def _concurrently(self, cql: Cql, parameters: Iterable[tuple[Any, ...]], bulk: bool = False) -> list[Any]:
        statement = self._statement(cql)
        pairs = [(statement, p) for p in parameters]
        if not pairs:
            return []
        return execute_all(
            self._connection.session(),
            pairs,
            concurrency=CONCURRENCY,
            execution_profile=BULK_PROFILE if bulk else EXEC_PROFILE_DEFAULT,
        )

    def edge_country_counts(
        self, hour: datetime, countries: Sequence[str], since: datetime, before: datetime
    ) -> Counter[str]:
        """One single-partition range read per shard and country (``country`` leads the clustering key)."""
        pairs = [(shard, country) for country in countries for shard in range(self._shards)]
        counts: Counter[str] = Counter()
        with unavailable_on_failure("count the starts of a second"):
            results = self._concurrently(
                EDGE_COUNTRY_STARTS, ((hour, shard, country, since, before) for shard, country in pairs)
            )
            for (_, country), result in zip(pairs, results, strict=True):
                counts[country] += sum(1 for _ in result)
        count_read(rows=sum(counts.values()), partitions=len(pairs), requests=len(pairs))
        return counts

    def has_country_start_between(self, country: str, after: datetime, until: datetime) -> bool:
        """One single-partition read of at most one row per hour and shard."""
        hours = []
        hour = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while hour <= until:
            hours.append(hour)
            hour = Level.HOUR.after(hour)
        parameters = [(h, shard, country, after, until) for h in hours for shard in range(self._shards)]
        with unavailable_on_failure("look for new starts"):
            rows = counted_first_rows(self._concurrently(COUNTRY_START_BETWEEN, parameters))
        return any(row is not None for row in rows)

    def country_hour_starts(
        self, hours: HourCounts, country: str, not_after: datetime, not_before: datetime, page_size: int
    ) -> list[Iterator[StartRow]]:
        session = self._connection.session()
        # Hours known to hold few enough starts of the country for the page are read whole (the window's
        # partial hours too, their rows outside it dropped here), several hours to a request and as many
        # requests at once as the page needs: a request per hour and shard costs the driver far more than the
        # rows it returns, and one request of a hundred partitions is answered later than four of 25.
        budget = max(FEW_STARTS_PER_HOUR, page_size)
        few = [(hour, known) for hour, known in hours if known is not None and known <= budget]
        group_size = max(1, PARTITIONS_PER_REQUEST // self._shards)
        shards = list(range(self._shards))
        shard_page = page_size // self._shards + SHARD_PAGE_SLACK
        with unavailable_on_failure("read a country's starts"):
            groups: dict[datetime, _FewHours] = {}
            for group_hours in _groups(few, group_size, budget):
                future = session.execute_async(
                    self._statement(READ_COUNTRY_FEW_STARTS).bind((group_hours, shards, country))
                )
                group = _FewHours(future, country, len(group_hours) * self._shards, (not_before, not_after))
                groups.update((hour, group) for hour in group_hours)
            statement = self._statement(READ_COUNTRY_HOUR_STARTS)
            per_shard: dict[datetime, list[Any]] = {}
            for hour, _ in hours:
                if hour in groups:
                    continue
                per_shard[hour] = []
                for shard in shards:
                    bound = statement.bind((hour, shard, country, not_after, not_before))
                    bound.fetch_size = shard_page
                    per_shard[hour].append(session.execute_async(bound))
        return [
            groups[hour].rows_of(hour) if hour in groups else self._merged(per_shard[hour], country)
            for hour, _ in hours
        ]

    def _merged(self, futures: list[Any], country: str) -> Iterator[StartRow]:
        with unavailable_on_failure("read a country's starts"):
            streams = [_start_rows(future.result(), country) for future in futures]
            count_read(rows=0, partitions=len(futures), requests=len(futures))
            # Each shard is newest first; merging keeps that order across shards (ties are ordered by the caller).
            yield from heapq.merge(*streams, key=_TS, reverse=True)


def _groups(hours: Sequence[tuple[datetime, int]], most: int, budget: int) -> Iterator[list[datetime]]:
    """Consecutive hours, at most ``most`` of them and about ``budget`` starts per group."""
    group: list[datetime] = []
    total = 0
    for hour, known in hours:
        if group and (len(group) == most or total + known > budget):
            yield group
            group, total = [], 0
        group.append(hour)
        total += known
    if group:
        yield group


class _FewHours:
    """The rows of one request over several hours and every shard, read whole on first use, by hour.

    Here and in ``_start_rows``: a start whose player was erased keeps its row, without a player id, for the
    counts (docs/decisions.md, "Privacy"); the listing leaves it out."""

    def __init__(
        self, future: Any, country: str, partitions: int, between: tuple[datetime, datetime]
    ) -> None:
        self._future = future
        self._country = country
        self._partitions = partitions
        self._between = between
        self._by_hour: dict[datetime, list[StartRow]] | None = None

    def rows_of(self, hour: datetime) -> Iterator[StartRow]:
        if self._by_hour is None:
            by_hour: dict[datetime, list[StartRow]] = {}
            read = 0
            # As a range read compares them: the bounds as the driver sends them (whole milliseconds, cut), with
            # the rows' timestamps, naive UTC as the driver returns them.
            not_before, not_after = (
                from_epoch_ms(to_epoch_ms(moment)).replace(tzinfo=None) for moment in self._between
            )
            with unavailable_on_failure("read a country's starts"):
                for row in self._future.result():
                    read += 1
                    if row.player_id is not None and not_before <= row.ts <= not_after:
                        by_hour.setdefault(utc(row.hour), []).append(
                            StartRow(utc(row.ts), row.session_id, row.player_id, self._country)
                        )
            count_read(rows=read, partitions=self._partitions)
            for rows in by_hour.values():
                rows.sort(key=_TS, reverse=True)
            self._by_hour = by_hour
        yield from self._by_hour.get(hour, [])


def _start_rows(result: Any, country: str) -> Iterator[StartRow]:
    for row in result:
        count_read(rows=1, partitions=0, requests=0)
        if row.player_id is not None:
            yield StartRow(utc(row.ts), row.session_id, row.player_id, country)


_TS = attrgetter("ts")
"""Rows' order key: their instant (newest first, with ``reverse``; a sort keeps ties in their order)."""
