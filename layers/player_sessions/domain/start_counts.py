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
from player_sessions.models import TOTAL, RollupRow
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
        self._covered: dict[tuple[Level, datetime], tuple[datetime, datetime]] = {}
        self.built: list[Bucket] = []

    def counts(self, buckets: Iterable[Bucket]) -> dict[Bucket, Counter[str]]:
        """Each bucket's starts per country, from valid rollups or freshly built ones."""
        wanted = list(buckets)
        self._read_partitions(wanted)
        found: dict[Bucket, Counter[str]] = {}
        stale: list[Bucket] = []
        for bucket in wanted:
            rollups, revisions = self._partitions[(bucket.level, bucket.period)]
            valid = _valid_counts(rollups.get(bucket.start), revisions.get(bucket.start))
            if valid is None:
                stale.append(bucket)
            else:
                found[bucket] = valid
        if stale:
            found.update(self._build(stale))
        return found

    def country_counts(self, country: str, buckets: Iterable[Bucket]) -> dict[Bucket, int]:
        """One country's starts in each bucket, reading two rollup rows per bucket: the country's and the
        total. The total row is written after every country row of its build, so a total row under the bucket's
        current revision proves the country's row of that build is there (or that the country had none). A
        bucket without such proof is read whole and, if stale, built, as ``counts`` does."""
        wanted = list(buckets)
        partitions: dict[tuple[Level, datetime], list[datetime]] = {}
        for bucket in wanted:
            partitions.setdefault((bucket.level, bucket.period), []).append(bucket.start)
        rollups, revisions = self._store.country_rollups_and_revisions(
            country, [(level, period, starts) for (level, period), starts in partitions.items()])
        found: dict[Bucket, int] = {}
        unproven: list[Bucket] = []
        for bucket in wanted:
            rows = rollups.get((bucket.level, bucket.period), {}).get(bucket.start, {})
            revision = revisions.get((bucket.level, bucket.period), {}).get(bucket.start)
            total, mine = rows.get(TOTAL), rows.get(country)
            if total is None or total.revision != revision or (mine is not None and mine.revision != revision):
                unproven.append(bucket)
            else:
                found[bucket] = mine.starts if mine is not None else 0
        if unproven:
            counted = self.counts(unproven)
            found.update({bucket: counted[bucket][country] for bucket in unproven})
        return found

    def _read_partitions(self, buckets: list[Bucket]) -> None:
        """Reads, all at once, the bucket ranges of rollup partitions not read yet in this request. A listing
        asks for older buckets as it pages back: only the part of the range beyond what was read is read then
        (one range per partition and call; the bucket at the seam is read again, which changes nothing)."""
        ranges: dict[tuple[Level, datetime], tuple[datetime, datetime]] = {}
        for bucket in buckets:
            first, last = ranges.get((bucket.level, bucket.period), (bucket.start, bucket.start))
            ranges[(bucket.level, bucket.period)] = (min(first, bucket.start), max(last, bucket.start))
        missing = []
        for (level, period), (first, last) in ranges.items():
            covered = self._covered.get((level, period))
            if covered is not None:
                if covered[0] <= first and last <= covered[1]:
                    continue
                if first >= covered[0]:
                    first = covered[1]
                elif last <= covered[1]:
                    last = covered[0]
                # else: beyond both ends, the whole range is read again
            missing.append((level, period, first, last))
        if missing:
            rollups, revisions = self._store.rollups_and_revisions(missing)
            for level, period, first, last in missing:
                known_rollups, known_revisions = self._partitions.get((level, period), ({}, {}))
                self._partitions[(level, period)] = ({**known_rollups, **rollups.get((level, period), {})},
                                                     {**known_revisions, **revisions.get((level, period), {})})
                covered = self._covered.get((level, period), (first, last))
                self._covered[(level, period)] = (min(first, covered[0]), max(last, covered[1]))

    def _build(self, stale: list[Bucket]) -> dict[Bucket, Counter[str]]:
        """Counts stale buckets from the level below and stores them under the revisions read *before*
        counting: a late start written meanwhile changes the revision again, so what is stored here is only
        ever used if nothing changed while it was being counted. All stale buckets, whatever their partition,
        are counted together, so a cold year costs a few rounds of concurrent reads, not one per day."""
        built: dict[Bucket, Counter[str]] = {}
        hours = [bucket for bucket in stale if bucket.level is Level.HOUR]
        if hours:
            counts = self._store.hour_country_counts([bucket.start for bucket in hours])
            built.update({bucket: counts[bucket.start] for bucket in hours})
        coarse = [bucket for bucket in stale if bucket.level is not Level.HOUR]
        if coarse:
            child_counts = self.counts(child for bucket in coarse for child in children(bucket))
            for bucket in coarse:
                built[bucket] = sum((child_counts[child] for child in children(bucket)), Counter())
        rollups = []
        for bucket, counts in built.items():
            ttl = ttl_seconds(bucket_end(bucket), self._now, self._retention)
            if ttl > 0:
                revision = self._partitions[(bucket.level, bucket.period)][1].get(bucket.start)
                rollups.append((bucket, dict(counts), revision, ttl))
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
    total.update(store.country_counts_between(plan.row_hours, window.start, window.end))
    return total, settled
