"""One country's session starts in a window, newest first, page by page.

Hours are visited newest first. Settled hours are found through the rollups (a month, day or hour without
starts of the country is skipped without reading it), so a page reads a bounded number of partitions even for
a country with a handful of starts in a year.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from player_sessions.domain.start_counts import RollupReader, Window, children, plan_window
from player_sessions.models import StartRow
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import Bucket, Level, hour_of


@dataclass(frozen=True)
class Position:
    """The last start a page returned: the next page begins right after it."""

    ts: datetime
    session_id: UUID


@dataclass(frozen=True)
class Page:
    starts: list[StartRow]
    next_position: Position | None


def list_country_starts(country: str, window: Window, limit: int, after: Position | None, store: StartsStore,
                        now: datetime, retention: timedelta) -> Page:
    rows: list[StartRow] = []
    for row in _starts_newest_first(country, window, after, store, now, retention, limit + 1):
        if len(rows) == limit:
            last = rows[-1]
            return Page(rows, Position(last.ts, last.session_id))
        rows.append(row)
    return Page(rows, None)


MAX_HOURS_AT_ONCE = 100
"""Hours read concurrently in one round: enough to fill a page of a country with one start per hour."""


def _starts_newest_first(country: str, window: Window, after: Position | None, store: StartsStore,
                         now: datetime, retention: timedelta, page_size: int) -> Iterator[StartRow]:
    newest = min(window.end, after.ts) if after else window.end
    for hours in _rounds(_hours_with_starts(country, window, hour_of(newest), store, now, retention), page_size):
        for stream in store.country_hour_starts(hours, country, newest, window.start, page_size):
            for row in _ties_by_session_id(stream):
                if after is None or row.ts < after.ts or (row.ts == after.ts and row.session_id > after.session_id):
                    yield row


def _rounds(hours: Iterator[tuple[datetime, int | None]],
            page_size: int) -> Iterator[list[tuple[datetime, int | None]]]:
    """Groups hours, newest first, into rounds read concurrently: a round ends once the rollups promise enough
    starts to fill a page (hours without a rollup promise nothing), so a sparse country is not read an hour at
    a time."""
    batch: list[tuple[datetime, int | None]] = []
    promised = 0
    for hour, known in hours:
        batch.append((hour, known))
        promised += known or 0
        if promised >= page_size or len(batch) == MAX_HOURS_AT_ONCE:
            yield batch
            batch, promised = [], 0
    if batch:
        yield batch


def _ties_by_session_id(rows: Iterator[StartRow]) -> Iterator[StartRow]:
    """Rows newest first; rows of the same instant ordered by session id, whatever order storage gave them."""
    group: list[StartRow] = []
    for row in rows:
        if group and row.ts != group[0].ts:
            yield from sorted(group, key=lambda r: r.session_id)
            group = []
        group.append(row)
    yield from sorted(group, key=lambda r: r.session_id)


def _hours_with_starts(country: str, window: Window, newest_hour: datetime, store: StartsStore, now: datetime,
                       retention: timedelta) -> Iterator[tuple[datetime, int | None]]:
    """The hours of the window, newest first and not after ``newest_hour``, that may hold starts of the
    country: every hour counted from rows, and the settled hours whose rollups count at least one."""
    plan = plan_window(window, now)
    reader = RollupReader(store, now, retention)
    row_hours = sorted(plan.row_hours, reverse=True)
    unsettled = [hour for hour in row_hours if not plan.buckets or hour > plan.buckets[-1].start]
    oldest_partial = [hour for hour in row_hours if hour not in unsettled]
    for hour in unsettled:
        if hour <= newest_hour:
            yield hour, None
    yield from _settled_hours(country, list(reversed(plan.buckets)), newest_hour, reader)
    for hour in oldest_partial:
        if hour <= newest_hour:
            yield hour, None


FIRST_ROLLUP_GROUP = 4
"""Settled buckets whose rollups are read first. A page of a big country is filled by its newest hour or two:
reading the rollups of the whole window first (about 1,300 rows for 24 hours, 60 countries) cost a US page
more than its starts did. Later buckets are read as the listing reaches them, in groups that double, so a
sparse country costs a few more round trips, not more rows."""


def _settled_hours(country: str, buckets: list[Bucket], newest_hour: datetime,
                   reader: RollupReader) -> Iterator[tuple[datetime, int]]:
    candidates = [bucket for bucket in buckets if bucket.start <= newest_hour]
    for group in _doubling_groups(candidates, FIRST_ROLLUP_GROUP):
        counts = reader.country_counts(country, group)
        for bucket in group:
            if counts[bucket] == 0:
                continue
            if bucket.level is Level.HOUR:
                yield bucket.start, counts[bucket]
            else:
                yield from _settled_hours(country, list(reversed(children(bucket))), newest_hour, reader)


def _doubling_groups(items: list[Bucket], first: int) -> Iterator[list[Bucket]]:
    start, size = 0, first
    while start < len(items):
        yield items[start:start + size]
        start, size = start + size, size * 2
