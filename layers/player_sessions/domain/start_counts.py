"""Exact session-start counts per country over any window, reading a bounded number of partitions.

A window is cut into: the partial hour at its start and the hours that are not settled yet, counted from the
start rows; and the settled whole hours in between, covered by as few hour, day and month rollups as possible.
Rollups are built by readers and used only while their revision matches the bucket's current one; late
starts change that revision (see docs/decisions.md, "Exact counts with bounded reads").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from player_sessions.domain.ingest import ttl_seconds
from player_sessions.models import RollupRow
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import (
    SETTLE_DELAY,
    Bucket,
    Level,
    bucket_end,
    day_bucket,
    hour_bucket,
    hour_of,
    month_bucket,
    next_month,
)

TOTAL = "*"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """``[start, end]``, both inclusive, in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class WindowPlan:
    row_hours: tuple[datetime, ...]
    """Hours counted from rows (filtered to the window): the partial first hour and the unsettled ones."""
    buckets: tuple[Bucket, ...]
    """Settled whole hours, days and months, covering the rest of the window exactly once."""


def plan_window(window: Window, now: datetime) -> WindowPlan:
    first_whole_hour = hour_of(window.start) if window.start == hour_of(window.start) else hour_of(window.start) + HOUR
    first_unsettled_hour = hour_of(now - SETTLE_DELAY)
    rolled_end = min(first_unsettled_hour, hour_of(window.end))
    if first_whole_hour >= rolled_end:
        return WindowPlan(tuple(_hours(hour_of(window.start), hour_of(window.end))), ())
    row_hours = [] if first_whole_hour == window.start else [hour_of(window.start)]
    row_hours += _hours(rolled_end, hour_of(window.end))
    return WindowPlan(tuple(row_hours), tuple(cover_with_buckets(first_whole_hour, rolled_end)))


def cover_with_buckets(start: datetime, end: datetime) -> list[Bucket]:
    """The fewest aligned hour, day and month buckets that tile ``[start, end)`` (both on hour boundaries)."""
    buckets: list[Bucket] = []
    cursor = start
    while cursor < end:
        if cursor == cursor.replace(day=1, hour=0) and next_month(cursor) <= end:
            bucket = month_bucket(cursor)
        elif cursor.hour == 0 and cursor + timedelta(days=1) <= end:
            bucket = day_bucket(cursor)
        else:
            bucket = hour_bucket(cursor)
        buckets.append(bucket)
        cursor = bucket_end(bucket)
    return buckets


def children(bucket: Bucket) -> list[Bucket]:
    """The buckets one level down that tile ``bucket``, oldest first."""
    if bucket.level is Level.MONTH:
        days = (next_month(bucket.start) - bucket.start).days
        return [day_bucket(bucket.start + timedelta(days=d)) for d in range(days)]
    if bucket.level is Level.DAY:
        return [hour_bucket(bucket.start + timedelta(hours=h)) for h in range(24)]
    return []


def _hours(first: datetime, last: datetime) -> list[datetime]:
    hours, cursor = [], first
    while cursor <= last:
        hours.append(cursor)
        cursor += HOUR
    return hours


class RollupReader:
    """Reads (and, where missing or stale, builds) the rollups of settled buckets, for one request."""

    def __init__(self, store: StartsStore, now: datetime, retention: timedelta) -> None:
        self._store = store
        self._now = now
        self._retention = retention
        self._partitions: dict[tuple[Level, datetime], tuple[dict, dict]] = {}
        self.built: list[Bucket] = []

    def counts(self, buckets: Iterable[Bucket]) -> dict[Bucket, Counter[str]]:
        """Each bucket's starts per country, from valid rollups or freshly built ones."""
        by_partition: dict[tuple[Level, datetime], list[Bucket]] = {}
        for bucket in buckets:
            by_partition.setdefault((bucket.level, bucket.period), []).append(bucket)
        found: dict[Bucket, Counter[str]] = {}
        for partition, members in by_partition.items():
            rollups, revisions = self._partition(*partition)
            stale = []
            for bucket in members:
                valid = _valid_counts(rollups.get(bucket.start), revisions.get(bucket.start))
                if valid is None:
                    stale.append(bucket)
                else:
                    found[bucket] = valid
            if stale:
                found.update(self._build(stale, revisions))
        return found

    def _partition(self, level: Level, period: datetime) -> tuple[dict, dict]:
        """One rollup partition and its revisions, read once per request."""
        if (level, period) not in self._partitions:
            self._partitions[(level, period)] = (self._store.rollups(level, period), self._store.revisions(level, period))
        return self._partitions[(level, period)]

    def _build(self, stale: list[Bucket], revisions: dict[datetime, object]) -> dict[Bucket, Counter[str]]:
        """Counts stale buckets from the level below and stores them under the revisions read *before*
        counting: a late start written meanwhile changes the revision again, so what is stored here is only
        ever used if nothing changed while it was being counted."""
        built: dict[Bucket, Counter[str]] = {}
        if stale[0].level is Level.HOUR:
            rows = self._store.hour_starts([bucket.start for bucket in stale])
            for bucket in stale:
                built[bucket] = Counter(row.country for row in rows[bucket.start])
        else:
            child_counts = self.counts(child for bucket in stale for child in children(bucket))
            for bucket in stale:
                built[bucket] = sum((child_counts[child] for child in children(bucket)), Counter())
        rollups = [
            (bucket, dict(counts), revisions.get(bucket.start), ttl)
            for bucket, counts in built.items()
            if (ttl := ttl_seconds(bucket_end(bucket), self._now, self._retention)) > 0
        ]
        self._store.write_rollups(rollups)
        self.built += list(built)
        return built


def _valid_counts(rows: dict[str, RollupRow] | None, revision) -> Counter[str] | None:
    if rows is None or TOTAL not in rows or rows[TOTAL].revision != revision:
        return None
    counts = Counter({country: row.starts for country, row in rows.items()
                      if country != TOTAL and row.revision == revision and row.starts > 0})
    return counts if sum(counts.values()) == rows[TOTAL].starts else None


def count_starts_by_country(window: Window, store: StartsStore, now: datetime, retention: timedelta,
                            settled: Counter[str] | None = None) -> tuple[Counter[str], Counter[str]]:
    """Starts per country in ``window``; returns (all counts, the settled part alone, for caching).

    ``settled``, when given, is the settled part already known (from the cache) and is not read again.
    """
    plan = plan_window(window, now)
    if settled is None:
        settled = Counter()
        for bucket_counts in RollupReader(store, now, retention).counts(plan.buckets).values():
            settled.update(bucket_counts)
    total = Counter(settled)
    for rows in store.hour_starts(plan.row_hours).values():
        total.update(row.country for row in rows if window.start <= row.ts <= window.end)
    return total, settled
