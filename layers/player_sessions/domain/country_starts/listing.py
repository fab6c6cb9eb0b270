"""One country's session starts in a window, newest first, page by page.

Hours are visited newest first, and only those that may hold starts of the country: the rollups (any level,
so a month, day or hour without the country's starts is skipped unread) and the unfolded tail of arrivals say
which. A page therefore reads a bounded number of rollup rows, the tail, and about ``limit`` start rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from player_sessions.domain.country_starts.rollups import bucket_state
from player_sessions.domain.country_starts.settled import SettledArrivals
from player_sessions.domain.country_starts.window import (
    Tail,
    Window,
    WindowPlan,
    plan_window,
    read_tail_and_rollups,
)
from player_sessions.models import RollupRow, StartRow
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import Bucket, Level, Partition, children, hour_of


@dataclass(frozen=True)
class Position:
    """The last start a page returned: the next page begins right after it."""

    ts: datetime
    session_id: UUID


@dataclass(frozen=True)
class Page:
    starts: list[StartRow]
    next_position: Position | None
    unread_from: datetime | None = None
    """None: complete. Else the builders are far behind, and late starts that arrived from then on, stamped
    before the rollups' cutoff, may be missing (every start stamped after the cutoff is listed)."""


def list_country_starts(
    country: str,
    window: Window,
    *,
    limit: int,
    after: Position | None,
    store: StartsStore,
    now: datetime,
    partition: Partition,
    tail_at_most: int,
    settled: SettledArrivals | None = None,
) -> Page:
    """The page of up to ``limit`` starts after ``after`` (None: the first), reading at most ``tail_at_most``
    unfolded arrivals (``Settings.tail_arrivals_read_at_most``), the settled ones read before taken from
    ``settled``."""
    newest_hour = hour_of(min(window.end, after.ts) if after else window.end)

    def plan_for(cutoff: datetime | None) -> tuple[_HoursPlan, list[Bucket]]:
        hours_plan = _HoursPlan.of(window, cutoff, newest_hour)
        return hours_plan, hours_plan.wanted

    tail, hours_plan, rollups = read_tail_and_rollups(
        store, now, partition, tail_at_most, plan_for, settled=settled
    )
    hours = _hours_with_starts(country, hours_plan, rollups, store, tail)
    rows: list[StartRow] = []
    for row in _starts_newest_first(country, window, hours, after=after, store=store, page_size=limit + 1):
        if len(rows) == limit:
            last = rows[-1]
            return Page(rows, Position(last.ts, last.session_id), tail.unread_from)
        rows.append(row)
    return Page(rows, None, tail.unread_from)


MAX_HOURS_AT_ONCE = 100
"""Hours read concurrently in one round: enough to fill a page of a country with one start per hour."""


def _starts_newest_first(
    country: str,
    window: Window,
    hours_with_starts: Iterator[tuple[datetime, int | None]],
    *,
    after: Position | None,
    store: StartsStore,
    page_size: int,
) -> Iterator[StartRow]:
    newest = min(window.end, after.ts) if after else window.end
    for hours in _rounds(hours_with_starts, page_size):
        for stream in store.country_hour_starts(hours, country, newest, window.start, page_size):
            for row in _ties_by_session_id(stream):
                if (
                    after is None
                    or row.ts < after.ts
                    or (row.ts == after.ts and row.session_id > after.session_id)
                ):
                    yield row


def _rounds(
    hours: Iterator[tuple[datetime, int | None]], page_size: int
) -> Iterator[list[tuple[datetime, int | None]]]:
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
            yield from group if len(group) == 1 else sorted(group, key=_session_id)
            group = []
        group.append(row)
    yield from group if len(group) == 1 else sorted(group, key=_session_id)


def _session_id(row: StartRow) -> UUID:
    return row.session_id


@dataclass(frozen=True)
class _HoursPlan:
    """Which rollups tell the hours of the window, not after ``newest_hour``, that may hold a country's starts.
    The hours the window holds only in part, its first and its open one, are known from their whole hour's
    rollup (those of every hour are in one partition a month): they are read with the tail, with the newest of
    the whole hours, days and months between; the older ones as the listing reaches them, in groups that
    double, so a sparse country costs a few more round trips, not more rows."""

    window: Window
    plan: WindowPlan
    newest_hour: datetime
    partial: set[datetime]
    groups: list[list[Bucket]]

    @classmethod
    def of(cls, window: Window, cutoff: datetime | None, newest_hour: datetime) -> _HoursPlan:
        plan = plan_window(window, cutoff)
        edge = [plan.edge_bucket] if plan.edge_bucket else []
        partial = {hour_of(bucket.start) for bucket in plan.fine + edge}
        candidates = [bucket for bucket in reversed(plan.coarse) if bucket.start <= newest_hour]
        groups = list(_doubling_groups(candidates, FIRST_ROLLUP_GROUP))
        return cls(window, plan, newest_hour, partial, groups)

    @property
    def wanted(self) -> list[Bucket]:
        """The rollups read with the tail: the partial hours' and the first group's."""
        return [Bucket(Level.HOUR, hour) for hour in self.partial] + (self.groups[0] if self.groups else [])


def _hours_with_starts(
    country: str,
    hours: _HoursPlan,
    rows: dict[Bucket, list[RollupRow]],
    store: StartsStore,
    tail: Tail,
) -> Iterator[tuple[datetime, int | None]]:
    """The hours of the window not after ``hours.newest_hour``, newest first, that may hold starts of the
    country, each with the most starts of the country its partition can hold (its rollups' count plus its
    starts in the tail; None when unread arrivals may add to it), all of the hour's, in the window or not.
    ``rows`` are the rollups of ``hours.wanted``. Only which hours to read, and how, comes from here (the rows
    read are filtered by the window)."""
    plan, window, newest_hour, groups = hours.plan, hours.window, hours.newest_hour, hours.groups
    in_tail = Counter(hour_of(key.ts) for key in tail.starts_in(window) if key.country == country)
    unknown_from = hour_of(plan.rolled_until) if tail.unread_from is not None else None
    tail_hours = set(in_tail)
    if unknown_from is not None:
        # Unread arrivals may hold starts of any hour after the cutoff: every such hour is read.
        tail_hours |= set(_hours_between(plan.rolled_until, window.end))

    def most(hour: datetime, count: int) -> int | None:
        return None if unknown_from is not None and hour >= unknown_from else count + in_tail[hour]

    whole = {
        hour: bucket_state(rows.get(Bucket(Level.HOUR, hour), [])).counts[country] for hour in hours.partial
    }
    coarse = plan.coarse
    middle_start = coarse[0].start if coarse else None
    middle_end = coarse[-1].end if coarse else None
    outer = [
        hour
        for hour in sorted(set(whole) | tail_hours, reverse=True)
        if hour <= newest_hour and (whole.get(hour, 0) > 0 or hour in tail_hours)
    ]
    for hour in outer:
        if middle_end is None or hour >= middle_end:
            yield hour, most(hour, whole.get(hour, 0))
    for group in groups:
        read = rows if group is groups[0] else store.read_rollups(group)
        yield from _expanded(
            country, group, read, newest_hour=newest_hour, tail_hours=tail_hours, store=store, most=most
        )
    for hour in outer:
        if middle_start is not None and hour < middle_start:
            yield hour, most(hour, whole.get(hour, 0))


def _hours_between(first: datetime, last: datetime) -> Iterator[datetime]:
    hour = hour_of(first)
    while hour <= last:
        yield hour
        hour += timedelta(hours=1)


FIRST_ROLLUP_GROUP = 4
"""Whole hours, days and months whose rollups are read first, in the same read as the window's partial hours.
A page of a big country is filled by its newest hour or two; later buckets are read as the listing reaches
them, in groups that double, so a sparse country costs a few more round trips, not more rows."""


def _expanded(
    country: str,
    buckets: list[Bucket],
    rows: dict[Bucket, list[RollupRow]],
    *,
    newest_hour: datetime,
    tail_hours: set[datetime],
    store: StartsStore,
    most: Callable[[datetime, int], int | None],
) -> list[tuple[datetime, int | None]]:
    """The hours with the country's starts in ``buckets`` (newest first), from their rollups ``rows``, then the
    children of every day or month among them that holds some, all in one read a level down."""
    kept: list[tuple[Bucket, int]] = []
    for bucket in buckets:
        count = bucket_state(rows.get(bucket, [])).counts[country]
        if count or any(bucket.contains(hour) for hour in tail_hours):
            kept.append((bucket, count))
    coarse = [bucket for bucket, _ in kept if bucket.level is not Level.HOUR]
    below = [child for bucket in coarse for child in reversed(children(bucket)) if child.start <= newest_hour]
    hours_below = iter(
        _expanded(
            country,
            below,
            store.read_rollups(below),
            newest_hour=newest_hour,
            tail_hours=tail_hours,
            store=store,
            most=most,
        )
        if below
        else []
    )
    found: list[tuple[datetime, int | None]] = []
    pending = next(hours_below, None)
    for bucket, count in kept:
        if bucket.level is Level.HOUR:
            found.append((bucket.start, most(bucket.start, count)))
            continue
        while pending is not None and bucket.contains(pending[0]):
            found.append(pending)
            pending = next(hours_below, None)
    return found


def _doubling_groups(items: list[Bucket], first: int) -> Iterator[list[Bucket]]:
    start, size = 0, first
    while start < len(items):
        yield items[start : start + size]
        start, size = start + size, size * 2
