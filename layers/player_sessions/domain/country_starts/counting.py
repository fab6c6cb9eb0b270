"""Exact session-start counts per country over any window, reading rows bounded by the window's bucket
structure and a short tail of recent seconds, never by how many starts the window holds.

A count is three parts that never overlap:
- the rollups of the buckets tiling ``[a, cutoff)``, where ``a`` is the window's first whole second and
  ``cutoff`` the end of the builder's watermark slot (no folded start is stamped at or after it);
- the tail: the arrivals of the slots after the watermark, read raw. A tail start stamped at or after the
  cutoff is counted as is; one stamped earlier (late) is counted unless the bucket holding it already
  includes the fold that counted it (its mark says which);
- the window's partial first second, counted from the start rows themselves.
Readers race the builder safely because the builder makes each step visible before the next: the fold
record, the marks, the deltas, the watermark (domain/rollup_builder.py).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from player_sessions.domain.rollups import BucketState, bucket_state
from player_sessions.models import Arrival, StartKey, to_epoch_ms
from player_sessions.repositories.cache_protocol import CacheToken, NoCache, ReadCache
from player_sessions.repositories.protocols import StartsStore
from player_sessions.time_buckets import (
    CLOCK_TOLERANCE,
    COARSE_LEVELS,
    Bucket,
    Level,
    cover,
    hour_of,
    slot_of,
    slot_start,
    whole_second_after,
)

COARSE_CACHE_TTL_SECONDS = 300


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


@dataclass(frozen=True)
class Inclusion:
    """Which folds a bucket's counts include: every slot up to ``folded_through`` (all folded before the bucket
    was read), and the newer ones its rows show."""

    folded_through: int | None
    base_slot: int | None
    delta_slots: frozenset[int]

    def includes(self, slot: int) -> bool:
        return (
            (self.folded_through is not None and slot <= self.folded_through)
            or (self.base_slot is not None and slot <= self.base_slot)
            or slot in self.delta_slots
        )

    @classmethod
    def of(cls, state: BucketState, folded_through: int | None) -> Inclusion:
        newer = frozenset(s for s in state.delta_slots if folded_through is None or s > folded_through)
        return cls(folded_through, state.base_slot, newer)


@dataclass
class RolledCounts:
    counts: Counter[str]
    inclusion: dict[Bucket, Inclusion]


def count_starts_by_country(
    window: Window, *, store: StartsStore, now: datetime, cache: ReadCache | None = None
) -> Counter[str]:
    """Starts per country in ``window``, exactly (each stored start once, however often it arrived)."""
    tail = read_tail(store, now)
    plan = plan_window(window, tail.cutoff)
    fine = [bucket for bucket in plan.buckets if bucket.level not in COARSE_LEVELS]
    coarse = [bucket for bucket in plan.buckets if bucket.level in COARSE_LEVELS]
    cached = _cached_coarse(coarse, cache or NoCache())
    wanted = (
        fine + ([plan.edge_bucket] if plan.edge_bucket else []) + (coarse if cached.value is None else [])
    )
    rows = store.read_rollups(wanted) if wanted else {}
    states = {bucket: bucket_state(rows.get(bucket, [])) for bucket in wanted}
    rolled = RolledCounts(Counter(), {})
    for bucket in fine:
        rolled.counts.update(states[bucket].counts)
        rolled.inclusion[bucket] = Inclusion.of(states[bucket], tail.folded_through)
    if cached.value is not None:
        rolled.counts.update(cached.value.counts)
        rolled.inclusion.update(cached.value.inclusion)
    elif coarse:
        coarse_part = RolledCounts(Counter(), {})
        for bucket in coarse:
            coarse_part.counts.update(states[bucket].counts)
            coarse_part.inclusion[bucket] = Inclusion.of(states[bucket], tail.folded_through)
        cached.store(coarse_part)
        rolled.counts.update(coarse_part.counts)
        rolled.inclusion.update(coarse_part.inclusion)

    total = rolled.counts
    in_window = tail.starts_in(window)
    edge_keys = [key for key in in_window if plan.edge and key.ts < plan.edge[1]]
    total.update(
        _tail_counts(
            [key for key in in_window if not (plan.edge and key.ts < plan.edge[1])],
            plan,
            rolled.inclusion,
            store,
        )
    )
    if plan.edge:
        edge_state = states.get(plan.edge_bucket) if plan.edge_bucket else None
        countries = sorted(set(edge_state.counts if edge_state else ()) | {key.country for key in edge_keys})
        if countries:
            total.update(store.edge_country_counts(hour_of(plan.edge[0]), countries, *plan.edge))
    return +total


def _tail_counts(
    keys: Sequence[StartKey], plan: WindowPlan, inclusion: dict[Bucket, Inclusion], store: StartsStore
) -> Counter[str]:
    counts: Counter[str] = Counter()
    late: list[tuple[StartKey, Bucket]] = []
    starts = [bucket.start for bucket in plan.buckets]
    for key in keys:
        bucket = plan.bucket_holding(key.ts, starts) if key.ts < plan.rolled_until else None
        if bucket is None:
            counts[key.country] += 1
        else:
            late.append((key, bucket))
    if late:
        marks = store.read_marks([key for key, _ in late])
        for key, bucket in late:
            slot = marks.get(key)
            if slot is None or not inclusion[bucket].includes(slot):
                counts[key.country] += 1
    return counts


class _CachedCoarse:
    """The sum of a window's whole hours, days and months, cached under the ``rollups`` generation, which the
    builder bumps before it moves the watermark past a fold that changed such a bucket. Read after the
    watermark, a cached sum therefore includes every fold up to the reader's watermark that touched it; the
    newer folds it includes are stored with it."""

    def __init__(self, buckets: list[Bucket], cache: ReadCache) -> None:
        self._cache = cache
        self._buckets = buckets
        self._key = (
            f"coarse:{to_epoch_ms(buckets[0].start)}:{to_epoch_ms(buckets[-1].start)}:{len(buckets)}"
            if buckets
            else ""
        )
        self._token: CacheToken | None = None
        self.value: RolledCounts | None = None
        if buckets:
            self._token, raw = cache.lookup(["rollups"], self._key)
            self.value = self._decode(raw) if raw is not None else None

    def store(self, value: RolledCounts) -> None:
        if not self._buckets:
            return
        inclusion = [
            [
                value.inclusion[b].folded_through,
                value.inclusion[b].base_slot,
                sorted(value.inclusion[b].delta_slots),
            ]
            for b in self._buckets
        ]
        self._cache.store(
            self._token,
            self._key,
            json.dumps({"counts": value.counts, "inclusion": inclusion}).encode(),
            COARSE_CACHE_TTL_SECONDS,
        )

    def _decode(self, raw: bytes) -> RolledCounts:
        decoded = json.loads(raw)
        inclusion = {
            bucket: Inclusion(through, base, frozenset(deltas))
            for bucket, (through, base, deltas) in zip(self._buckets, decoded["inclusion"], strict=True)
        }
        return RolledCounts(Counter(decoded["counts"]), inclusion)


def _cached_coarse(buckets: list[Bucket], cache: ReadCache) -> _CachedCoarse:
    return _CachedCoarse(buckets, cache)
