"""What counting and listing session starts read on Cassandra / Amazon Keyspaces: the builder's watermark, the
arrival log's unfolded tail, the marks and fold records of counted starts and the rollups, on the start rows'
reads (repositories.cassandra_start_rows); prepared statements only. Every read counts its rows and partitions
(player_sessions.read_counts). The builder's writes are in repositories.cassandra_rollups."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from player_sessions.cassandra_connection import CassandraConnection
from player_sessions.histograms import loads_counts
from player_sessions.models import (
    Arrival,
    RollupRow,
    Seen,
    StartKey,
    from_epoch_ms,
    to_epoch_ms,
)
from player_sessions.read_counts import count_read
from player_sessions.repositories.cassandra_helpers import (
    MAX_IN_VALUES,
    Reads,
    by_key,
    chunks,
    counted_first_row,
    in_or_one_each,
    send_all,
    unavailable_on_failure,
    utc,
)
from player_sessions.repositories.cassandra_start_rows import (
    CONCURRENCY,
    START_ROW_STATEMENTS,
    CassandraStartRows,
)
from player_sessions.repositories.cql import Cql, FamilyStatements
from player_sessions.schema import FAMILIES, STARTS, RollupFamily
from player_sessions.time_buckets import Bucket, Level

READ_PROGRESS = Cql("SELECT name, slot FROM rollup_progress WHERE name IN ?")
FIRST_ARRIVAL_MINUTE = Cql("SELECT minute FROM arrival_minutes WHERE scope = ? LIMIT 1")
ARRIVAL_MINUTES_BETWEEN = Cql(
    "SELECT minute FROM arrival_minutes WHERE scope = ? AND minute >= ? AND minute <= ? LIMIT ?"
)
READ_ARRIVALS = Cql(
    "SELECT slot, session_id, ts, country, seen_through, seen_fold FROM start_arrivals "
    "WHERE slot IN ? AND shard IN ?"
)
READ_PARTITION_ARRIVALS = Cql(
    "SELECT slot, session_id, ts, country, seen_through, seen_fold FROM start_arrivals WHERE slot = ? AND shard = ?"
)
READ_ARRIVALS_UP_TO = Cql(
    "SELECT slot, session_id, ts, country, seen_through, seen_fold FROM start_arrivals "
    "WHERE slot IN ? AND shard IN ? LIMIT ?"
)
READ_PARTITION_ARRIVALS_UP_TO = Cql(
    "SELECT slot, session_id, ts, country, seen_through, seen_fold FROM start_arrivals "
    "WHERE slot = ? AND shard = ? LIMIT ?"
)
READ_MARKS = Cql("SELECT session_id, ts, country, slot FROM start_marks WHERE session_id IN ?")
READ_SESSION_MARKS = Cql("SELECT session_id, ts, country, slot FROM start_marks WHERE session_id = ?")
READ_FOLD_RECORDS = Cql("SELECT slot, starts FROM rollup_folds WHERE slot IN ?")
READ_FOLD_RECORD = Cql("SELECT slot, starts FROM rollup_folds WHERE slot = ?")
READ_ROLLUPS = Cql(
    "SELECT bucket, slot, base, counts FROM start_count_rollups "
    "WHERE level = ? AND period = ? AND bucket >= ? AND bucket <= ?"
)


@dataclass(frozen=True)
class FamilyReads(FamilyStatements):
    """The reads of one rollup family's tables: the starts family's statements above, on its own tables."""

    arrivals: Cql
    partition_arrivals: Cql
    arrivals_up_to: Cql
    partition_arrivals_up_to: Cql
    marks: Cql
    session_marks: Cql
    fold_records: Cql
    fold_record: Cql
    rollups: Cql
    TEMPLATES = (
        READ_ARRIVALS,
        READ_PARTITION_ARRIVALS,
        READ_ARRIVALS_UP_TO,
        READ_PARTITION_ARRIVALS_UP_TO,
        READ_MARKS,
        READ_SESSION_MARKS,
        READ_FOLD_RECORDS,
        READ_FOLD_RECORD,
        READ_ROLLUPS,
    )


FAMILY_READS = {family: FamilyReads.of(family) for family in FAMILIES}
READER_STATEMENTS = (
    READ_PROGRESS,
    FIRST_ARRIVAL_MINUTE,
    ARRIVAL_MINUTES_BETWEEN,
    *(
        statement
        for reads in FAMILY_READS.values()
        for statement in reads.statements
        # (a reader reads the arrivals up to its cap; the builder reads them whole)
        if statement not in (reads.fold_records, reads.fold_record, reads.arrivals, reads.partition_arrivals)
    ),
    # Only the starts' arrivals carry what ingest read before them (domain.country_starts.seen), so only their
    # readers read fold records.
    FAMILY_READS[STARTS].fold_records,
    FAMILY_READS[STARTS].fold_record,
    *START_ROW_STATEMENTS,
)
"""What counting and listing starts, and the live-ops figures, send (protocols.StartsStore)."""

FOLD_RECORDS_KEPT = 512
"""Fold records a store keeps once read (a reader asks for the last seconds' folds, a few per part a second)."""


def progress_name(part: int, family: RollupFamily = STARTS) -> str:
    """The name of a part's watermark row: ``<family>:<part>``."""
    return f"{family.name}:{part}"


def watermarks_of(rows: Iterable[Any], names: dict[str, int]) -> dict[int, int]:
    """Each part's watermark, from rows of READ_PROGRESS (``names``: each row name's part)."""
    return {names[row.name]: row.slot for row in rows}


def fold_record(keys: Sequence[StartKey]) -> str:
    """A fold record's ``starts``: the keys it counts, as JSON."""
    return json.dumps(
        [[str(key.session_id), to_epoch_ms(key.ts), key.country] for key in keys], separators=(",", ":")
    )


def fold_record_keys(record: str) -> list[StartKey]:
    return [StartKey(UUID(sid), from_epoch_ms(ms), country) for sid, ms, country in json.loads(record)]


def _arrival(row: Any) -> Arrival:
    return Arrival(
        row.slot,
        StartKey(row.session_id, utc(row.ts), row.country),
        None if row.seen_through is None else Seen(row.seen_through, row.seen_fold),
    )


class CassandraStartsStore(CassandraStartRows):
    """A rollup family's reads (``family``), on the start rows' reads (which belong to the starts family only)."""

    def __init__(self, connection: CassandraConnection, shards: int, family: RollupFamily = STARTS) -> None:
        super().__init__(connection, shards)
        self.family = family
        self._reads = FAMILY_READS[family]
        self._fold_records: dict[int, frozenset[StartKey]] = {}

    def _in_reads_in_bulk(self, cql: Cql, parameters: list[tuple[Any, ...]], in_reads: bool) -> list[Any]:
        """``IN`` reads, when more go out than at once, on the bulk profile, whose timeout is longer."""
        return self._concurrently(cql, parameters, bulk=in_reads and len(parameters) > CONCURRENCY)

    def _read_in_bulk(
        self,
        what: str,
        in_reads: Reads,
        one_each: Reads,
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
        return watermarks_of(rows, names)

    def first_arrival_minute(self) -> datetime | None:
        with unavailable_on_failure("read the arrival minutes"):
            row = counted_first_row(
                self._connection.session().execute(
                    self._statement(FIRST_ARRIVAL_MINUTE), (self.family.arrival_scope,)
                )
            )
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
        arrivals = [_arrival(row) for row in rows]
        count_read(rows=len(arrivals), partitions=len(one_each), requests=requests)
        return arrivals

    def read_arrivals_within(
        self, slots: Sequence[int], shards: Sequence[int], at_most: int, *, per_partition: bool = False
    ) -> tuple[list[Arrival], int | None]:
        shards = list(shards)
        kept: list[Arrival] = []
        one_per_request = per_partition
        for group in chunks(list(slots), max(1, MAX_IN_VALUES // len(shards))):
            if not one_per_request:
                arrivals, one_per_request = self._arrivals_fitting(
                    list(group), shards, at_most - len(kept), False
                )
                if arrivals is not None:
                    kept += arrivals
                    continue
            # Past the cap somewhere in these slots, or an IN read failed (then every later read goes one
            # partition per request): the slots one at a time, oldest first, while they fit.
            for slot in group:
                arrivals, _ = self._arrivals_fitting([slot], shards, at_most - len(kept), one_per_request)
                if arrivals is None:
                    return kept, slot
                kept += arrivals
        return kept, None

    def _arrivals_fitting(
        self, slots: list[int], shards: list[int], room: int, per_partition: bool
    ) -> tuple[list[Arrival] | None, bool]:
        """The arrivals of ``slots`` when there are ``room`` or fewer, else None, and whether the read went one
        partition per request (asked, or after a failed ``IN``). Each request asks for one row more than the
        room."""
        limit = room + 1
        in_reads = [(slots, shards, limit)]
        one_each = [(slot, shard, limit) for slot in slots for shard in shards]
        rows, requests = self._read_in_bulk(
            "the arrivals",
            (self._reads.arrivals_up_to, in_reads),
            (self._reads.partition_arrivals_up_to, one_each),
            per_partition,
        )
        count_read(rows=len(rows), partitions=len(one_each), requests=requests)
        fitting = None if len(rows) > room else [_arrival(row) for row in rows]
        return fitting, per_partition or requests > len(in_reads)

    # ---- marks and fold records ----

    def read_marks(self, keys: Sequence[StartKey], *, per_partition: bool = False) -> dict[StartKey, int]:
        wanted = set(keys)
        session_ids = list(dict.fromkeys(key.session_id for key in keys))
        rows, requests = self._read_in_bulk(
            "the start marks",
            *by_key(self._reads.marks, self._reads.session_marks, session_ids),
            per_partition,
        )
        marks: dict[StartKey, int] = {}
        for row in rows:
            key = StartKey(row.session_id, utc(row.ts), row.country)
            if key in wanted:
                marks[key] = row.slot
        count_read(rows=len(rows), partitions=len(session_ids), requests=requests)
        return marks

    def read_fold_records(
        self, folds: Sequence[int], *, per_partition: bool = False
    ) -> dict[int, frozenset[StartKey]]:
        """A record, once written, never changes (the first claim of a fold wins): each one read is kept, the
        newest FOLD_RECORDS_KEPT of them, and read again never; a fold without one is asked for every time."""
        found = {fold: self._fold_records[fold] for fold in folds if fold in self._fold_records}
        wanted = [fold for fold in dict.fromkeys(folds) if fold not in found]
        if wanted:
            rows, requests = self._read_in_bulk(
                "the fold records",
                *by_key(self._reads.fold_records, self._reads.fold_record, wanted),
                per_partition,
            )
            for row in rows:
                found[row.slot] = self._fold_records[row.slot] = frozenset(fold_record_keys(row.starts))
            while len(self._fold_records) > FOLD_RECORDS_KEPT:
                del self._fold_records[min(self._fold_records)]
            count_read(rows=len(rows), partitions=len(wanted), requests=requests)
        return found

    # ---- rollups ----

    def read_rollups(self, buckets: Sequence[Bucket]) -> dict[Bucket, list[RollupRow]]:
        """One range read per run of adjacent wanted buckets in a partition, all at once: a window's two ends
        may share a partition (a 12-hour window's minutes), and one range across them reads all in between."""
        reads = _RollupReads(buckets)
        with unavailable_on_failure("read rollups"):
            return reads.found(self._concurrently(self._reads.rollups, reads.parameters))

    def start_reading_rollups(self, buckets: Sequence[Bucket]) -> Callable[[], dict[Bucket, list[RollupRow]]]:
        reads = _RollupReads(buckets)
        if not reads.parameters:
            return dict
        statement = self._statement(self._reads.rollups)
        with unavailable_on_failure("read rollups"):
            results = send_all(self._connection.session(), [(statement, p) for p in reads.parameters])

        def collect() -> dict[Bucket, list[RollupRow]]:
            with unavailable_on_failure("read rollups"):
                return reads.found(results())

        return collect


class _RollupReads:
    """The range reads that fetch the wanted buckets' rollups, and the rows of their results that are wanted."""

    def __init__(self, buckets: Sequence[Bucket]) -> None:
        by_partition: dict[tuple[Level, datetime], set[datetime]] = {}
        self._wanted: dict[tuple[Level, datetime], Bucket] = {}
        for bucket in buckets:
            by_partition.setdefault((bucket.level, bucket.period), set()).add(bucket.start)
            self._wanted[(bucket.level, bucket.start)] = bucket
        self._partitions = len(by_partition)
        self._levels: list[Level] = []
        self.parameters: list[tuple[Any, ...]] = []
        for (level, period), starts in by_partition.items():
            for first, last in _runs(level, sorted(starts)):
                self._levels.append(level)
                self.parameters.append((level.code, period, first, last))

    def found(self, results: Sequence[Iterable[Any]]) -> dict[Bucket, list[RollupRow]]:
        found: dict[Bucket, list[RollupRow]] = {}
        read = 0
        for level, result in zip(self._levels, results, strict=True):
            for row in result:
                read += 1
                row_bucket = self._wanted.get((level, utc(row.bucket)))
                if row_bucket is not None:
                    found.setdefault(row_bucket, []).append(
                        RollupRow(row.slot, bool(row.base), loads_counts(row.counts))
                    )
        count_read(rows=read, partitions=self._partitions, requests=len(self.parameters))
        return found


def _runs(level: Level, starts: Sequence[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """The first and last bucket start of each run of adjacent buckets, for ordered bucket starts."""
    first = previous = starts[0]
    for start in starts[1:]:
        if start != level.after(previous):
            yield first, previous
            first = start
        previous = start
    yield first, previous


if TYPE_CHECKING:
    from player_sessions.repositories.protocols import StartsStore

    # mypy holds the store to the Protocol every reader takes it as.
    _conforms: type[StartsStore] = CassandraStartsStore
