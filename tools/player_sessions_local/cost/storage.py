"""Keyspaces storage at steady state: each table's rows once the retention is full, sized as Keyspaces stores
them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from infra_cdk.constants import RETENTION_DAYS
from player_sessions.domain.completion import ARRIVAL_TTL_SECONDS
from player_sessions.domain.country_starts.builder import FOLD_RECORD_TTL_SECONDS
from player_sessions.schema import FAMILIES, TABLES
from player_sessions.time_buckets import Level
from player_sessions_local.cost.measured import Invocation
from player_sessions_local.work.units import stored_row_bytes

GB = 1024**3
TABLE_RETENTION_DAYS = {
    **{family.folds.name: FOLD_RECORD_TTL_SECONDS // 86_400 for family in FAMILIES},
    **{family.arrivals.name: ARRIVAL_TTL_SECONDS // 86_400 for family in FAMILIES},
}
"""Tables whose rows live shorter than the retention: every rollup family's arrivals and fold records."""


@dataclass(frozen=True)
class TableStorage:
    table: str
    rows: float
    stored_row_bytes: float
    days: int

    @property
    def gb(self) -> float:
        return self.rows * self.stored_row_bytes / GB


ONE_ROW_PER_SESSION = {"sessions"}
"""Written twice per session (its start half and its end half land in one row)."""
BUCKETS_PER_DAY = sum(86_400 / level.seconds for level in Level if level.seconds) + 1 / 30
ROWS_PER_DAY_AT_MOST = {
    "arrival_minutes": 1_440 * len(FAMILIES),
    "rollup_progress": 0,
    **{family.folds.name: 86_400 for family in FAMILIES},
    **{family.rollups.name: 2 * BUCKETS_PER_DAY for family in FAMILIES},
}
"""One row per minute and family, per arrival slot (second), or one row in all (counted as nothing); a rollup
bucket, once compacted, keeps a base row and the deltas folded since (two, say)."""


def steady_state_storage(
    writers: Sequence[tuple[Sequence[Invocation], int]], sessions_per_day: float
) -> list[TableStorage]:
    """Each table's rows once its retention is full: rows written per session start (each group of invocations
    with the starts it handled: the ingest's batches, the builder's folds), times starts per day, times the
    days a row lives; each row at its measured billed size plus the row and TTL metadata. Rollup deltas that
    compaction deletes are bounded by the buckets there are (ROWS_PER_DAY_AT_MOST)."""
    rows_per_start: dict[str, float] = defaultdict(float)
    bytes_per_start: dict[str, float] = defaultdict(float)
    for invocations, starts in writers:
        if not starts:
            continue
        for invocation in invocations:
            for table, work in invocation.work.get("cassandra", {}).items():
                rows_per_start[table] += work.get("rows_written", 0) / starts
                bytes_per_start[table] += work.get("bytes_written", 0) / starts
    storage = []
    for table in TABLES:
        rows = rows_per_start.get(table.name, 0.0)
        if not rows:
            continue
        billed_row = bytes_per_start[table.name] / rows
        if table.name in ONE_ROW_PER_SESSION:
            billed_row, rows = bytes_per_start[table.name], 1.0
        per_day = rows * sessions_per_day
        if table.name in ROWS_PER_DAY_AT_MOST:
            per_day = min(per_day, ROWS_PER_DAY_AT_MOST[table.name])
        days = min(RETENTION_DAYS, TABLE_RETENTION_DAYS.get(table.name, RETENTION_DAYS))
        size = stored_row_bytes(billed_row, columns=len(table.columns), with_ttl=True)
        storage.append(TableStorage(table.name, per_day * days, size, days))
    return storage
