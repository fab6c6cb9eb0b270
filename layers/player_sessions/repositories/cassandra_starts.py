"""Session starts and their rollups on Cassandra / Amazon Keyspaces (prepared statements only)."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.concurrent import execute_concurrent
from cassandra.query import PreparedStatement

from player_sessions.cassandra_connection import BULK_PROFILE, CassandraConnection
from player_sessions.models import TOTAL, RollupRow, StartRow
from player_sessions.repositories.protocols import PartitionRange
from player_sessions.repositories.cassandra_store import unavailable_on_failure
from player_sessions.time_buckets import Bucket, Level

READ_HOUR_STARTS = "SELECT country, ts FROM session_starts WHERE hour = ? AND shard = ?"
# Counting a whole hour needs only the country: one short column decodes several times faster than four.
READ_HOUR_COUNTRIES = "SELECT country FROM session_starts WHERE hour = ? AND shard = ?"
READ_COUNTRY_HOUR_STARTS = (
    "SELECT ts, session_id, player_id FROM session_starts "
    "WHERE hour = ? AND shard = ? AND country = ? AND ts <= ? AND ts >= ?"
)
# Hours known (from their rollups) to hold few of the country's starts: many hours and all shards in one request,
# read whole and ordered here (at most MAX_IN_PARTITIONS partitions, the product of the two IN lists).
READ_COUNTRY_FEW_STARTS = (
    "SELECT hour, ts, session_id, player_id FROM session_starts "
    "WHERE hour IN ? AND shard IN ? AND country = ? AND ts <= ? AND ts >= ?"
)
READ_ROLLUPS = (
    "SELECT bucket, country, starts, revision FROM start_rollups "
    "WHERE level = ? AND period = ? AND bucket >= ? AND bucket <= ?"
)
# One country's rollup row and the total row of each listed bucket (buckets x 2 <= 100, Keyspaces' IN limit).
READ_COUNTRY_ROLLUPS = (
    "SELECT bucket, country, starts, revision FROM start_rollups "
    "WHERE level = ? AND period = ? AND bucket IN ? AND country IN ?"
)
READ_REVISIONS = (
    "SELECT bucket, revision FROM rollup_revisions WHERE level = ? AND period = ? AND bucket >= ? AND bucket <= ?"
)
WRITE_ROLLUP = (
    "INSERT INTO start_rollups (level, period, bucket, country, starts, revision) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)

CONCURRENCY = 32
FEW_STARTS_PER_HOUR = 50
"""An hour whose rollup counts at most this many starts of the country is read with others in one request."""
MAX_IN_PARTITIONS = 100
"""Keyspaces takes at most 100 values in an IN, and counts the product of two IN lists."""


class CassandraStartsStore:
    def __init__(self, connection: CassandraConnection, shards: int) -> None:
        self._connection = connection
        self._shards = shards
        self._prepared: dict[str, PreparedStatement] = {}

    def _statement(self, cql: str) -> PreparedStatement:
        statement = self._prepared.get(cql)
        if statement is None:
            statement = self._connection.session().prepare(cql)
            self._prepared[cql] = statement
        return statement

    def _concurrently(self, cql: str, parameters: list[tuple[Any, ...]], bulk: bool = False) -> list[Any]:
        if not parameters:
            return []
        statement = self._statement(cql)
        results = execute_concurrent(
            self._connection.session(), [(statement, p) for p in parameters],
            concurrency=CONCURRENCY, raise_on_first_error=True,
            execution_profile=BULK_PROFILE if bulk else EXEC_PROFILE_DEFAULT,
        )
        return [result for _, result in results]

    def country_counts_between(self, hours: Sequence[datetime], since: datetime, until: datetime) -> Counter[str]:
        keys = [(hour, shard) for hour in hours for shard in range(self._shards)]
        # The driver returns naive UTC datetimes: compare them with naive bounds rather than convert every row
        # (converting was a fifth of an uncached year-long count, for the open hour's hundreds of rows).
        first, last = _naive_utc(since), _naive_utc(until)
        counts: Counter[str] = Counter()
        with unavailable_on_failure("count the starts of an hour"):
            for result in self._concurrently(READ_HOUR_STARTS, keys):
                counts.update(row.country for row in result if first <= row.ts <= last)
        return counts

    def hour_country_counts(self, hours: Sequence[datetime]) -> dict[datetime, Counter[str]]:
        keys = [(hour, shard) for hour in hours for shard in range(self._shards)]
        counts: dict[datetime, Counter[str]] = {hour: Counter() for hour in hours}
        with unavailable_on_failure("count the starts of an hour"):
            for (hour, _), result in zip(keys, self._concurrently(READ_HOUR_COUNTRIES, keys, bulk=len(keys) > 100)):
                counts[hour].update(row.country for row in result)
        return counts

    def country_hour_starts(self, hours: Sequence[tuple[datetime, int | None]], country: str, not_after: datetime,
                            not_before: datetime, page_size: int) -> list[Iterator[StartRow]]:
        session = self._connection.session()
        few = [hour for hour, known in hours if known is not None and known <= FEW_STARTS_PER_HOUR]
        group_size = max(1, MAX_IN_PARTITIONS // self._shards)
        shards = list(range(self._shards))
        with unavailable_on_failure("read a country's starts"):
            groups: dict[datetime, _FewHours] = {}
            for first in range(0, len(few), group_size):
                group_hours = few[first:first + group_size]
                future = session.execute_async(self._statement(READ_COUNTRY_FEW_STARTS).bind(
                    (group_hours, shards, country, not_after, not_before)))
                group = _FewHours(future, country)
                groups.update((hour, group) for hour in group_hours)
            statement = self._statement(READ_COUNTRY_HOUR_STARTS)
            per_shard: dict[datetime, list[Any]] = {}
            for hour, _ in hours:
                if hour in groups:
                    continue
                per_shard[hour] = []
                for shard in shards:
                    bound = statement.bind((hour, shard, country, not_after, not_before))
                    bound.fetch_size = page_size
                    per_shard[hour].append(session.execute_async(bound))
        return [groups[hour].rows_of(hour) if hour in groups else self._merged(per_shard[hour], country)
                for hour, _ in hours]

    def _merged(self, futures: list[Any], country: str) -> Iterator[StartRow]:
        with unavailable_on_failure("read a country's starts"):
            streams = [_start_rows(future.result(), country) for future in futures]
            # Each shard is newest first; merging keeps that order across shards (ties are ordered by the caller).
            yield from heapq.merge(*streams, key=_newest_first)

    def rollups_and_revisions(self, ranges: Sequence[PartitionRange]) -> tuple[
            dict[tuple[Level, datetime], dict[datetime, dict[str, RollupRow]]],
            dict[tuple[Level, datetime], dict[datetime, UUID]]]:
        keys = [(level.value, period, first, last) for level, period, first, last in ranges]
        with unavailable_on_failure("read rollups"):
            session = self._connection.session()
            rollup_futures = [session.execute_async(self._statement(READ_ROLLUPS), key) for key in keys]
            revision_futures = [session.execute_async(self._statement(READ_REVISIONS), key) for key in keys]
            rollups = self._rollup_rows(ranges, [future.result() for future in rollup_futures])
            revisions = _revisions(ranges, revision_futures)
        return rollups, revisions

    def country_rollups_and_revisions(self, country: str, buckets: Sequence[tuple[Level, datetime, list[datetime]]],
                                      ) -> tuple[dict[tuple[Level, datetime], dict[datetime, dict[str, RollupRow]]],
                                                 dict[tuple[Level, datetime], dict[datetime, UUID]]]:
        per_request = MAX_IN_PARTITIONS // 2
        rollup_ranges: list[PartitionRange] = []
        revision_ranges: list[PartitionRange] = []
        with unavailable_on_failure("read rollups"):
            session = self._connection.session()
            rollup_futures, revision_futures = [], []
            for level, period, starts in buckets:
                ordered = sorted(starts)
                for first in range(0, len(ordered), per_request):
                    part = ordered[first:first + per_request]
                    rollup_ranges.append((level, period, part[0], part[-1]))
                    rollup_futures.append(session.execute_async(
                        self._statement(READ_COUNTRY_ROLLUPS), (level.value, period, part, [country, TOTAL])))
                revision_ranges.append((level, period, ordered[0], ordered[-1]))
                revision_futures.append(session.execute_async(
                    self._statement(READ_REVISIONS), (level.value, period, ordered[0], ordered[-1])))
            # (rows of several requests on one partition land in that partition's one dict)
            rollups = self._rollup_rows(rollup_ranges, [future.result() for future in rollup_futures])
            revisions = _revisions(revision_ranges, revision_futures)
        return rollups, revisions

    @staticmethod
    def _rollup_rows(ranges: Sequence[PartitionRange], results: list[Any]) -> dict:
        found: dict[tuple[Level, datetime], dict[datetime, dict[str, RollupRow]]] = {}
        for (level, period, _, _), result in zip(ranges, results):
            rows = found.setdefault((level, period), {})
            bucket_rows: dict[str, RollupRow] = {}
            raw_bucket = None
            for row in result:
                if row.bucket != raw_bucket:  # rows come grouped by bucket: convert each bucket once
                    raw_bucket = row.bucket
                    bucket_rows = rows.setdefault(_utc(raw_bucket), {})
                bucket_rows[row.country] = RollupRow(row.starts, row.revision)
        return found

    def write_rollups(self, rollups: Sequence[tuple[Bucket, dict[str, int], UUID | None, int]]) -> None:
        country_rows, total_rows = [], []
        for bucket, counts, revision, ttl in rollups:
            key = (bucket.level.value, bucket.period, bucket.start)
            country_rows += [(*key, country, starts, revision, ttl) for country, starts in counts.items()]
            total_rows.append((*key, TOTAL, sum(counts.values()), revision, ttl))
        with unavailable_on_failure("write rollups"):
            bulk = len(country_rows) + len(total_rows) > 100
            self._concurrently(WRITE_ROLLUP, country_rows, bulk)
            # Total rows last: a reader that finds one knows every country row of that build was written.
            self._concurrently(WRITE_ROLLUP, total_rows, bulk)


def _revisions(ranges: Sequence[PartitionRange], futures: list[Any]) -> dict[tuple[Level, datetime],
                                                                              dict[datetime, UUID]]:
    """Each partition's bucket revisions, from the answers to READ_REVISIONS over ``ranges``."""
    return {(level, period): {_utc(row.bucket): row.revision for row in future.result()}
            for (level, period, _, _), future in zip(ranges, futures)}


class _FewHours:
    """The rows of one request over several hours and every shard, read whole on first use, by hour."""

    def __init__(self, future: Any, country: str) -> None:
        self._future = future
        self._country = country
        self._by_hour: dict[datetime, list[StartRow]] | None = None

    def rows_of(self, hour: datetime) -> Iterator[StartRow]:
        if self._by_hour is None:
            by_hour: dict[datetime, list[StartRow]] = {}
            with unavailable_on_failure("read a country's starts"):
                for row in self._future.result():
                    by_hour.setdefault(_utc(row.hour), []).append(
                        StartRow(_utc(row.ts), row.session_id, row.player_id, self._country))
            for rows in by_hour.values():
                rows.sort(key=_newest_first)
            self._by_hour = by_hour
        yield from self._by_hour.get(hour, [])


def _start_rows(result: Any, country: str) -> Iterator[StartRow]:
    for row in result:
        yield StartRow(_utc(row.ts), row.session_id, row.player_id, country)


def _newest_first(row: StartRow) -> float:
    return -row.ts.timestamp()


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
