"""Session starts, their arrival log, marks and rollups on Cassandra / Amazon Keyspaces (prepared statements
only). Every read counts its rows and partitions (player_sessions.read_meter)."""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchType, PreparedStatement

from player_sessions.cassandra_connection import BULK_PROFILE, CassandraConnection
from player_sessions.models import Arrival, RollupRow, StartKey, StartRow, from_epoch_ms, to_epoch_ms
from player_sessions.read_meter import count_read
from player_sessions.repositories.cassandra_store import execute_all, unavailable_on_failure
from player_sessions.time_buckets import Bucket, Level, start_shard
from player_sessions.work_meter import MeteredBatch, metered_session

PROGRESS_NAME = "starts"
READ_PROGRESS = "SELECT slot FROM rollup_progress WHERE name = ?"
# The write's timestamp is the slot itself: the newest slot wins, so a slow builder never moves it back.
WRITE_PROGRESS = "UPDATE rollup_progress USING TIMESTAMP ? AND TTL 0 SET slot = ? WHERE name = ?"
FIRST_ARRIVAL_MINUTE = "SELECT minute FROM arrival_minutes WHERE scope = ? LIMIT 1"
ARRIVAL_MINUTES_BETWEEN = (
    "SELECT minute FROM arrival_minutes WHERE scope = ? AND minute >= ? AND minute <= ? LIMIT ?"
)
READ_ARRIVALS = "SELECT slot, session_id, ts, country FROM start_arrivals WHERE slot IN ? AND shard IN ?"
READ_MARKS = "SELECT session_id, ts, country, slot FROM start_marks WHERE session_id IN ?"
WRITE_MARK = "INSERT INTO start_marks (session_id, ts, country, slot) VALUES (?, ?, ?, ?) USING TTL ?"
CLAIM_FOLD = "INSERT INTO rollup_folds (slot, starts) VALUES (?, ?) IF NOT EXISTS USING TTL ?"
READ_START_ROW = "SELECT session_id FROM session_starts WHERE hour = ? AND shard = ? AND country = ? AND ts = ? AND session_id = ?"
READ_ROLLUPS = (
    "SELECT bucket, slot, base, counts FROM start_count_rollups "
    "WHERE level = ? AND period = ? AND bucket >= ? AND bucket <= ?"
)
WRITE_ROLLUP = (
    "INSERT INTO start_count_rollups (level, period, bucket, slot, base, counts) VALUES (?, ?, ?, ?, ?, ?) "
    "USING TTL ?"
)
DELETE_ROLLUPS_BEFORE = (
    "DELETE FROM start_count_rollups WHERE level = ? AND period = ? AND bucket = ? AND slot < ?"
)
EDGE_COUNTRIES = (
    "SELECT country FROM session_starts WHERE hour = ? AND shard IN ? AND country IN ? AND ts >= ? AND ts < ?"
)
COUNTRY_START_BETWEEN = "SELECT ts FROM session_starts WHERE hour IN ? AND shard IN ? AND country = ? AND ts > ? AND ts <= ? LIMIT 1"
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
ARRIVAL_SCOPE = "all"

CONCURRENCY = 32
BATCH_STATEMENTS = 30
"""Statements in one unlogged batch, all of one partition (Amazon Keyspaces takes at most 30)."""
FEW_STARTS_PER_HOUR = 50
"""An hour whose rollups count at most this many starts of the country is read with others in one request."""
MAX_IN_VALUES = 100
"""Keyspaces takes at most 100 values in an IN, and counts the product of two IN lists."""
SHARD_PAGE_SLACK = 8
"""Rows per shard fetched beyond an even share of the page: shards hold a session's start by its id's hash,
so each holds about a 1/shards share of any hour's newest starts."""


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


class CassandraStartsStore:
    def __init__(self, connection: CassandraConnection, shards: int) -> None:
        self._connection = connection
        self._shards = shards
        self._prepared: dict[str, PreparedStatement] = {}

    def _statement(self, cql: str) -> PreparedStatement:
        statement = self._prepared.get(cql)
        if statement is None:
            statement = self._connection.prepare(cql)
            self._prepared[cql] = statement
        return statement

    def _concurrently(self, cql: str, parameters: Iterable[tuple[Any, ...]], bulk: bool = False) -> list[Any]:
        statement = self._statement(cql)
        pairs = [(statement, p) for p in parameters]
        if not pairs:
            return []
        return execute_all(
            metered_session(self._connection.session()),
            pairs,
            concurrency=CONCURRENCY,
            execution_profile=BULK_PROFILE if bulk else EXEC_PROFILE_DEFAULT,
        )

    # ---- the builder's watermark and the arrival log ----

    def read_progress(self) -> int | None:
        with unavailable_on_failure("read the rollup watermark"):
            row = self._connection.session().execute(self._statement(READ_PROGRESS), (PROGRESS_NAME,)).one()
        count_read(rows=1 if row else 0, partitions=1)
        return row.slot if row is not None else None

    def write_progress(self, slot: int) -> None:
        with unavailable_on_failure("move the rollup watermark"):
            self._connection.session().execute(
                self._statement(WRITE_PROGRESS), (slot * 1_000_000, slot, PROGRESS_NAME)
            )

    def first_arrival_minute(self) -> datetime | None:
        with unavailable_on_failure("read the arrival minutes"):
            row = (
                self._connection.session()
                .execute(self._statement(FIRST_ARRIVAL_MINUTE), (ARRIVAL_SCOPE,))
                .one()
            )
        count_read(rows=1 if row else 0, partitions=1)
        return _utc(row.minute) if row is not None else None

    def arrival_minutes_between(self, first: datetime, last: datetime, limit: int) -> list[datetime]:
        with unavailable_on_failure("read the arrival minutes"):
            rows = list(
                self._connection.session().execute(
                    self._statement(ARRIVAL_MINUTES_BETWEEN), (ARRIVAL_SCOPE, first, last, limit)
                )
            )
        count_read(rows=len(rows), partitions=1)
        return [_utc(row.minute) for row in rows]

    def read_arrivals(self, slots: Sequence[int]) -> list[Arrival]:
        shards = list(range(self._shards))
        per_request = max(1, MAX_IN_VALUES // self._shards)
        groups = [list(group) for group in _chunks(list(slots), per_request)]
        arrivals: list[Arrival] = []
        with unavailable_on_failure("read the arrivals"):
            for result in self._concurrently(
                READ_ARRIVALS, ((group, shards) for group in groups), bulk=len(groups) > CONCURRENCY
            ):
                for row in result:
                    arrivals.append(Arrival(row.slot, StartKey(row.session_id, _utc(row.ts), row.country)))
        count_read(rows=len(arrivals), partitions=len(slots) * self._shards, requests=len(groups))
        return arrivals

    # ---- marks and fold records ----

    def read_marks(self, keys: Sequence[StartKey]) -> dict[StartKey, int]:
        wanted = set(keys)
        session_ids = list(dict.fromkeys(key.session_id for key in keys))
        marks: dict[StartKey, int] = {}
        read = 0
        with unavailable_on_failure("read the start marks"):
            for result in self._concurrently(
                READ_MARKS, ((list(group),) for group in _chunks(session_ids, MAX_IN_VALUES))
            ):
                for row in result:
                    read += 1
                    key = StartKey(row.session_id, _utc(row.ts), row.country)
                    if key in wanted:
                        marks[key] = row.slot
        count_read(rows=read, partitions=len(session_ids), requests=-(-len(session_ids) // MAX_IN_VALUES))
        return marks

    def write_marks(self, marks: Sequence[tuple[StartKey, int, int]]) -> None:
        with unavailable_on_failure("write the start marks"):
            self._concurrently(
                WRITE_MARK,
                ((key.session_id, key.ts, key.country, slot, ttl) for key, slot, ttl in marks),
                bulk=len(marks) > 100,
            )

    def stored_starts(self, keys: Sequence[StartKey]) -> set[StartKey]:
        parameters = [
            (
                key.ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0),
                start_shard(key.session_id, self._shards),
                key.country,
                key.ts,
                key.session_id,
            )
            for key in keys
        ]
        with unavailable_on_failure("read the start rows"):
            results = self._concurrently(READ_START_ROW, parameters, bulk=len(parameters) > 100)
        stored = {key for key, result in zip(keys, results, strict=True) if result.one() is not None}
        count_read(rows=len(stored), partitions=len(keys), requests=len(keys))
        return stored

    def claim_fold(self, slot: int, keys: Sequence[StartKey], ttl_seconds: int) -> list[StartKey]:
        record = json.dumps(
            [[str(key.session_id), to_epoch_ms(key.ts), key.country] for key in keys], separators=(",", ":")
        )
        statement = self._statement(CLAIM_FOLD).bind((slot, record, ttl_seconds))
        statement.serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL
        with unavailable_on_failure("record a fold"):
            row = self._connection.session().execute(statement).one()
        if row is None or row[0]:  # [applied]
            return list(keys)
        return [
            StartKey(UUID(sid), from_epoch_ms(ms), country) for sid, ms, country in json.loads(row.starts)
        ]

    # ---- rollups ----

    def read_rollups(self, buckets: Sequence[Bucket]) -> dict[Bucket, list[RollupRow]]:
        """One range read per partition, over the span of the wanted buckets in it."""
        spans: dict[tuple[Level, datetime], tuple[datetime, datetime]] = {}
        wanted: dict[tuple[Level, datetime], Bucket] = {}
        for bucket in buckets:
            key = (bucket.level, bucket.period)
            first, last = spans.get(key, (bucket.start, bucket.start))
            spans[key] = (min(first, bucket.start), max(last, bucket.start))
            wanted[(bucket.level, bucket.start)] = bucket
        found: dict[Bucket, list[RollupRow]] = {}
        read = 0
        parameters = [(level.code, period, first, last) for (level, period), (first, last) in spans.items()]
        with unavailable_on_failure("read rollups"):
            for (level, _period), result in zip(
                spans, self._concurrently(READ_ROLLUPS, parameters), strict=True
            ):
                for row in result:
                    read += 1
                    row_bucket = wanted.get((level, _utc(row.bucket)))
                    if row_bucket is not None:
                        found.setdefault(row_bucket, []).append(
                            RollupRow(row.slot, bool(row.base), json.loads(row.counts))
                        )
        count_read(rows=read, partitions=len(spans), requests=len(spans))
        return found

    def write_deltas(self, slot: int, deltas: Sequence[tuple[Bucket, dict[str, int], int]]) -> None:
        """Deltas of one partition go as unlogged batches of at most BATCH_STATEMENTS (Keyspaces' limit)."""
        statement = self._statement(WRITE_ROLLUP)
        by_partition: dict[tuple[Level, datetime], list[tuple[Any, ...]]] = {}
        for bucket, counts, ttl in deltas:
            by_partition.setdefault((bucket.level, bucket.period), []).append(
                (bucket.level.code, bucket.period, bucket.start, slot, False, _counts_json(counts), ttl)
            )
        requests: list[tuple[Any, Any]] = []
        for rows in by_partition.values():
            for group in _chunks(rows, BATCH_STATEMENTS):
                if len(group) == 1:
                    requests.append((statement, group[0]))
                    continue
                batch = MeteredBatch(batch_type=BatchType.UNLOGGED)
                for row in group:
                    batch.add(statement, row)
                requests.append((batch, None))
        if not requests:
            return
        with unavailable_on_failure("write rollup deltas"):
            execute_concurrent(
                metered_session(self._connection.session()),
                requests,
                concurrency=CONCURRENCY,
                raise_on_first_error=True,
                execution_profile=BULK_PROFILE if len(requests) > 100 else EXEC_PROFILE_DEFAULT,
            )

    def write_bases(self, bases: Sequence[tuple[Bucket, int, dict[str, int], int]]) -> None:
        """Each base and the removal of the rows before it go as one single-partition batch (one timestamp: the
        range removal stops short of the base's own row), all buckets at once."""
        session = self._connection.session()
        write, remove = self._statement(WRITE_ROLLUP), self._statement(DELETE_ROLLUPS_BEFORE)
        batches = []
        for bucket, slot, counts, ttl in bases:
            key = (bucket.level.code, bucket.period, bucket.start)
            batch = MeteredBatch(batch_type=BatchType.UNLOGGED)
            batch.add(write, (*key, slot, True, _counts_json(counts), ttl))
            batch.add(remove, (*key, slot))
            batches.append((batch, None))
        if not batches:
            return
        with unavailable_on_failure("compact rollups"):
            execute_concurrent(
                metered_session(session),
                batches,
                concurrency=CONCURRENCY,
                raise_on_first_error=True,
                execution_profile=BULK_PROFILE if len(batches) > 100 else EXEC_PROFILE_DEFAULT,
            )

    # ---- start rows ----

    def edge_country_counts(
        self, hour: datetime, countries: Sequence[str], since: datetime, before: datetime
    ) -> Counter[str]:
        shards = list(range(self._shards))
        per_request = max(1, MAX_IN_VALUES // self._shards)
        counts: Counter[str] = Counter()
        groups = list(_chunks(list(countries), per_request))
        with unavailable_on_failure("count the starts of a second"):
            for result in self._concurrently(
                EDGE_COUNTRIES, ((hour, shards, list(g), since, before) for g in groups)
            ):
                counts.update(row.country for row in result)
        count_read(rows=sum(counts.values()), partitions=self._shards, requests=len(groups))
        return counts

    def has_country_start_between(self, country: str, after: datetime, until: datetime) -> bool:
        hours = []
        hour = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while hour <= until:
            hours.append(hour)
            hour = Level.HOUR.after(hour)
        shards = list(range(self._shards))
        with unavailable_on_failure("look for new starts"):
            row = (
                self._connection.session()
                .execute(self._statement(COUNTRY_START_BETWEEN), (hours, shards, country, after, until))
                .one()
            )
        count_read(rows=1 if row else 0, partitions=len(hours) * self._shards)
        return row is not None

    def country_hour_starts(
        self,
        hours: Sequence[tuple[datetime, int | None]],
        country: str,
        not_after: datetime,
        not_before: datetime,
        page_size: int,
    ) -> list[Iterator[StartRow]]:
        session = self._connection.session()
        # Hours whose counts are known and fit the page are read whole, as many at once as one request holds
        # (Keyspaces' 100 partitions) and as the page needs: a request per hour and shard costs the driver far
        # more than the rows it returns.
        budget = max(FEW_STARTS_PER_HOUR, page_size)
        few = [(hour, known) for hour, known in hours if known is not None and known <= budget]
        group_size = max(1, MAX_IN_VALUES // self._shards)
        shards = list(range(self._shards))
        shard_page = page_size // self._shards + SHARD_PAGE_SLACK
        with unavailable_on_failure("read a country's starts"):
            groups: dict[datetime, _FewHours] = {}
            for group_hours in _groups(few, group_size, budget):
                future = session.execute_async(
                    self._statement(READ_COUNTRY_FEW_STARTS).bind(
                        (group_hours, shards, country, not_after, not_before)
                    )
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
            yield from heapq.merge(*streams, key=_newest_first)


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
    """The rows of one request over several hours and every shard, read whole on first use, by hour."""

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
                    by_hour.setdefault(_utc(row.hour), []).append(
                        StartRow(_utc(row.ts), row.session_id, row.player_id, self._country)
                    )
            count_read(rows=read, partitions=self._partitions)
            for rows in by_hour.values():
                rows.sort(key=_newest_first)
            self._by_hour = by_hour
        yield from self._by_hour.get(hour, [])


def _start_rows(result: Any, country: str) -> Iterator[StartRow]:
    for row in result:
        count_read(rows=1, partitions=0, requests=0)
        yield StartRow(_utc(row.ts), row.session_id, row.player_id, country)


def _newest_first(row: StartRow) -> float:
    return -row.ts.timestamp()


def _counts_json(counts: dict[str, int]) -> str:
    return json.dumps(counts, separators=(",", ":"), sort_keys=True)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


if TYPE_CHECKING:
    from player_sessions.repositories.protocols import RollupStore

    # mypy holds the store to the Protocol the builder (and, through it, every reader) takes it as.
    _conforms: type[RollupStore] = CassandraStartsStore
