"""The window a count or a listing covers, and how it splits: the rollups' buckets up to the builder's
watermark, the unfolded tail of arrivals after it, and the window's partial first second.

A count is three parts that never overlap:
- the rollups of the buckets tiling ``[a, cutoff)``, where ``a`` is the window's first whole second and
  ``cutoff`` the end of the builder's watermark slot (no folded start is stamped at or after it);
- the tail: the arrivals of the slots after the watermark, read raw (domain.country_starts.counting says how
  a late one is told apart from one a rollup already holds);
- the window's partial first second, counted from the start rows themselves.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from player_sessions.models import Arrival, StartKey
from player_sessions.repositories.protocols import StartsStore
from player_sessions.retention import oldest_retained
from player_sessions.time_buckets import (
    CLOCK_TOLERANCE,
    Bucket,
    Level,
    cover,
    slot_of,
    slot_start,
    whole_second_after,
)


def window_for(hours: int, now: datetime, retention: timedelta) -> Window:
    """``[now - hours, now]``, never reaching further back than the retention."""
    return Window(max(now - timedelta(hours=hours), oldest_retained(now, retention)), now)


@dataclass(frozen=True)
class Window:
    """``[start, end]``, both inclusive, in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Tail:
    """The arrivals the rollups do not hold yet, as one request sees them."""

    folded_through: int | None
    """Every slot up to this one is folded (the watermark; before the first fold, the slot before the first
    arrival ever)."""
    cutoff: datetime | None
    """No folded start is stamped at or after this instant (None: nothing was ever stored)."""
    arrivals: list[Arrival]

    def starts_in(self, window: Window) -> list[StartKey]:
        """The distinct tail starts stamped inside the window."""
        keys = dict.fromkeys(arrival.key for arrival in self.arrivals)
        return [key for key in keys if window.start <= key.ts <= window.end]


TAIL_SLOTS_READ_WHOLE = 120
"""A tail up to this long (in slots) is read slot by slot; a longer one (a builder that stopped) only in the
minutes that hold arrivals."""


def read_tail(store: StartsStore, now: datetime) -> Tail:
    """The watermark first, then the slots after it up to now (plus the clock tolerance, for a writer whose
    clock runs ahead): read in that order, no start can fall between the rollups and the tail."""
    watermark = store.read_progress()
    if watermark is None:
        first = store.first_arrival_minute()
        if first is None:
            return Tail(None, None, [])
        watermark = slot_of(first) - 1
    newest = slot_of(now + CLOCK_TOLERANCE)
    if newest - watermark <= TAIL_SLOTS_READ_WHOLE:
        slots = list(range(watermark + 1, newest + 1))
    else:
        first_minute, last_minute = (
            Level.MINUTE.floor(slot_start(watermark + 1)),
            Level.MINUTE.floor(slot_start(newest)),
        )
        minutes = store.arrival_minutes_between(
            first_minute, last_minute, limit=(newest - watermark) // 60 + 2
        )
        slots = [
            slot
            for minute in minutes
            for slot in range(max(watermark + 1, slot_of(minute)), min(newest, slot_of(minute) + 59) + 1)
        ]
    return Tail(watermark, slot_start(watermark + 1), store.read_arrivals(slots) if slots else [])


@dataclass(frozen=True)
class WindowPlan:
    edge: tuple[datetime, datetime] | None
    """The partial first second, ``[window.start, a)``, counted from start rows (None when ``start`` is whole)."""
    buckets: list[Bucket]
    """The buckets tiling ``[a, rolled_until)``, oldest first."""
    rolled_until: datetime

    @property
    def edge_bucket(self) -> Bucket | None:
        """The second holding the partial first second: its rollup names the countries to read there."""
        return Bucket(Level.SECOND, Level.SECOND.floor(self.edge[0])) if self.edge else None

    def bucket_holding(self, moment: datetime, starts: Sequence[datetime]) -> Bucket | None:
        """The bucket of the plan holding ``moment``; ``starts`` are the buckets' starts, in order."""
        index = bisect.bisect_right(starts, moment) - 1
        if index >= 0 and self.buckets[index].contains(moment):
            return self.buckets[index]
        return None


def plan_window(window: Window, cutoff: datetime | None) -> WindowPlan:
    first_whole = whole_second_after(window.start)
    rolled_until = (
        first_whole if cutoff is None else max(first_whole, Level.SECOND.floor(min(cutoff, window.end)))
    )
    edge = (window.start, first_whole) if first_whole > window.start else None
    return WindowPlan(edge, cover(first_whole, rolled_until), rolled_until)
