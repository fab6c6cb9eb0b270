"""What counting and listing session starts read on Cassandra / Amazon Keyspaces: the builder's watermark, the
arrival log's unfolded tail, the marks of counted starts, the rollups and the start rows (prepared statements
only). Every read counts its rows and partitions (player_sessions.read_counts). The builder's writes are in
repositories.cassandra_rollups."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT

from player_sessions.cassandra_connection import BULK_PROFILE, CassandraConnection
from player_sessions.histograms import loads_counts
from player_sessions.models import Arrival, HourCounts, RollupRow, StartKey, StartRow
from player_sessions.read_counts import count_read
from player_sessions.repositories.cassandra_helpers import (
    MAX_IN_VALUES,
    PreparedStatements,
    chunks,
    execute_all,
    first_row,
    in_or_one_each,
    unavailable_on_failure,
    utc,
)
from player_sessions.repositories.cql import Cql, FamilyStatements
from player_sessions.schema import FAMILIES, STARTS, RollupFamily
from player_sessions.time_buckets import Bucket, Level

READ_PROGRESS = Cql("SELECT name, slot FROM rollup_progress WHERE name IN ?")
FIRST_ARRIVAL_MINUTE = Cql("SELECT minute FROM arrival_minutes WHERE scope = ? LIMIT 1")
ARRIVAL_MINUTES_BETWEEN = Cql(
    "SELECT minute FROM arrival_minutes WHERE scope = ? AND minute >= ? AND minute <= ? LIMIT ?"
)
READ_ARRIVALS = Cql("SELECT slot, session_id, ts, country FROM start_arrivals WHERE slot IN ? AND shard IN ?")
READ_PARTITION_ARRIVALS = Cql(
    "SELECT slot, session_id, ts, country FROM start_arrivals WHERE slot = ? AND shard = ?"
)
READ_MARKS = Cql("SELECT session_id, ts, country, slot FROM start_marks WHERE session_id IN ?")
READ_SESSION_MARKS = Cql("SELECT session_id, ts, country, slot FROM start_marks WHERE session_id = ?")
READ_ROLLUPS = Cql(
    "SELECT bucket, slot, base, counts FROM start_count_rollups "
    "WHERE level = ? AND period = ? AND bucket >= ? AND bucket <= ?"
)


@dataclass(frozen=True)
class FamilyReads(FamilyStatements):
    """The reads of one rollup family's tables: the starts family's statements above, on its own tables."""

    arrivals: Cql
    partition_arrivals: Cql
    marks: Cql
    session_marks: Cql
    rollups: Cql
    TEMPLATES = (READ_ARRIVALS, READ_PARTITION_ARRIVALS, READ_MARKS, READ_SESSION_MARKS, READ_ROLLUPS)


FAMILY_READS = {family: FamilyReads.of(family) for family in FAMILIES}
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
# Whole hours known (from their rollups) to hold few of the country's starts: many hours and all shards in one
# request (at most MAX_IN_VALUES partitions, the product of the two IN lists), ordered here.
READ_COUNTRY_FEW_STARTS = Cql(
    "SELECT hour, ts, session_id, player_id FROM session_starts WHERE hour IN ? AND shard IN ? AND country = ?"
)

READER_STATEMENTS = (
    READ_PROGRESS,
    FIRST_ARRIVAL_MINUTE,
    ARRIVAL_MINUTES_BETWEEN,
    *(statement for reads in FAMILY_READS.values() for statement in reads.statements),
    EDGE_COUNTRY_STARTS,
    COUNTRY_START_BETWEEN,
    READ_COUNTRY_HOUR_STARTS,
    READ_COUNTRY_FEW_STARTS,
)
"""What counting and listing starts, and the live-ops figures, send (protocols.StartsStore)."""

CONCURRENCY = 32
FEW_STARTS_PER_HOUR = 50
"""An hour whose rollups count at most this many starts of the country is read with others in one request."""
SHARD_PAGE_SLACK = 8
"""Rows per shard fetched beyond an even share of the page: shards hold a session's start by its id's hash,
so each holds about a 1/shards share of any hour's newest starts."""


def progress_name(part: int, family: RollupFamily = STARTS) -> str:
    """The name of a part's watermark row: ``<family>:<part>``."""
    return f"{family.name}:{part}"


class CassandraStartsStore:
    """A rollup family's reads (``family``; the start rows' reads belong to the starts family only)."""

    def __init__(self, connection: CassandraConnection, shards: int, family: RollupFamily = STARTS) -> None:
        self._connection = connection
        self._shards = shards
        self._statement = PreparedStatements(connection)
        self.family = family
        self._reads = FAMILY_READS[family]

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

    def _in_reads_in_bulk(self, cql: Cql, parameters: list[tuple[Any, ...]], in_reads: bool) -> list[Any]:
        """``IN`` reads, when more go out than at once, on the bulk profile, whose timeout is longer."""
        return self._concurrently(cql, parameters, bulk=in_reads and len(parameters) > CONCURRENCY)

    def _read_in_bulk(
        self,
        what: str,
        in_reads: tuple[Cql, list[tuple[Any, ...]]],
        one_each: tuple[Cql, list[tuple[Any, ...]]],
        per_partition: bool,
    ) -> tuple[list[Any], int]:
        """``in_or_one_each`` on this store's connection; a failure is the database unavailable."""
        with unavailable_on_failure(f"read {what}"):
            return in_or_one_each(self._in_reads_in_bulk, in_reads, one_each, per_partition=per_partition)

    # ---- the builder's watermark and the arrival log ----

    def read_progress(self, parts: Sequence[int]) -> dict[int, int]:
        names = {progress_name(part, self.family): part for part in parts}
        with unavailable_on_failure("read the rollup watermarks"):
            rows = list(self._connection.session().execute(self._statement(READ_PROGRESS), (list(names),)))
        count_read(rows=len(rows), partitions=len(names))
        return {names[row.name]: row.slot for row in rows}

    def first_arrival_minute(self) -> datetime | None:
        with unavailable_on_failure("read the arrival minutes"):
            row = first_row(
                self._connection.session().execute(
                    self._statement(FIRST_ARRIVAL_MINUTE), (self.family.arrival_scope,)
                )
            )
        count_read(rows=1 if row else 0, partitions=1)
        return utc(row.minute) if row is not None else None

    def arrival_minutes_between(self, first: datetime, last: datetime, limit: int) -> list[datetime]:
        with unavailable_on_failure("read the arrival minutes"):
            rows = list(
                self._connection.session().execute(
                    self._statement(ARRIVAL_MINUTES_BETWEEN), (self.family.arrival_scope, first, last, limit)
                )
            )
        count_read(rows=len(rows), partitions=1)
        return [utc(row.minute) for row in rows]

    def read_arrivals(
        self, slots: Sequence[int], shards: Sequence[int], *, per_partition: bool = False
    ) -> list[Arrival]:
        shards = list(shards)
        per_request = max(1, MAX_IN_VALUES // len(shards))
        grouped = [(list(group), shards) for group in chunks(list(slots), per_request)]
        one_each = [(slot, shard) for slot in slots for shard in shards]
        rows, requests = self._read_in_bulk(
            "the arrivals",
            (self._reads.arrivals, grouped),
            (self._reads.partition_arrivals, one_each),
            per_partition,
        )
        arrivals = [Arrival(row.slot, StartKey(row.session_id, utc(row.ts), row.country)) for row in rows]
        count_read(rows=len(arrivals), partitions=len(one_each), requests=requests)
        return arrivals

    # ---- marks and fold records ----

    def read_marks(self, keys: Sequence[StartKey], *, per_partition: bool = False) -> dict[StartKey, int]:
        wanted = set(keys)
        session_ids = list(dict.fromkeys(key.session_id for key in keys))
        grouped: list[tuple[Any, ...]] = [(list(group),) for group in chunks(session_ids, MAX_IN_VALUES)]
        one_each: list[tuple[Any, ...]] = [(session_id,) for session_id in session_ids]
        rows, requests = self._read_in_bulk(
            "the start marks",
            (self._reads.marks, grouped),
            (self._reads.session_marks, one_each),
            per_partition,
        )
        marks: dict[StartKey, int] = {}
        for row in rows:
            key = StartKey(row.session_id, utc(row.ts), row.country)
            if key in wanted:
                marks[key] = row.slot
        count_read(rows=len(rows), partitions=len(session_ids), requests=requests)
        return marks

    # ---- rollups ----

    def read_rollups(self, buckets: Sequence[Bucket]) -> dict[Bucket, list[RollupRow]]:
        """One range read per run of adjacent wanted buckets in a partition, all at once: a window's two ends
        may share a partition (a 12-hour window's minutes), and one range across them reads all in between."""
        by_partition: dict[tuple[Level, datetime], set[datetime]] = {}
        wanted: dict[tuple[Level, datetime], Bucket] = {}
        for bucket in buckets:
            by_partition.setdefault((bucket.level, bucket.period), set()).add(bucket.start)
            wanted[(bucket.level, bucket.start)] = bucket
        runs = [
            (level, period, first, last)
            for (level, period), starts in by_partition.items()
            for first, last in _runs(level, sorted(starts))
        ]
        found: dict[Bucket, list[RollupRow]] = {}
        read = 0
        parameters = [(level.code, period, first, last) for level, period, first, last in runs]
        with unavailable_on_failure("read rollups"):
            results = self._concurrently(self._reads.rollups, parameters)
            for (level, *_), result in zip(runs, results, strict=True):
                for row in result:
                    read += 1
                    row_bucket = wanted.get((level, utc(row.bucket)))
                    if row_bucket is not None:
                        found.setdefault(row_bucket, []).append(
                            RollupRow(row.slot, bool(row.base), loads_counts(row.counts))
                        )
        count_read(rows=read, partitions=len(by_partition), requests=len(runs))
        return found

    # ---- start rows ----

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
            found = sum(
                first_row(result) is not None
                for result in self._concurrently(COUNTRY_START_BETWEEN, parameters)
            )
        count_read(rows=found, partitions=len(parameters), requests=len(parameters))
        return found > 0

    def country_hour_starts(
        self, hours: HourCounts, country: str, not_after: datetime, not_before: datetime, page_size: int
    ) -> list[Iterator[StartRow]]:
        session = self._connection.session()
        # Hours whose counts are known and fit the page are read whole, as many at once as one request holds
        # (Keyspaces' 100 partitions) and as the page needs: a request per hour and shard costs the driver far
        # more than the rows it returns.
        budget = max(FEW_STARTS_PER_HOUR, page_size)
        few = [
            (hour, known)
            for hour, known in hours
            if known is not None
            and known <= budget
            and not_before <= hour
            and Level.HOUR.after(hour) <= not_after
        ]
        group_size = max(1, MAX_IN_VALUES // self._shards)
        shards = list(range(self._shards))
        shard_page = page_size // self._shards + SHARD_PAGE_SLACK
        with unavailable_on_failure("read a country's starts"):
            groups: dict[datetime, _FewHours] = {}
            for group_hours in _groups(few, group_size, budget):
                future = session.execute_async(
                    self._statement(READ_COUNTRY_FEW_STARTS).bind((group_hours, shards, country))
                )
                group = _FewHours(future, country, len(group_hours) * self._shards)
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


def _runs(level: Level, starts: Sequence[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """The first and last bucket start of each run of adjacent buckets, for ordered bucket starts."""
    first = previous = starts[0]
    for start in starts[1:]:
        if start != level.after(previous):
            yield first, previous
            first = start
        previous = start
    yield first, previous


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

    def __init__(self, future: Any, country: str, partitions: int) -> None:
        self._future = future
        self._country = country
        self._partitions = partitions
        self._by_hour: dict[datetime, list[StartRow]] | None = None

    def rows_of(self, hour: datetime) -> Iterator[StartRow]:
        if self._by_hour is None:
            by_hour: dict[datetime, list[StartRow]] = {}
            read = 0
            with unavailable_on_failure("read a country's starts"):
                for row in self._future.result():
                    read += 1
                    if row.player_id is not None:
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


if TYPE_CHECKING:
    from player_sessions.repositories.protocols import StartsStore

    # mypy holds the store to the Protocol every reader takes it as.
    _conforms: type[StartsStore] = CassandraStartsStore
