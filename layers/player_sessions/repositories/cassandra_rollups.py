"""What the rollup builder writes on Cassandra / Amazon Keyspaces: the watermark, the marks of counted starts,
each fold's record, the rollups' deltas and their compaction into bases. It reads through the readers' store
(repositories.cassandra_starts) and adds the writes, each idempotent and visible before the next step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType

from player_sessions.cassandra_connection import BULK_PROFILE
from player_sessions.errors import DatabaseUnavailableError
from player_sessions.histograms import dumps_counts
from player_sessions.models import StartKey
from player_sessions.repositories.cassandra_helpers import (
    chunks,
    counted_first_row,
    counted_first_rows,
    first_row,
    unavailable_on_failure,
)
from player_sessions.repositories.cassandra_start_rows import CONCURRENCY
from player_sessions.repositories.cassandra_starts import (
    FAMILY_READS,
    FIRST_ARRIVAL_MINUTE,
    READ_PROGRESS,
    CassandraStartsStore,
    fold_record,
    fold_record_keys,
    progress_name,
)
from player_sessions.repositories.cql import Cql, FamilyStatements
from player_sessions.schema import FAMILIES, STARTS
from player_sessions.time_buckets import Bucket, Level, start_shard

# The watermark only moves forward, by conditional writes: a slower builder's older slot never wins, whatever
# the order the writes arrive in (no client timestamp, which Keyspaces takes only within 2 days of now).
# Each write takes the table's default TTL, the retention (a TTL of 0 per row Keyspaces does not document): a
# part's watermark moves every slot while its builder runs, so it expires only after a year without a builder,
# by when every row it describes has expired too.
ADVANCE_PROGRESS = Cql("UPDATE rollup_progress SET slot = ? WHERE name = ? IF slot < ?")
START_PROGRESS = Cql("INSERT INTO rollup_progress (name, slot) VALUES (?, ?) IF NOT EXISTS")
WRITE_MARK = Cql("INSERT INTO start_marks (session_id, ts, country, slot) VALUES (?, ?, ?, ?) USING TTL ?")
CLAIM_FOLD = Cql("INSERT INTO rollup_folds (slot, starts) VALUES (?, ?) IF NOT EXISTS USING TTL ?")
READ_START_ROW = Cql(
    "SELECT session_id FROM session_starts "
    "WHERE hour = ? AND shard = ? AND country = ? AND ts = ? AND session_id = ?"
)
WRITE_ROLLUP = Cql(
    "INSERT INTO start_count_rollups (level, period, bucket, slot, base, counts) VALUES (?, ?, ?, ?, ?, ?) "
    "USING TTL ?"
)
DELETE_ROLLUPS_BEFORE = Cql(
    "DELETE FROM start_count_rollups WHERE level = ? AND period = ? AND bucket = ? AND slot < ?"
)


@dataclass(frozen=True)
class FamilyWrites(FamilyStatements):
    """The builder's writes on one rollup family's tables."""

    mark: Cql
    claim_fold: Cql
    rollup: Cql
    delete_rollups_before: Cql
    TEMPLATES = (WRITE_MARK, CLAIM_FOLD, WRITE_ROLLUP, DELETE_ROLLUPS_BEFORE)


FAMILY_WRITES = {family: FamilyWrites.of(family) for family in FAMILIES}

BUILDER_STATEMENTS = (
    READ_PROGRESS,
    ADVANCE_PROGRESS,
    START_PROGRESS,
    FIRST_ARRIVAL_MINUTE,
    READ_START_ROW,
    *(
        statement
        for family in FAMILIES
        for statement in (
            FAMILY_READS[family].arrivals,
            # (after a failed IN read of them, one partition per request)
            FAMILY_READS[family].partition_arrivals,
            FAMILY_READS[family].marks,
            # (a claim that was not applied is followed by this read, never by the row the claim answers with)
            FAMILY_READS[family].fold_record,
            FAMILY_READS[family].rollups,
            *FAMILY_WRITES[family].statements,
        )
    ),
)
"""What folding arrivals into the rollups of every family sends (protocols.RollupStore, the part the builder
calls)."""
BATCH_STATEMENTS = 30
"""Statements in one unlogged batch, all of one partition (Amazon Keyspaces takes at most 30)."""
PROGRESS_ATTEMPTS = 5
"""Conditional writes (the watermark, a fold's record) tried this many times before the step gives up (503)."""


class CassandraRollupStore(CassandraStartsStore):
    """The readers' store, and the builder's writes, of one rollup family."""

    @property
    def _writes(self) -> FamilyWrites:
        return FAMILY_WRITES[self.family]

    def write_progress(self, part: int, slot: int) -> None:
        """Moves the watermark forward to ``slot``: a conditional update, or the first write of it. A condition
        that fails because a faster builder moved it further (or created it meanwhile) is read back to tell."""
        name = progress_name(part, self.family)
        session = self._connection.session()
        with unavailable_on_failure("move the rollup watermark"):
            for _ in range(PROGRESS_ATTEMPTS):
                if _applied(session.execute(self._statement(ADVANCE_PROGRESS), (slot, name, slot))):
                    return
                if _applied(session.execute(self._statement(START_PROGRESS), (name, slot))):
                    return
                current = self.read_progress([part]).get(part)
                if current is not None and current >= slot:
                    return
        raise DatabaseUnavailableError(
            "Cassandra could not move the rollup watermark: conditions kept failing"
        )

    def write_marks(self, marks: Sequence[tuple[StartKey, int, int]]) -> None:
        with unavailable_on_failure("write the start marks"):
            self._concurrently(
                self._writes.mark,
                ((key.session_id, key.ts, key.country, slot, ttl) for key, slot, ttl in marks),
                bulk=len(marks) > 100,
            )

    def stored_starts(self, keys: Sequence[StartKey]) -> set[StartKey]:
        if self.family is not STARTS:
            # Another family's record is written only once both halves of its session are acknowledged.
            return set(keys)
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
        rows = counted_first_rows(results)
        return {key for key, row in zip(keys, rows, strict=True) if row is not None}

    def claim_fold(self, fold: int, keys: Sequence[StartKey], ttl_seconds: int) -> list[StartKey]:
        record = fold_record(keys)
        session = self._connection.session()
        with unavailable_on_failure("record a fold"):
            for _ in range(PROGRESS_ATTEMPTS):
                if _applied(
                    session.execute(self._statement(self._writes.claim_fold), (fold, record, ttl_seconds))
                ):
                    return list(keys)
                # Another builder recorded this slot's fold first: its record is what counts.
                row = counted_first_row(session.execute(self._statement(self._reads.fold_record), (fold,)))
                if row is not None:
                    return fold_record_keys(row.starts)
        raise DatabaseUnavailableError("Cassandra could not record a fold: its record kept vanishing")

    def write_deltas(self, fold: int, deltas: Sequence[tuple[Bucket, dict[str, int], int]]) -> None:
        """Deltas of one partition go as unlogged batches of at most BATCH_STATEMENTS (Keyspaces' limit)."""
        statement = self._statement(self._writes.rollup)
        by_partition: dict[tuple[Level, datetime], list[tuple[Any, ...]]] = {}
        for bucket, counts, ttl in deltas:
            by_partition.setdefault((bucket.level, bucket.period), []).append(
                (bucket.level.code, bucket.period, bucket.start, fold, False, dumps_counts(counts), ttl)
            )
        requests: list[tuple[Any, Any]] = []
        for rows in by_partition.values():
            for group in chunks(rows, BATCH_STATEMENTS):
                if len(group) == 1:
                    requests.append((statement, group[0]))
                    continue
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for row in group:
                    batch.add(statement, row)
                requests.append((batch, None))
        if not requests:
            return
        with unavailable_on_failure("write rollup deltas"):
            execute_concurrent(
                self._connection.session(),
                requests,
                concurrency=CONCURRENCY,
                raise_on_first_error=True,
                execution_profile=BULK_PROFILE if len(requests) > 100 else EXEC_PROFILE_DEFAULT,
            )

    def write_bases(self, bases: Sequence[tuple[Bucket, int, dict[str, int], int]]) -> None:
        """Two acknowledged steps, never one batch (Keyspaces may apply part of an unlogged batch): every base
        row first, then the removal of each bucket's rows before its base. Between the two, a reader sums the
        base and ignores the rows it covers (domain.country_starts.rollups); the removal stops short of the base's own slot."""
        write, remove = (
            self._statement(self._writes.rollup),
            self._statement(self._writes.delete_rollups_before),
        )
        if not bases:
            return
        keys = [((b.level.code, b.period, b.start), slot) for b, slot, _, _ in bases]
        profile = BULK_PROFILE if len(bases) > 100 else EXEC_PROFILE_DEFAULT
        with unavailable_on_failure("compact rollups"):
            execute_concurrent(
                self._connection.session(),
                [
                    (write, (*key, slot, True, dumps_counts(counts), ttl))
                    for (key, slot), (_, _, counts, ttl) in zip(keys, bases, strict=True)
                ],
                concurrency=CONCURRENCY,
                raise_on_first_error=True,
                execution_profile=profile,
            )
            execute_concurrent(
                self._connection.session(),
                [(remove, (*key, slot)) for key, slot in keys],
                concurrency=CONCURRENCY,
                raise_on_first_error=True,
                execution_profile=profile,
            )


def _applied(result: Any) -> bool:
    """Whether a conditional write took effect (its answer's ``[applied]``, the one value relied on)."""
    row = first_row(result)
    return bool(row is not None and row[0])


if TYPE_CHECKING:
    from player_sessions.repositories.protocols import RollupStore

    # mypy holds the store to the Protocol the builder takes it as.
    _conforms: type[RollupStore] = CassandraRollupStore
